"""Hostile and malformed input, table-driven, over real HTTP against the four real services.

Every case names what is sent and what must come back. Media cases run the real converter and check
the job's outcome and the failure email as well.
"""
import base64
import datetime
import json
import os
import socket

import jwt
import pytest
from nameko.testing.utils import get_container

from services.common import constants as c
from services.converter.service import ConverterService
from tests.conftest import JWT_SECRET
from tests.helpers import probe
from tests.integration.stored import leftovers_at
from tests.integration.sweeps import only_email

MAX_UPLOAD = 2 * 1024 * 1024


@pytest.fixture
def service_config(service_config):
    service_config["MAX_UPLOAD_BYTES"] = MAX_UPLOAD
    service_config["MAX_DURATION"] = 30
    service_config["LOGIN_MAX_FAILURES"] = 3
    return service_config


def token(**overrides):
    now = datetime.datetime.now(datetime.timezone.utc)
    claims = {"sub": "eve@example.com", "iat": now, "exp": now + datetime.timedelta(hours=1),
              "iss": "mp3svc", "aud": "mp3svc"}
    key = overrides.pop("_key", JWT_SECRET)
    alg = overrides.pop("_alg", "HS256")
    for name, value in overrides.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return jwt.encode(claims, key, algorithm=alg)


def unsigned_token():
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    now = int(datetime.datetime.now().timestamp())
    return "%s.%s." % (part({"alg": "none", "typ": "JWT"}), part(
        {"sub": "eve@example.com", "iat": now, "exp": now + 3600, "iss": "mp3svc",
         "aud": "mp3svc"}))


