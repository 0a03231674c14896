"""The mp3svc command-line client (client/mp3svc_client) against mocked answers and a tiny local tus
server built on services/gateway/tus.py; the real gateway is exercised in tests/integration."""
import io
import json
import os
import stat
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from tusclient.client import TusClient

from mp3svc_client import cli, config, upload
from mp3svc_client.api import Api, ApiError, ConnectionFailed, error_from, explain, retry_after
from mp3svc_client.files import disposition_filename, safe_name, save_stream
from services.gateway import tus
from services.gateway.schemas import content_disposition
from tests.helpers import free_port, sigint_default


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """Config and cache directories of a fresh user; no token or server from the environment."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in (config.ENV_SERVER, config.ENV_TOKEN, config.ENV_PASSWORD):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(argv, capsys, transport=None):
    code = cli.main(argv, transport=transport)
    out, err = capsys.readouterr()
    return code, out, err


def api_error(status, code, message, headers=None):
    return httpx.Response(status, json={"error": code, "message": message}, headers=headers)


# --- argument parsing and options -> tus metadata ------------------------------------------------
def test_every_option_flag_becomes_its_metadata_key(tmp_path):
    args = cli.build_parser().parse_args([
        "convert", str(tmp_path / "clip.mp4"), "--bitrate", "192", "--sample-rate", "44100",
        "--channels", "1",
        "--start", "1:02.5", "--end", "90", "--audio-track", "1", "--normalize", "--no-tags",
        "--title", "Täst, title", "--artist", "A", "--album", "B", "--cover", "none"])
    assert cli.tus_metadata(args, args.files[0]) == {
        "filename": "clip.mp4", "bitrate": "192", "sample_rate": "44100", "channels": "1", "start": "1:02.5",
        "end": "90", "audio_track": "1", "normalize": "true", "tags": "false", "title": "Täst, title",
        "artist": "A", "album": "B", "cover": "none"}


def test_no_flags_send_only_the_filename():
    args = cli.build_parser().parse_args(["convert", "/videos/a b.mkv"])
    assert cli.tus_metadata(args, args.files[0]) == {"filename": "a b.mkv"}
    args = cli.build_parser().parse_args(["convert", "x.mp4", "--quality", "0"])
    assert cli.tus_metadata(args, "x.mp4") == {"filename": "x.mp4", "quality": "0"}


def test_metadata_as_tuspy_encodes_it_is_what_the_gateway_parses(tmp_path):
    video = tmp_path / "vidéo.mp4"
    video.write_bytes(b"x")
    args = cli.build_parser().parse_args(["convert", str(video), "--title", "a,b c", "--no-tags"])
    metadata = cli.tus_metadata(args, str(video))
    uploader = upload._Uploader(None, "key", file_stream=io.BytesIO(b"x"),
                                client=TusClient("http://h/uploads"), metadata=metadata)
    header = uploader.get_url_creation_headers()["upload-metadata"]
    assert tus.parse_metadata(header) == {"filename": "vidéo.mp4", "title": "a,b c", "tags": "false"}


@pytest.mark.parametrize("argv", [
    ["convert", "a.mp4", "--bitrate", "128", "--quality", "2"],   # exclusive
    ["convert", "a.mp4", "--bitrate", "loud"],
    ["convert"],
    ["rm"],
    ["download"],
    ["download", "--all", "a" * 32],
    ["download", "--all", "-o", "out", "--zip", "x.zip"],
    ["frobnicate"],
])
def test_usage_mistakes_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "usage: mp3svc" in capsys.readouterr().err


def test_json_flag_works_before_or_after_the_command():
    parser = cli.build_parser()
    assert parser.parse_args(["--json", "jobs"]).json is True
    assert parser.parse_args(["jobs", "--json"]).json is True
    assert getattr(parser.parse_args(["jobs"]), "json", False) is False
    assert parser.parse_args(["download", "abc"]).output_dir == "."
    assert parser.parse_args(["convert", "a.mp4"]).output_dir is None


# --- Content-Disposition and where a download lands ---------------------------------------------
@pytest.mark.parametrize("name", ["clip.mp3", "holiday clip (2).mp3", "日本語の歌.mp3", "Ünïcödé – song.mp3",
                                  'quote"d.mp3', "semi;colon.mp3"])
def test_the_gateways_content_disposition_gives_back_the_name(name):
    assert safe_name(disposition_filename(content_disposition(name))) == safe_name(name)
    assert disposition_filename(content_disposition(name)) == name


@pytest.mark.parametrize("header, expected", [
    ('attachment; filename="clip.mp3"', "clip.mp3"),
    ("attachment; filename=clip.mp3", "clip.mp3"),
    ('attachment; filename="a\\"b.mp3"', 'a"b.mp3'),
    ("attachment; filename*=UTF-8''%E6%97%A5.mp3; filename=\"x.mp3\"", "日.mp3"),
    ("attachment", None),
    (None, None),
])
def test_disposition_filename(header, expected):
    assert disposition_filename(header) == expected


@pytest.mark.parametrize("raw, expected", [
    ("clip.mp3", "clip.mp3"),
    ("../../etc/passwd", "passwd.mp3"),
    ("/etc/cron.d/evil.mp3", "evil.mp3"),
    ("..\\..\\Windows\\evil.mp3", "evil.mp3"),
    ("..", "fallback.mp3"),
    (".bashrc", "bashrc.mp3"),
    ("...mp3", "mp3.mp3"),
    ("", "fallback.mp3"),
    (None, "fallback.mp3"),
    ("a\x00b\r\n.mp3", "a_b__.mp3"),
    ("con<>:|?*.mp3", "con______.mp3"),
    ("\u202egnp.mp3", "_gnp.mp3"),
    ("song.MP3", "song.mp3"),
    ("song.wav", "song.wav.mp3"),
    ("  spaced .mp3 ", "spaced.mp3"),
])
def test_safe_name_is_a_plain_mp3_name(raw, expected):
    assert safe_name(raw, fallback="fallback.mp3") == expected


def test_safe_name_bounds_the_length_in_bytes():
    name = safe_name("é" * 300 + ".mp3")
    assert name.endswith(".mp3") and len(name.encode()) <= 240
    assert "/" not in name


def test_save_stream_never_leaves_the_directory_nor_overwrites(tmp_path):
    (tmp_path / "clip.mp3").write_bytes(b"mine")
    first = save_stream([b"ID3", b"one"], str(tmp_path), "clip.mp3")
    second = save_stream([b"ID3two"], str(tmp_path), "clip.mp3")
    assert first == str(tmp_path / "clip (1).mp3") and second == str(tmp_path / "clip (2).mp3")
    assert (tmp_path / "clip.mp3").read_bytes() == b"mine"
    assert open(first, "rb").read() == b"ID3one"
    assert sorted(os.listdir(tmp_path)) == ["clip (1).mp3", "clip (2).mp3", "clip.mp3"]


def test_a_broken_download_leaves_nothing(tmp_path):
    def chunks():
        yield b"ID3"
        raise httpx.ReadError("connection reset")
    with pytest.raises(httpx.ReadError):
        save_stream(chunks(), str(tmp_path), "clip.mp3")
    assert os.listdir(tmp_path) == []


# --- the saved token -------------------------------------------------------------------------------
def test_login_saves_the_token_0600_per_server(capsys, monkeypatch):
    seen = []

    def answer(request):
        seen.append(request)
        return httpx.Response(200, json={"token": "tok-1", "token_type": "Bearer", "expires_in": 3600})
    monkeypatch.setenv(config.ENV_PASSWORD, "pässword 1")
    code, out, err = run(["login", "me@example.com"], capsys, httpx.MockTransport(answer))
    assert (code, err) == (0, "")
    assert "Logged in as me@example.com" in out
    assert seen[0].url == "http://127.0.0.1:8080/login"
    assert seen[0].headers["authorization"] == httpx.BasicAuth("me@example.com", "pässword 1")._auth_header
    path = config.credentials_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert config.saved_login("http://127.0.0.1:8080") == ("tok-1", "me@example.com")
    assert config.saved_login("http://elsewhere:8080") == (None, None)  # never sent to another server
    monkeypatch.setenv(config.ENV_TOKEN, "from-env")
    assert config.saved_login("http://127.0.0.1:8080") == ("from-env", None)


def test_the_token_file_stays_0600_when_rewritten_under_a_lax_umask(monkeypatch):
    old = os.umask(0)
    try:
        config.save_login("http://a", "a@x.org", "t1", 60)
        config.save_login("http://b", "b@x.org", "t2", None)
    finally:
        os.umask(old)
    path = config.credentials_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temp files left
    assert set(json.loads(path.read_text())) == {"http://a", "http://b"}


def test_register_then_logs_in(capsys, monkeypatch):
    calls = []

    def answer(request):
        calls.append((request.method, request.url.path, request.content))
        if request.url.path == "/register":
            return httpx.Response(202, json={"email": "me@example.com", "status": "verification_sent"})
        return httpx.Response(200, json={"token": "t", "token_type": "Bearer", "expires_in": 60})
    monkeypatch.setenv(config.ENV_PASSWORD, "secret-password")
    code, out, _ = run(["register", "me@example.com", "--json"], capsys, httpx.MockTransport(answer))
    assert code == 0
    assert calls[0] == ("POST", "/register", b'{"email":"me@example.com","password":"secret-password"}')
    assert calls[1][:2] == ("POST", "/login")
    assert json.loads(out)["email"] == "me@example.com" and "token" not in json.loads(out)


def test_password_from_stdin_when_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n"))
    sent = []

    def answer(request):
        sent.append(request.headers["authorization"])
        return httpx.Response(200, json={"token": "t", "token_type": "Bearer", "expires_in": 60})
    assert run(["login", "a@b.org"], capsys, httpx.MockTransport(answer))[0] == 0
    assert sent == [httpx.BasicAuth("a@b.org", "from-stdin")._auth_header]


# --- errors: the API's sentence plus what to do ------------------------------------------------------
@pytest.mark.parametrize("status, code, headers, says", [
    (401, "invalid_token", {}, "Log in again: mp3svc login"),
    (403, "quota_exceeded", {}, "mp3svc rm"),
    (413, "too_large", {}, "The API says so."),
    (415, "unsupported_media_type", {}, "The API says so."),
    (422, "no_audio", {}, "The API says so."),
    (429, "too_many_jobs", {"Retry-After": "30"}, "Try again in 30 s."),
    (429, "rate_limited", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "Try again in 0 s."),
    (503, "storage_unavailable", {}, "try again shortly"),
])
def test_error_answers_read_well(status, code, headers, says):
    err = error_from(status, json.dumps({"error": code, "message": "The API says so"}).encode(),
                     httpx.Headers(headers))
    assert (err.status, err.code, err.message) == (status, code, "The API says so")
    assert str(err).startswith("The API says so.")
    assert says in str(err)


def test_wrong_password_does_not_say_log_in_again():
    err = ApiError(401, "invalid_credentials", "Wrong email or password.")
    assert explain(err) == "Wrong email or password."


def test_an_answer_that_is_not_the_apis_json_still_reads_well():
    err = error_from(502, b"<html>Bad Gateway</html>", httpx.Headers(), "Bad Gateway")
    assert err.code == "http_502"
    assert str(err).startswith("The server answered HTTP 502 Bad Gateway.")
    assert error_from(404, b"", httpx.Headers()).code == "not_found"


def test_retry_after_parsing():
    assert retry_after("120") == 120
    assert retry_after(None) is None and retry_after("soon") is None


def test_connection_refused_names_the_server_and_the_variable(capsys, monkeypatch):
    port = free_port()
    monkeypatch.setenv(config.ENV_SERVER, "http://127.0.0.1:%d/" % port)
    monkeypatch.setenv(config.ENV_TOKEN, "t")
    code, out, err = run(["jobs"], capsys)
    assert code == 1 and out == ""
    assert "Cannot reach the server at http://127.0.0.1:%d (connection refused)" % port in err
    assert "MP3SVC_SERVER" in err
    with pytest.raises(ConnectionFailed):
        Api("http://127.0.0.1:%d" % port, "t").jobs()


def test_not_logged_in(capsys):
    code, _, err = run(["jobs"], capsys, httpx.MockTransport(lambda r: pytest.fail("no request expected")))
    assert code == 1 and "Not logged in: run mp3svc login EMAIL" in err
    code, _, err = run(["convert", "nothing.mp4"], capsys, httpx.MockTransport(lambda r: pytest.fail("no")))
    assert code == 1 and err.count("Not logged in") == 1


def test_expired_token_exits_1_saying_log_in_again(capsys, monkeypatch):
    monkeypatch.setenv(config.ENV_TOKEN, "old")
    transport = httpx.MockTransport(lambda r: api_error(401, "invalid_token", "The token has expired."))
    code, out, err = run(["jobs"], capsys, transport)
    assert (code, out) == (1, "")
    assert err == "mp3svc: The token has expired. Log in again: mp3svc login EMAIL (or set MP3SVC_TOKEN).\n"


# --- jobs, download, rm -----------------------------------------------------------------------------
JOB = {"job_id": "a" * 32, "status": "done", "filename": "clip.mp4", "mp3_id": "b" * 24, "error": None,
       "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:01:00Z", "progress": 1.0,
       "options": {}, "duration": 12.5, "size": 204800, "expires_at": "2026-12-02T10:01:00Z"}


def jobs_api(jobs, downloads=None, deleted=None, archived=None):
    archived = [] if archived is None else archived

    def answer(request):
        assert request.headers["authorization"] == "Bearer tok"
        path = request.url.path
        if path == "/jobs":
            return httpx.Response(200, json={"jobs": jobs})
        if path == "/jobs/archive" and request.method == "POST":
            asked = json.loads(request.content)["job_ids"]
            archived.append(asked)
            return httpx.Response(200, content=b"PK" + "|".join(asked).encode(), headers={
                "Content-Type": "application/zip",
                "Content-Disposition": content_disposition("mp3svc-2026-12-06.zip")})
        if path.startswith("/jobs/"):
            job = next((j for j in jobs if j["job_id"] == path[6:]), None)
            if job is None:
                return api_error(404, "not_found", "No such job.")
            if request.method == "DELETE":
                deleted.append(job["job_id"])
                return httpx.Response(204)
            return httpx.Response(200, json=job)
        if path == "/download":
            name, body = downloads[request.url.params["fid"]]
            return httpx.Response(200, content=body, headers={
                "Content-Type": "audio/mpeg", "Content-Disposition": content_disposition(name)})
        return api_error(404, "not_found", "No such route.")
    return httpx.MockTransport(answer)


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv(config.ENV_TOKEN, "tok")


def test_jobs_table_and_json(capsys, token):
    failed = dict(JOB, job_id="c" * 32, status="failed", mp3_id=None, size=None, filename="bad.txt",
                  error="The upload is not a video or audio file.")
    converting = dict(JOB, job_id="d" * 32, status="converting", mp3_id=None, size=None, progress=0.42)
    code, out, _ = run(["jobs"], capsys, jobs_api([JOB, failed, converting]))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "ID", "STATUS", "SIZE", "CREATED", "FILE"]
    assert "a" * 32 in lines[1] and "done" in lines[1] and "200.0 KiB" in lines[1] and "clip.mp4" in lines[1]
    assert "failed" in lines[2] and lines[3].strip() == "The upload is not a video or audio file."
    assert "converting 42%" in lines[4]
    code, out, _ = run(["jobs", "--json"], capsys, jobs_api([JOB]))
    assert json.loads(out) == {"jobs": [JOB]}
    assert run(["jobs"], capsys, jobs_api([]))[1] == "No jobs.\n"


def test_download_by_job_id_saves_under_a_safe_name_inside_dir(capsys, token, tmp_path):
    downloads = {"b" * 24: ("../../../etc/clip.mp3", b"ID3data")}
    code, out, err = run(["download", "a" * 32, "-o", str(tmp_path)], capsys, jobs_api([JOB], downloads))
    assert (code, err) == (0, "")
    assert out.strip() == str(tmp_path / "clip.mp3")
    assert (tmp_path / "clip.mp3").read_bytes() == b"ID3data"
    argv = ["download", "b" * 24, "-o", str(tmp_path), "--json"]
    code, out, _ = run(argv, capsys, jobs_api([JOB], downloads))
    assert json.loads(out)["output"] == str(tmp_path / "clip (1).mp3")


def test_download_of_an_unfinished_job_says_so(capsys, token, tmp_path):
    job = dict(JOB, status="failed", mp3_id=None, error="No audio stream.")
    code, _, err = run(["download", "a" * 32, "-o", str(tmp_path)], capsys, jobs_api([job]))
    assert code == 1 and "is failed, not done: No audio stream." in err
    assert os.listdir(tmp_path) == []


def test_download_all_saves_each_finished_jobs_mp3(capsys, token, tmp_path):
    second = dict(JOB, job_id="c" * 32, mp3_id="d" * 24, filename="talk.mkv")
    failed = dict(JOB, job_id="e" * 32, status="failed", mp3_id=None)
    downloads = {"b" * 24: ("clip.mp3", b"ID3one"), "d" * 24: ("talk.mp3", b"ID3two")}
    code, out, err = run(["download", "--all", "-o", str(tmp_path)], capsys,
                         jobs_api([JOB, second, failed], downloads))
    assert (code, err) == (0, "")
    assert out.split() == [str(tmp_path / "clip.mp3"), str(tmp_path / "talk.mp3")]
    assert (tmp_path / "talk.mp3").read_bytes() == b"ID3two"
    assert run(["download", "--all"], capsys, jobs_api([failed]))[:2] == (0, "No finished jobs.\n")


def test_download_of_several_goes_on_past_a_failure(capsys, token, tmp_path):
    downloads = {"b" * 24: ("clip.mp3", b"ID3one")}
    code, out, err = run(["download", "f" * 32, "a" * 32, "-o", str(tmp_path)], capsys,
                         jobs_api([JOB], downloads))
    assert code == 1 and out.strip() == str(tmp_path / "clip.mp3")
    assert err == "mp3svc: %s: No such job.\n" % ("f" * 32)


def test_download_zip_is_one_archive_of_the_jobs(capsys, token, tmp_path):
    second = dict(JOB, job_id="c" * 32, filename="talk.mkv")
    archived = []
    target = tmp_path / "lectures.zip"
    target.write_bytes(b"old")
    code, out, err = run(["download", "--all", "--zip", str(target), "--json"], capsys,
                         jobs_api([JOB, second], archived=archived))
    assert (code, err) == (0, "")
    assert archived == [["a" * 32, "c" * 32]]
    assert target.read_bytes() == b"PK" + ("a" * 32 + "|" + "c" * 32).encode()  # replaced
    assert json.loads(out)["output"] == str(target)
    code, out, _ = run(["download", "c" * 32, "--zip", str(tmp_path)], capsys,
                       jobs_api([JOB, second], archived=archived))
    assert code == 0 and out.strip() == str(tmp_path / "mp3svc-2026-12-06.zip")  # the server's name
    assert sorted(os.listdir(tmp_path)) == ["lectures.zip", "mp3svc-2026-12-06.zip"]


def test_rm_reports_each_and_exits_1_when_one_failed(capsys, token):
    deleted = []
    code, out, err = run(["rm", "a" * 32, "e" * 32], capsys, jobs_api([JOB], deleted=deleted))
    assert code == 1 and deleted == ["a" * 32]
    assert out == "Deleted %s.\n" % ("a" * 32)
    assert err == "mp3svc: %s: No such job.\n" % ("e" * 32)


# --- convert against a tiny tus server (the helpers of services/gateway/tus.py) ------------------------
TUS_STATUS = {tus.InvalidHeader: 400, tus.UnsupportedVersion: 412, tus.WrongContentType: 415,
              tus.OffsetMismatch: 409, tus.TooLarge: 413}


class FakeGateway(ThreadingHTTPServer):
    """Just enough of the gateway for the client: tus uploads, job polling, downloads."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.uploads, self.log, self.refuse, self.break_patch = {}, [], None, {}
        self.url = "http://127.0.0.1:%d" % self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, headers=None, body=b""):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, headers=None):
        body = json.dumps({"error": code, "message": message}).encode()
        self.answer(status, dict(headers or {}, **{"Content-Type": "application/json"}), body)

    def handle_any(self):
        srv, path = self.server, urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        srv.log.append((self.command, path.path, self.headers.get("Upload-Offset"), len(body)))
        if self.headers.get("Authorization") != "Bearer tok":
            return self.error(401, "invalid_token", "The token is not valid.")
        upload_id = path.path.rsplit("/", 1)[-1]
        state = srv.uploads.get(upload_id)
        try:
            if self.command == "POST" and path.path == "/uploads":
                if srv.refuse:
                    return self.error(*srv.refuse)
                tus.check_resumable(self.headers.get("Tus-Resumable"))
                upload_id = uuid.uuid4().hex
                length = tus.parse_length(self.headers.get("Upload-Length"), 10 ** 9)
                meta = tus.parse_metadata(self.headers.get("Upload-Metadata"))
                srv.uploads[upload_id] = {"length": length, "meta": meta, "data": bytearray(), "polls": 0}
                return self.answer(201, tus.response_headers(location="/uploads/" + upload_id, expires=0))
            if path.path.startswith("/uploads/") and state is None:
                return self.error(404, "not_found", "No such upload.")
            if self.command == "HEAD":
                headers = tus.response_headers(offset=len(state["data"]), length=state["length"])
                return self.answer(200, headers)
            if self.command == "PATCH" and len(patches(srv)) in srv.break_patch:
                if srv.break_patch[len(patches(srv))] == "drop":
                    state["data"] += body[:300]  # what arrived before the connection broke
                    self.close_connection = True
                    return self.connection.shutdown(2)
                return self.error(503, "storage_unavailable", "The file store is not reachable.")
            if self.command == "PATCH":
                tus.check_resumable(self.headers.get("Tus-Resumable"))
                tus.check_content_type(self.headers.get("Content-Type"))
                tus.parse_offset(self.headers.get("Upload-Offset"), len(state["data"]))
                tus.check_chunk(len(state["data"]), len(body), state["length"])
                state["data"] += body
                return self.answer(204, tus.response_headers(offset=len(state["data"])))
            if path.path.startswith("/jobs/") and state and len(state["data"]) == state["length"]:
                state["polls"] += 1
                bad = state["meta"]["filename"].endswith(".txt")
                status = "converting" if state["polls"] < 2 else "failed" if bad else "done"
                job = dict(JOB, job_id=upload_id, status=status, filename=state["meta"]["filename"],
                           mp3_id=upload_id[:24] if status == "done" else None, progress=0.5,
                           error="The upload is not a video or audio file." if status == "failed" else None)
                return self.answer(200, {"Content-Type": "application/json"}, json.dumps(job).encode())
            if path.path == "/download":
                fid = parse_qs(path.query)["fid"][0]
                state = next(s for i, s in srv.uploads.items() if i.startswith(fid))
                name = os.path.splitext(state["meta"]["filename"])[0] + ".mp3"
                headers = {"Content-Type": "audio/mpeg", "Content-Disposition": content_disposition(name)}
                return self.answer(200, headers, b"ID3" + bytes(state["data"][:16]))
            return self.error(404, "not_found", "Nothing here.")
        except tus.TusError as err:
            return self.error(TUS_STATUS[type(err)], type(err).__name__, str(err), tus.response_headers())

    do_POST = do_HEAD = do_PATCH = do_GET = do_DELETE = handle_any


