"""POST /jobs/archive over real HTTP: real MP3s converted by ffmpeg, read from GridFS (nx-27017) and
streamed as one ZIP, read back with `zipfile`; every refusal is JSON and comes before any byte."""
import io
import json
import os
import zipfile

import requests

from services.gateway.schemas import ARCHIVE_MAX_JOBS
from tests.integration.conftest import bearer

MISSING = "f" * 32


def archive(stack, token, job_ids, **kwargs):
    return stack.http.post(stack.url("/jobs/archive"), json={"job_ids": job_ids},
                           headers=bearer(token), **kwargs)


def error_of(response):
    assert response.headers["Content-Type"] == "application/json", response.headers
    return response.status_code, response.json()["error"]


def converted(stack, token, *paths):
    """Uploads each (path, name) and waits until every job is done: their job documents."""
    ids = [stack.upload(token, path, filename=name).json()["job_id"] for path, name in paths]
    jobs = [stack.wait_job(token, job_id) for job_id in ids]
    assert [job["status"] for job in jobs] == ["done"] * len(jobs), jobs
    return jobs


def test_a_zip_of_real_mp3s_named_as_downloads(stack, media):
    token = stack.token_for("zip@example.com")
    jobs = converted(stack, token,
                     (media.video("lecture.mp4", duration=3.0), "lecture.mp4"),
                     (media.video("talk.mkv", duration=2.0), "talk.mkv"),
                     (media.video("lecture.mp4", duration=3.0), "lecture.mov"))  # the same name again
    response = archive(stack, token, [job["job_id"] for job in jobs], stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="mp3svc-')
    assert response.headers["Cache-Control"] == "no-store"
    body = b"".join(response.iter_content(1 << 16))
    assert len(body) == int(response.headers["Content-Length"])

    with zipfile.ZipFile(io.BytesIO(body)) as zipped:
        assert zipped.testzip() is None  # every CRC right
        assert zipped.namelist() == ["lecture.mp3", "talk.mp3", "lecture (2).mp3"]
        for info, job in zip(zipped.infolist(), jobs):
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.flag_bits & 0x08  # sizes and CRC after the data: written as it streams
            downloaded = stack.download(token, job["job_id"])
            assert downloaded.status_code == 200
            assert info.file_size == job["size"] == len(downloaded.content)
            assert zipped.read(info) == downloaded.content
            assert zipped.read(info)[:3] == b"ID3"


def test_refusals_come_before_any_byte(stack, media, tmp_path):
    token = stack.token_for("refused@example.com")
    other = stack.token_for("other@example.com")
    (done,) = converted(stack, token, (media.video("ok.mp4", duration=1.0), "ok.mp4"))
    (theirs,) = converted(stack, other, (media.video("ok.mp4", duration=1.0), "theirs.mp4"))
    noise = tmp_path / "noise.mkv"
    noise.write_bytes(os.urandom(50000))
    failed = stack.wait_job(token, stack.upload(token, str(noise)).json()["job_id"])
    assert failed["status"] == "failed"
    ok = done["job_id"]

    assert error_of(archive(stack, token, [ok, MISSING])) == (404, "not_found")
    assert error_of(archive(stack, token, [ok, theirs["job_id"]])) == (404, "not_found")
    assert error_of(archive(stack, other, [ok])) == (404, "not_found")
    refused = archive(stack, token, [ok, failed["job_id"]])
    assert error_of(refused) == (409, "not_ready")
    assert failed["job_id"] in refused.json()["message"]
    for job_ids in ([], [ok, ok], [ok, "nope"], [ok.upper()], [1],
                    ["%032x" % n for n in range(ARCHIVE_MAX_JOBS + 1)]):
        assert error_of(archive(stack, token, job_ids)) == (400, "invalid_input"), job_ids
    for body in ({}, {"job_ids": ok}, {"ids": [ok]}):
        response = stack.http.post(stack.url("/jobs/archive"), json=body, headers=bearer(token))
        assert error_of(response) == (400, "invalid_input"), body
    response = stack.http.post(stack.url("/jobs/archive"), data="[", headers=dict(
        bearer(token), **{"Content-Type": "application/json"}))
    assert error_of(response) == (400, "bad_request")
    response = stack.http.post(stack.url("/jobs/archive"), data={"job_ids": ok}, headers=bearer(token))
    assert error_of(response) == (415, "unsupported_media_type")
    assert error_of(archive(stack, None, [ok])) == (401, "unauthorized")
    assert error_of(archive(stack, "not.a.token", [ok])) == (401, "invalid_token")
    assert archive(stack, token, [ok]).status_code == 200


def test_the_web_pages_cookie_from_its_own_page_only(stack, media):
    token = stack.token_for("page@example.com")
    (done,) = converted(stack, token, (media.video("ok.mp4", duration=1.0), "page.mp4"))
    page = requests.Session()
    assert page.post(stack.url("/session"), json={"email": "page@example.com",
                                                  "password": "correct horse battery"}).status_code == 200
    body = json.dumps({"job_ids": [done["job_id"]]})
    headers = {"Content-Type": "application/json"}
    foreign = page.post(stack.url("/jobs/archive"), data=body,
                        headers=dict(headers, Origin="http://elsewhere.example"))
    assert error_of(foreign) == (403, "csrf")
    own = page.post(stack.url("/jobs/archive"), data=body, headers=dict(headers, Origin=stack.base))
    assert own.status_code == 200 and own.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(own.content)) as zipped:
        assert zipped.namelist() == ["page.mp3"] and zipped.testzip() is None
    page.close()