BAD_TOKENS = {
    "garbage": lambda: "not-a-token",
    "alg none": unsigned_token,
    "wrong key": lambda: token(_key="another-secret-that-is-long-enough-000000"),
    "other algorithm": lambda: token(_alg="HS512"),
    "expired": lambda: token(exp=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)),
    "no exp": lambda: token(exp=None),
    "wrong audience": lambda: token(aud="someone-else"),
    "wrong issuer": lambda: token(iss="someone-else"),
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_tokens_get_401(stack, media, name):
    response = stack.upload(BAD_TOKENS[name](), media.video("t.mp4", duration=1.0))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def raw_post(stack, path, headers, body):
    """POST with exactly the bytes and headers given (requests would fix a malformed body)."""
    host, port = stack.base.replace("http://", "").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = "POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (path, host)
        head += "".join("%s: %s\r\n" % item for item in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


def multipart(parts, boundary="XyZ"):
    body = b""
    for name, filename, content in parts:
        disposition = 'form-data; name="%s"' % name
        if filename is not None:
            disposition += '; filename="%s"' % filename
        body += b"--%s\r\nContent-Disposition: %s\r\n\r\n%s\r\n" % (
            boundary.encode(), disposition.encode(), content)
    return body + b"--%s--\r\n" % boundary.encode()


def form_headers(tok, body=None, boundary="XyZ"):
    headers = {"Authorization": "Bearer %s" % tok,
               "Content-Type": "multipart/form-data; boundary=%s" % boundary}
    if body is not None:
        headers["Content-Length"] = str(len(body))
    return headers


UPLOAD_CASES = {
    # name: (body builder, expected status, expected error code)
    "not multipart": (lambda v: None, 400, "bad_request"),
    "no file field": (lambda v: multipart([("title", None, b"x")]), 400, "no_file"),
    "file in another field": (lambda v: multipart([("video", "a.mp4", v)]), 400, "no_file"),
    "two files": (lambda v: multipart([("file", "a.mp4", v), ("file", "b.mp4", v)]),
                  400, "too_many_files"),
    "empty file": (lambda v: multipart([("file", "a.mp4", b"")]), 400, "empty_file"),
    "truncated form": (lambda v: multipart([("file", "a.mp4", v)])[:-200], 400, "bad_request"),
    "too large": (lambda v: multipart([("file", "a.mp4", b"\0" * (MAX_UPLOAD + 1))]),
                  413, "too_large"),
}


@pytest.mark.parametrize("name", sorted(UPLOAD_CASES))
def test_malformed_uploads(stack, media, name):
    build, status, code = UPLOAD_CASES[name]
    tok = stack.token_for("mallory@example.com")
    video = open(media.video("m.mp4", duration=1.0), "rb").read()
    body = build(video)
    if body is None:
        got_status, got = raw_post(stack, "/upload", {
            "Authorization": "Bearer %s" % tok, "Content-Type": "application/json",
            "Content-Length": "2"}, b"{}")
    else:
        got_status, got = raw_post(stack, "/upload", form_headers(tok, body), body)
    assert (got_status, got.get("error")) == (status, code), got
    assert got["message"]
    # nothing half-stored: no job visible, no GridFS file, placeholder or chunk left behind
    assert stack.http.get(stack.url("/jobs"), headers={"Authorization": "Bearer " + tok}).json() \
        == {"jobs": []}
    assert stored(stack) == (0, 0)


def stored(stack):
    """(files documents, chunks) of the videos bucket: see tests/integration/stored.py for why this
    sees an upload left behind on nx-27017 as well as on MongoDB."""
    return leftovers_at(stack.config["MONGO_URI"], stack.config["MONGO_DB"])


def test_too_large_streamed_without_content_length(stack):
    """Chunked transfer: the limit is enforced while streaming, and nothing stays stored."""
    tok = stack.token_for("chunky@example.com")

    def body():
        yield b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
        for _ in range(MAX_UPLOAD // 65536 + 2):
            yield b"\0" * 65536
        yield b"\r\n--XyZ--\r\n"
    response = stack.http.post(stack.url("/upload"), data=body(), headers=form_headers(tok))
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert stored(stack) == (0, 0)


def local_secret(media):
    return media.video("secret.wav", duration=2.0, video=False)


MEDIA_CASES = {
    # name: (builder(media, tmp_path) -> path, upload filename, words in the failure)
    "text file named .mp4": (lambda m, t: write(t, "notes.mp4", b"hello, this is not a video\n" * 50),
                             "notes.mp4", "not a video or audio format"),
    "random bytes": (lambda m, t: write(t, "noise.mkv", os.urandom(200000)), "noise.mkv",
                     "not a video or audio format"),
    "video without audio": (lambda m, t: m.video("silent.mp4", duration=2.0, audio=False),
                            "silent.mp4", "no audio track"),
    "HLS playlist disguised as mp4": (
        lambda m, t: write(t, "hls.mp4", ("#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:5.0,\n%s\n"
                                          "#EXT-X-ENDLIST\n" % local_secret(m)).encode()),
        "hls.mp4", "not a video or audio format"),
    "ffconcat list naming a local file": (
        lambda m, t: write(t, "concat.mp4", ("ffconcat version 1.0\nfile %s\n"
                                             % local_secret(m)).encode()),
        "concat.mp4", "not a video or audio format"),
    "truncated mp4": (lambda m, t: write(t, "cut.mp4", half(m.video("whole.mp4", duration=4.0))),
                      "cut.mp4", "incomplete"),
    "longer than the limit": (lambda m, t: m.video("long.mkv", duration=31.0, video=False),
                              "long.mkv", "longer than the limit"),
}


def write(directory, name, data):
    path = directory / name
    path.write_bytes(data)
    return str(path)


def half(path):
    data = open(path, "rb").read()
    return data[:len(data) // 2]


@pytest.mark.parametrize("name", sorted(MEDIA_CASES))
def test_hostile_media_fails_the_job_with_a_reason(stack, media, tmp_path, name):
    build, filename, words = MEDIA_CASES[name]
    tok = stack.token_for("mallory@example.com")
    response = stack.upload(tok, build(media, tmp_path), filename=filename)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = stack.wait_job(tok, job_id)
    assert job["status"] == "failed", job
    assert job["mp3_id"] is None
    assert words in job["error"], job["error"]
    mail = only_email(stack, job_id)
    assert filename in mail["Subject"]
    assert words in stack.mail.text_of(mail)


FILENAME_CASES = {
    # name: (upload filename, stored filename, ascii fallback in Content-Disposition)
    "path separators": ("../../etc/passwd.mp4", "passwd.mp4", 'filename="passwd.mp3"'),
    "windows path": ("C:\\Users\\me\\clip.mp4", "clip.mp4", 'filename="clip.mp3"'),
    "CR LF injection": ("a\r\nX-Evil: 1\r\n.mp4", "aX-Evil: 1.mp4", 'filename="aX-Evil_ 1.mp3"'),
    "300 characters": ("x" * 300 + ".mp4", "x" * 251 + ".mp4", 'filename="%s.mp3"' % ("x" * 251)),
    "odd unicode": ("Fête \u202egnp.mp4", "Fête gnp.mp4", "filename*=UTF-8''F%C3%AAte%20gnp.mp3"),
}


@pytest.mark.parametrize("name", sorted(FILENAME_CASES))
def test_filenames_are_stored_safely_and_sanitized(stack, media, name):
    sent, stored, disposition = FILENAME_CASES[name]
    tok = stack.token_for("names@example.com")
    with open(media.video("n.mp4", duration=1.0), "rb") as handle:
        body = multipart([("file", sent.replace("\r", "").replace("\n", ""), handle.read())]) \
            if "\r" not in sent else None
    if body is None:  # CR/LF cannot travel in a header line: send it percent-encoded (RFC 7578)
        with open(media.video("n.mp4", duration=1.0), "rb") as handle:
            data = handle.read()
        body = (b'--XyZ\r\nContent-Disposition: form-data; name="file"; '
                b"filename*=UTF-8''a%0D%0AX-Evil%3A%201%0D%0A.mp4\r\n\r\n" + data +
                b"\r\n--XyZ--\r\n")
    status, got = raw_post(stack, "/upload", form_headers(tok, body), body)
    assert status == 202, got
    job = stack.wait_job(tok, got["job_id"])
    assert job["filename"] == stored
    response = stack.download(tok, job["mp3_id"])
    header = response.headers["Content-Disposition"]
    assert header.startswith("attachment;")
    assert "\r" not in header and "\n" not in header and "/" not in header.split("UTF-8''")[0]
    assert disposition in header, header


def test_login_failures(stack):
    stack.register("victim@example.com", "the right password")
    unknown = stack.login("nobody@example.com", "whatever password")
    wrong = stack.login("victim@example.com", "the wrong password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert stack.login("victim@example.com", "x" * 5000).status_code == 400
    for _ in range(2):
        stack.login("victim@example.com", "the wrong password")
    locked = stack.login("victim@example.com", "the right password")
    assert locked.status_code == 429, locked.text
    assert locked.json()["error"] == "too_many_attempts"
    assert int(locked.headers["Retry-After"]) > 0


REGISTER_CASES = {
    "invalid email": ({"email": "not-an-email", "password": "long enough pw"}, 400, "invalid_input"),
    "short password": ({"email": "a@example.com", "password": "short"}, 400, "weak_password"),
    "common password": ({"email": "a@example.com", "password": "Password1"}, 400, "weak_password"),
    "long password": ({"email": "a@example.com", "password": "p" * 1025}, 400, "weak_password"),
    "not an object": (["a@example.com"], 400, "bad_request"),
}


@pytest.mark.parametrize("name", sorted(REGISTER_CASES))
def test_register_rejects(stack, name):
    body, status, code = REGISTER_CASES[name]
    response = stack.http.post(stack.url("/register"), json=body)
    assert (response.status_code, response.json()["error"]) == (status, code)


@pytest.mark.parametrize("again", ["twice@example.com", "twice@EXAMPLE.com", " twice@Example.COM "])
def test_register_twice_answers_alike_and_changes_nothing(stack, again):
    """The same address again, also with the domain in other case (domains are case-insensitive;
    the local part is not, RFC 5321) or with blanks around it: the same 202 as a new address, and
    the account keeps its password."""
    first = stack.register("twice@example.com", "long enough pw")
    assert first.status_code == 202
    response = stack.register(again, "another long pw")
    assert (response.status_code, response.json()) == (202, first.json())
    assert stack.login("twice@example.com", "long enough pw").status_code == 200
    assert stack.login("twice@example.com", "another long pw").status_code == 401


def test_ids_and_ownership(stack, media):
    owner = stack.token_for("owner@example.com")
    other = stack.token_for("other@example.com")
    job_id = stack.upload(owner, media.video("own.mp4", duration=1.0)).json()["job_id"]
    job = stack.wait_job(owner, job_id)
    cases = [
        (stack.job(owner, "not-a-job"), 400, "invalid_id"),
        (stack.job(owner, "0" * 32), 404, "not_found"),
        (stack.job(other, job_id), 404, "not_found"),
        (stack.download(owner, "zzz"), 400, "invalid_id"),
        (stack.download(owner, "0" * 24), 404, "not_found"),
        (stack.download(other, job["mp3_id"]), 404, "not_found"),
        (stack.download(other, job_id), 404, "not_found"),
        (stack.http.get(stack.url("/nowhere")), 404, "not_found"),
        (stack.http.delete(stack.url("/upload")), 405, "method_not_allowed"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]) == (status, code), response.url
        assert response.headers["Content-Type"] == "application/json"


def test_download_before_conversion_is_409(stack, media, container_factory):
    """A job id in place of the fid: 409 until its MP3 exists. The converter is stopped, so the job
    waits queued; a converter started afterwards converts it."""
    get_container(stack.runner, ConverterService).stop()
    tok = stack.token_for("early@example.com")
    job_id = stack.upload(tok, media.video("early.mp4", duration=1.0)).json()["job_id"]
    assert stack.job(tok, job_id).json()["status"] == c.QUEUED
    response = stack.download(tok, job_id)
    assert (response.status_code, response.json()["error"]) == (409, "not_ready")
    assert "queued" in response.json()["message"]

    container_factory(ConverterService, stack.config).start()
    assert stack.wait_job(tok, job_id)["status"] == c.DONE
    response = stack.download(tok, job_id)
    assert response.status_code == 200 and response.headers["Content-Type"] == "audio/mpeg"


def test_converted_audio_is_the_upload_not_a_local_file(stack, media, tmp_path):
    """Sanity for the playlist cases: a legitimate upload's MP3 has the upload's duration."""
    tok = stack.token_for("legit@example.com")
    source = media.video("legit.mp4", duration=2.0)
    job = stack.wait_job(tok, stack.upload(tok, source).json()["job_id"])
    out = tmp_path / "legit.mp3"
    out.write_bytes(stack.download(tok, job["mp3_id"]).content)
    assert abs(probe(out)[1] - 2.0) <= 0.1