@pytest.fixture
def gateway(monkeypatch):
    srv = FakeGateway()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(config.ENV_SERVER, srv.url)
    monkeypatch.setenv(config.ENV_TOKEN, "tok")
    monkeypatch.setattr(upload, "CHUNK_SIZE", 1000)
    monkeypatch.setattr(cli, "POLL_DELAYS", (0.01,))
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def patches(srv):
    return [(offset, size) for method, _, offset, size in srv.log if method == "PATCH"]


def test_convert_uploads_in_chunks_polls_and_saves_beside_the_file(capsys, gateway, tmp_path):
    video = tmp_path / "talk.mp4"
    video.write_bytes(os.urandom(2500))
    code, out, err = run(["convert", str(video), "--bitrate", "192"], capsys)
    assert (code, err) == (0, "")
    assert out == "%s -> %s\n" % (video, tmp_path / "talk.mp3")
    assert patches(gateway) == [("0", 1000), ("1000", 1000), ("2000", 500)]
    (state,) = gateway.uploads.values()
    assert bytes(state["data"]) == video.read_bytes()
    assert state["meta"] == {"filename": "talk.mp4", "bitrate": "192"}
    assert (tmp_path / "talk.mp3").read_bytes() == b"ID3" + video.read_bytes()[:16]
    assert os.listdir(config.uploads_path().parent) == ["uploads.json"]
    assert json.loads(config.uploads_path().read_text()) == {"_default": {}}  # nothing left to resume


def test_ctrl_c_mid_upload_then_the_same_command_resumes(capsys, gateway, tmp_path, monkeypatch):
    video = tmp_path / "big.mkv"
    video.write_bytes(os.urandom(4200))
    real_perform, calls = upload._Patch.perform, []

    def interrupted_third_patch(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_perform(self)
    monkeypatch.setattr(upload._Patch, "perform", interrupted_third_patch)
    argv = ["convert", str(video), "-o", str(tmp_path / "out"), "--normalize"]
    (tmp_path / "out").mkdir()
    code, out, err = run(argv, capsys)
    assert (code, out) == (130, "")
    assert "Interrupted after 2.0 KiB of 4.1 KiB of big.mkv; run the same command again to resume." in err
    assert patches(gateway) == [("0", 1000), ("1000", 1000)]
    gateway.log.clear()
    code, out, err = run(argv + ["--json"], capsys)
    assert (code, err) == (0, "")
    assert [m for m, *_ in gateway.log if m in ("POST", "HEAD")] == ["HEAD"]  # no new upload
    assert patches(gateway) == [("2000", 1000), ("3000", 1000), ("4000", 200)]  # no byte sent twice
    (state,) = gateway.uploads.values()
    assert bytes(state["data"]) == video.read_bytes()
    (result,) = json.loads(out)["files"]
    assert result["status"] == "done" and result["output"] == str(tmp_path / "out" / "big.mp3")


def test_ctrl_c_on_the_second_file_names_the_job_already_converting(capsys, gateway, tmp_path, monkeypatch):
    files = []
    for name, size in (("a.mp4", 500), ("b.mp4", 2500)):
        (tmp_path / name).write_bytes(os.urandom(size))
        files.append(str(tmp_path / name))
    real_perform, calls = upload._Patch.perform, []

    def interrupted_third_patch(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_perform(self)
    monkeypatch.setattr(upload._Patch, "perform", interrupted_third_patch)
    code, out, err = run(["convert", *files, "--json"], capsys)
    first_job = next(i for i, u in gateway.uploads.items() if u["meta"]["filename"] == "a.mp4")
    assert code == 130
    assert ("Interrupted after 1000 B of 2.4 KiB of b.mp4; run the same command again to resume. "
            "Uploaded files go on converting on the server (%s)" % first_job) in err
    assert [f["status"] for f in json.loads(out)["files"]] == ["converting", "not_started"]


@pytest.mark.parametrize("trouble", ["drop", 503])
def test_a_broken_patch_is_retried_from_the_servers_offset(capsys, gateway, tmp_path, monkeypatch, trouble):
    monkeypatch.setattr(upload, "RETRY_DELAYS", (0, 0))
    gateway.break_patch = {2: trouble}
    video = tmp_path / "a.mp4"
    video.write_bytes(os.urandom(2500))
    code, _, err = run(["convert", str(video)], capsys)
    assert (code, err) == (0, "")
    if trouble == "drop":  # the server kept 300 bytes of the broken PATCH: they are not sent again
        assert patches(gateway) == [("0", 1000), ("1000", 1000), ("1300", 1000), ("2300", 200)]
    else:
        assert patches(gateway) == [("0", 1000), ("1000", 1000), ("1000", 1000), ("2000", 500)]
    assert [m for m, *_ in gateway.log].count("HEAD") == 1
    assert bytes(next(iter(gateway.uploads.values()))["data"]) == video.read_bytes()


def test_retries_give_up_with_the_reason(capsys, gateway, tmp_path, monkeypatch):
    monkeypatch.setattr(upload, "RETRY_DELAYS", (0, 0))
    gateway.break_patch = {1: 503, 2: 503, 3: 503}
    (tmp_path / "a.mp4").write_bytes(b"x" * 1500)
    code, _, err = run(["convert", str(tmp_path / "a.mp4")], capsys)
    assert code == 1
    assert "The file store is not reachable. (HTTP 503: the service is unavailable" in err
    assert len(patches(gateway)) == 3


def test_a_changed_file_or_other_options_start_a_new_upload(capsys, gateway, tmp_path, monkeypatch):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x" * 1500)
    key = upload.resume_key(gateway.url, str(video), {"filename": "a.mp4"})
    assert key != upload.resume_key(gateway.url, str(video), {"filename": "a.mp4", "quality": "2"})
    assert key != upload.resume_key("http://other", str(video), {"filename": "a.mp4"})
    os.utime(video, ns=(1, 1))
    assert key != upload.resume_key(gateway.url, str(video), {"filename": "a.mp4"})


def test_a_vanished_upload_starts_over(capsys, gateway, tmp_path, monkeypatch):
    video = tmp_path / "a.mp4"
    video.write_bytes(os.urandom(1500))
    store = upload.UploadStore(config.uploads_path())
    store.storage.set_item(upload.resume_key(gateway.url, str(video), {"filename": "a.mp4"}),
                           gateway.url + "/uploads/" + "f" * 32)  # expired on the server meanwhile
    store.close()
    code, _, err = run(["convert", str(video)], capsys)
    assert (code, err) == (0, "")
    assert [m for m, *_ in gateway.log][:3] == ["HEAD", "POST", "PATCH"]


def test_two_files_one_bad_one_missing_exit_1_with_each_reason(capsys, gateway, tmp_path):
    good, bad = tmp_path / "good.mp4", tmp_path / "notes.txt"
    good.write_bytes(os.urandom(1200))
    bad.write_bytes(b"just text")
    code, out, err = run(["convert", str(good), str(bad), str(tmp_path / "missing.mp4"), "--json"], capsys)
    assert code == 1
    assert err.splitlines() == ["mp3svc: %s: No such file." % (tmp_path / "missing.mp4"),
                                "mp3svc: %s: The upload is not a video or audio file." % bad]
    files = json.loads(out)["files"]
    assert [f["status"] for f in files] == ["done", "failed", "failed"]
    assert files[1]["error"] == "conversion_failed" and files[2]["error"] == "no_file"
    assert (tmp_path / "good.mp3").exists() and not (tmp_path / "notes.mp3").exists()


def test_a_bad_option_stops_after_the_first_file(capsys, gateway, tmp_path):
    gateway.refuse = (400, "invalid_option", "channels must be 1 or 2.")
    files = []
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"x" * 10)
        files.append(str(tmp_path / name))
    code, out, err = run(["convert", *files, "--channels", "3"], capsys)
    assert (code, out) == (1, "")
    assert err == "mp3svc: %s: channels must be 1 or 2.\n" % files[0]
    assert [m for m, *_ in gateway.log] == ["POST"]


@pytest.mark.parametrize("refusal, says", [
    ((403, "quota_exceeded", "This upload would take you over your quota of 10 GiB."), "mp3svc rm"),
    ((413, "too_large", "The upload is over the limit of 1 GiB."), "limit of 1 GiB."),
    ((429, "too_many_jobs", "You have 4 jobs running.", {"Retry-After": "20"}), "Try again in 20 s."),
    ((503, "storage_unavailable", "The file store is not reachable; try again shortly."), "HTTP 503"),
])
def test_refused_uploads_exit_1_with_the_reason(capsys, gateway, tmp_path, refusal, says):
    gateway.refuse = refusal
    (tmp_path / "a.mp4").write_bytes(b"x" * 10)
    code, _, err = run(["convert", str(tmp_path / "a.mp4")], capsys)
    assert code == 1
    assert err.startswith("mp3svc: %s: %s" % (tmp_path / "a.mp4", refusal[2]))
    assert says in err


def test_progress_bars_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    quiet, tty = cli.Output(False, stderr=io.StringIO()), cli.Output(False, stderr=Tty())
    for out in (quiet, tty):
        with out.bar(total=10, desc="upload x") as bar:
            bar.update(10)
    assert quiet.stderr.getvalue() == ""
    assert "upload x" in tty.stderr.getvalue()


# --- Ctrl-C at any moment: real SIGINTs to the console script's code, in a process of its own ----
CTRL_C_AT = r'''
import os, signal, sys
from mp3svc_client import signals

def ctrl_c(*_args):
    os.kill(os.getpid(), signal.SIGINT)

def after(owner, name):
    real = getattr(owner, name)
    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        ctrl_c()
        return result
    setattr(owner, name, wrapper)

def before(owner, name, presses=1):
    real = getattr(owner, name)
    def wrapper(*args, **kwargs):
        for _ in range(presses):
            ctrl_c()
        return real(*args, **kwargs)
    setattr(owner, name, wrapper)

moment, sys.argv = sys.argv[1], ["mp3svc"] + sys.argv[2:]
if moment == "while the modules load":
    class PressWhenHttpxLoads:
        def find_spec(self, name, path=None, target=None):
            if name == "httpx":
                ctrl_c()
    sys.meta_path.insert(0, PressWhenHttpxLoads())
else:
    from mp3svc_client import api, upload
    if moment == "as the upload completes":
        after(upload, "_send")
    elif moment == "twice, the second while winding down":
        before(upload._Patch, "perform")
        before(upload.UploadStore, "close")
    elif moment == "while closing, once the work is done":
        before(api.Api, "close")
raise SystemExit(signals.run())
'''


def ctrl_c_at(moment, *argv):
    proc = subprocess.run([sys.executable, "-c", CTRL_C_AT, moment, *argv], capture_output=True,
                          text=True, timeout=60, preexec_fn=sigint_default)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def test_ctrl_c_while_the_modules_load_says_interrupted_and_exits_130(gateway, tmp_path):
    (tmp_path / "a.mp4").write_bytes(os.urandom(500))
    assert ctrl_c_at("while the modules load", "convert", str(tmp_path / "a.mp4")) == (
        130, "", "mp3svc: Interrupted.\n")
    assert gateway.log == []


def test_ctrl_c_as_the_upload_completes_names_the_job_converting(capsys, gateway, tmp_path):
    (tmp_path / "a.mp4").write_bytes(os.urandom(500))
    code, out, err = ctrl_c_at("as the upload completes", "convert", str(tmp_path / "a.mp4"))
    (job_id,) = gateway.uploads
    assert (code, out) == (130, "")
    assert err == ("mp3svc: Interrupted once a.mp4 was uploaded: job %s goes on converting on the server "
                   "(mp3svc download %s).\n" % (job_id, job_id))
    assert len(gateway.uploads[job_id]["data"]) == 500
    gateway.log.clear()
    code, out, err = run(["convert", str(tmp_path / "a.mp4")], capsys)  # the same command again
    assert (code, err) == (0, "")
    assert [m for m, *_ in gateway.log if m in ("POST", "PATCH")] == []  # the same job, not uploaded twice
    assert list(gateway.uploads) == [job_id] and (tmp_path / "a.mp3").exists()


def test_a_second_ctrl_c_while_winding_down_changes_nothing(gateway, tmp_path):
    (tmp_path / "a.mp4").write_bytes(os.urandom(500))
    code, out, err = ctrl_c_at("twice, the second while winding down", "convert", str(tmp_path / "a.mp4"))
    assert (code, out) == (130, "")
    assert err == ("mp3svc: Interrupted after 0 B of 500 B of a.mp4; run the same command again to "
                   "resume.\n")


def test_ctrl_c_once_the_work_is_done_leaves_exit_0(gateway, tmp_path):
    (tmp_path / "a.mp4").write_bytes(os.urandom(500))
    code, out, err = ctrl_c_at("while closing, once the work is done", "convert", str(tmp_path / "a.mp4"))
    assert (code, out, err) == (0, "%s -> %s\n" % (tmp_path / "a.mp4", tmp_path / "a.mp3"), "")
    assert (tmp_path / "a.mp3").exists()
