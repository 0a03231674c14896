"""Resumable uploads (tus 1.0.0) over real HTTP with a real tus client (tuspy), through a real TCP
proxy that drops connections; the video lands in GridFS (nx-27017) and converts with ffmpeg."""
import base64
import datetime
import email.utils
import hashlib
import os
import socket

import eventlet

import pymongo
from bson import ObjectId
import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusUploadFailed
from tusclient.uploader import Uploader

from services.auth.service import AuthService
from services.common import constants as c
from services.common.jobs import as_datetime
from services.common.options import parse_options
from services.converter.service import ConverterService
from services.gateway.service import GatewayService
from services.notification.service import NotificationService
from services.storage.files import CHUNK_SIZE, FileStore
from tests.conftest import JWT_SECRET
from tests.helpers import probe, wait_until
from tests.integration.conftest import Api, bearer
from tests.integration.processes import ProcessStack
from tests.integration.proxy import proxy_fixture  # noqa: F401 (the proxy_to fixture)

TUS = {"Tus-Resumable": "1.0.0"}


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def video(media):
    """About 10 MB (PCM sound in Matroska): ten GridFS chunks and a partial one."""
    path = media.video("tus-lecture.mkv", duration=120, size="32x32", rate=1, acodec="pcm_s16le")
    assert 9 * CHUNK_SIZE < os.path.getsize(path) < 40 * CHUNK_SIZE
    return path


@pytest.fixture
def stack(runner_factory, service_config, mail_sink):
    """The gateway and auth; `stack.start_converter()` adds the converter and notification, so a test
    can look at an upload before it is converted (the converter drops the video once done)."""
    service_config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port)
    runner_factory(service_config, GatewayService, AuthService).start()
    api = Api("http://" + service_config["WEB_SERVER_ADDRESS"])
    wait_until(lambda: api.http.get(api.url("/healthz")).status_code == 200, 30, message="gateway healthy")
    api.config = service_config
    api.start_converter = lambda: runner_factory(service_config, ConverterService,
                                                 NotificationService).start()
    yield api
    api.http.close()


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def stored_sha256(db, video_id):
    stored = FileStore(db).open(c.VIDEOS_BUCKET, video_id)
    digest = hashlib.sha256()
    for block in stored.iter_range():
        digest.update(block)
    return digest.hexdigest()


def uploader(base, token, path, **kwargs):
    client = TusClient(base + "/uploads", headers=bearer(token))
    return Uploader(file_path=path, client=client, **kwargs)


def head(base, token, url):
    return requests.head(url if url.startswith("http") else base + url, headers=dict(TUS, **bearer(token)))


def create(base, token, length, metadata=None, **headers):
    headers = dict(dict(TUS, **bearer(token), **{"Upload-Length": str(length)}), **headers)
    if metadata:
        headers["Upload-Metadata"] = ",".join("%s %s" % (k, b64(v)) for k, v in metadata.items())
    return requests.post(base + "/uploads", headers=headers)


def patch(base, token, location, offset, data, **headers):
    headers = dict(dict(TUS, **bearer(token), **{"Upload-Offset": str(offset),
                                                 "Content-Type": "application/offset+octet-stream"}),
                   **headers)
    return requests.patch(base + location, data=data, headers=headers)


def reveal_chunks(db, video_id):
    """nx-27017 hides the chunks of a file without a files document: give it one, then count."""
    db["videos.files"].insert_one({"_id": video_id, "length": 0, "chunkSize": CHUNK_SIZE,
                                   "uploadDate": datetime.datetime.utcnow(), "filename": "probe"})
    try:
        return len(list(db["videos.chunks"].find({"files_id": video_id}, {"n": 1})))
    finally:
        db["videos.files"].delete_one({"_id": video_id})


def test_chunk_appender_across_requests_and_retries(mongo_uri, mongo_db):
    """The storage under PATCH: pieces of any size, each by a new appender (another request, maybe
    another gateway) from the recorded (offset, tail); a replay from an earlier record (a crash after
    chunks were stored, before the record moved) rewrites the same chunks; read back through the store."""
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=3000)
    try:
        store = FileStore(client[mongo_db])
        store.ensure_indexes()
        data = os.urandom(5 * CHUNK_SIZE + 777)
        video_id = ObjectId()
        offset, tail, records = 0, b"", []
        for piece in (100, CHUNK_SIZE, 3 * CHUNK_SIZE // 2 + 1, 10, CHUNK_SIZE + 3):
            appender = store.append(c.VIDEOS_BUCKET, video_id, offset, tail)
            appender.write(data[offset:offset + piece])
            assert appender.offset == offset + piece
            offset, tail = appender.offset, appender.tail
            assert tail == data[offset - offset % CHUNK_SIZE:offset]
            records.append((offset, tail))
        replay = store.append(c.VIDEOS_BUCKET, video_id, *records[1])   # from an earlier record
        assert replay.write(data[records[1][0]:offset]) >= 2                # chunks stored again
        last = store.append(c.VIDEOS_BUCKET, video_id, offset, tail)
        last.write(data[offset:])
        assert last.finish("f.bin", {"owner": "x"}) == len(data)
        stored = store.open(c.VIDEOS_BUCKET, video_id)
        assert stored.length == len(data) and stored.read() == data
        with pytest.raises(ValueError):
            store.append(c.VIDEOS_BUCKET, video_id, 10, b"")            # a tail that does not fit
        store.delete(c.VIDEOS_BUCKET, video_id)
        assert store.open(c.VIDEOS_BUCKET, video_id) is None
    finally:
        client.close()


def test_options_advertise_the_protocol(stack):
    response = requests.options(stack.url("/uploads"))
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {"creation", "termination", "expiration"}
    assert int(response.headers["Tus-Max-Size"]) == stack.config["MAX_UPLOAD_BYTES"]


def test_dropped_mid_patch_resumes_and_converts(stack, db, video, tmp_path, proxy_to):
    token = stack.token_for("tus@example.com")
    proxy = proxy_to()
    size = os.path.getsize(video)
    part = 3 * CHUNK_SIZE + 12345  # PATCHes that end inside a GridFS chunk
    first = uploader(proxy.base, token, video, chunk_size=part,
                     metadata={"filename": "tus lecture.mkv", "bitrate": "192",
                               "filetype": "video/x-matroska"})
    first.upload_chunk()
    assert first.offset == part
    assert first.url.startswith(proxy.base + "/uploads/")

    proxy.cut_after(CHUNK_SIZE + 4000)   # the link drops 1 MiB and a bit into the second PATCH
    with pytest.raises(TusUploadFailed):
        first.upload_chunk()
    assert proxy.cuts == 1
    # what arrived before the drop is kept: the whole first chunk it completed, and the bytes after,
    # once the dropped PATCH has stored them and let its writer's claim go (before that, HEAD may
    # tell the chunks stored so far)
    job_id = first.url.rsplit("/", 1)[1]
    wait_until(lambda: (db.jobs.find_one({"_id": job_id}) or {}).get("upload_writer") is None
               and (db.jobs.find_one({"_id": job_id}) or {}).get("upload_offset", 0) > part, 10,
               message="the dropped PATCH over")
    held = int(head(stack.base, token, first.url).headers["Upload-Offset"])
    assert part < held <= 2 * part

    # Matroska converts as it arrives: a queued job from its first stored chunk (test_streaming.py)
    assert stack.job(token, job_id).json()["status"] == "queued"
    sent_before = proxy.sent
    resumed = uploader(proxy.base, token, video, url=first.url, chunk_size=part)
    assert resumed.offset == held                          # tuspy asked with HEAD
    resumed.upload()
    assert resumed.offset == size
    assert proxy.sent - sent_before < size - held + 8192   # only the rest went again (plus headers)

    record = db.jobs.find_one({"_id": job_id})
    assert record["status"] == "queued" and record["size"] == size
    assert record["options"] == parse_options({"bitrate": "192"})  # as POST /upload stores them
    assert stored_sha256(db, record["video_id"]) == sha256(video)
    assert stack.job(token, job_id).json()["status"] == "queued"

    stack.start_converter()
    job = stack.wait_job(token, job_id)
    assert job["status"] == "done", job
    assert job["filename"] == "tus lecture.mkv"
    mp3 = stack.download(token, job["mp3_id"])
    assert mp3.status_code == 200
    (tmp_path / "out.mp3").write_bytes(mp3.content)
    assert abs(probe(tmp_path / "out.mp3")[1] - probe(video)[1]) <= 0.1
    # a complete upload: HEAD says so, a repeated last PATCH is harmless, termination is refused
    done = head(stack.base, token, first.url)
    assert done.headers["Upload-Offset"] == str(size) and "Upload-Expires" not in done.headers
    assert patch(stack.base, token, "/uploads/" + job_id, size, b"").status_code == 204
    refused = requests.delete(first.url.replace(proxy.base, stack.base), headers=dict(TUS, **bearer(token)))
    assert refused.status_code == 409 and refused.json()["error"] == "upload_finished"


def test_protocol_errors(stack):
    token = stack.token_for("errors@example.com")
    created = create(stack.base, token, 5000, {"filename": "a.mp4"})
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert location.startswith("/uploads/") and len(location) == len("/uploads/") + 32
    expires = email.utils.parsedate_to_datetime(created.headers["Upload-Expires"])
    timeout = stack.config["UPLOAD_TIMEOUT"]
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((expires - now).total_seconds() - timeout) < 5

    def error(response, status, code):
        assert response.status_code == status, (response.status_code, response.text)
        assert response.headers["Tus-Resumable"] == "1.0.0"
        if response.request.method != "HEAD":
            assert response.json()["error"] == code
        return response

    assert patch(stack.base, token, location, 0, b"x" * 1000).status_code == 204
    error(patch(stack.base, token, location, 0, b"x" * 10), 409, "offset_mismatch")
    error(patch(stack.base, token, location, 1500, b"x" * 10), 409, "offset_mismatch")
    error(patch(stack.base, token, location, 1000, b"x" * 4001), 413, "too_large")
    error(patch(stack.base, token, location, 1000, b"x", **{"Content-Type": "text/plain"}), 415,
          "unsupported_media_type")
    old = patch(stack.base, token, location, 1000, b"x", **{"Tus-Resumable": "0.2.2"})
    assert error(old, 412, "unsupported_version").headers["Tus-Version"] == "1.0.0"
    error(patch(stack.base, token, location, "ten", b"x"), 400, "invalid_header")
    state = head(stack.base, token, location)
    assert state.status_code == 200
    assert (state.headers["Upload-Offset"], state.headers["Upload-Length"]) == ("1000", "5000")
    assert state.headers["Cache-Control"] == "no-store" and "Upload-Expires" in state.headers

    other = stack.token_for("mallory@example.com")
    error(head(stack.base, other, location), 404, "not_found")
    error(patch(stack.base, other, location, 1000, b"y"), 404, "not_found")
    error(requests.delete(stack.url(location), headers=dict(TUS, **bearer(other))), 404, "not_found")
    error(head(stack.base, None, location), 401, "unauthorized")
    assert head(stack.base, token, location).headers["Upload-Offset"] == "1000"

    error(create(stack.base, token, stack.config["MAX_UPLOAD_BYTES"] + 1), 413, "too_large")
    error(create(stack.base, token, 0), 400, "empty_file")
    error(create(stack.base, token, 10, **{"Upload-Metadata": "filename ***"}), 400, "invalid_header")
    error(create(stack.base, token, "", **{"Upload-Length": ""}), 400, "invalid_header")
    error(create(stack.base, None, 10), 401, "unauthorized")
    error(create(stack.base, token, 10, {"filename": "a.mp4", "bitrate": "7"}), 400, "invalid_option")
    error(create(stack.base, token, 10, {"filename": "a.mp4", "bitrat": "128"}), 400, "invalid_option")
    error(head(stack.base, token, "/uploads/nothex"), 400, "invalid_id")


@pytest.fixture
def tight(service_config):
    service_config.update(USER_QUOTA_BYTES=3 * CHUNK_SIZE, USER_MAX_ACTIVE_JOBS=2)


def test_quota_and_active_jobs_as_for_post_upload(tight, stack):
    token = stack.token_for("tight@example.com")
    over = create(stack.base, token, 3 * CHUNK_SIZE + 1)
    assert over.status_code == 403 and over.json()["error"] == "quota_exceeded"
    assert over.headers["Tus-Resumable"] == "1.0.0"
    first = create(stack.base, token, 2 * CHUNK_SIZE)
    assert first.status_code == 201
    # an upload in progress holds its whole Upload-Length against the quota, and a slot
    assert create(stack.base, token, 2 * CHUNK_SIZE).json()["error"] == "quota_exceeded"
    assert create(stack.base, token, CHUNK_SIZE).status_code == 201
    busy = create(stack.base, token, 10)
    assert busy.status_code == 429 and busy.json()["error"] == "too_many_jobs"
    assert int(busy.headers["Retry-After"]) > 0
    # termination gives both back
    assert requests.delete(stack.url(first.headers["Location"]),
                           headers=dict(TUS, **bearer(token))).status_code == 204
    assert create(stack.base, token, 2 * CHUNK_SIZE).status_code == 201


def test_termination_leaves_nothing(stack, db):
    token = stack.token_for("quit@example.com")
    location = create(stack.base, token, 5 * CHUNK_SIZE).headers["Location"]
    assert patch(stack.base, token, location, 0, b"z" * (2 * CHUNK_SIZE + 77)).status_code == 204
    job_id = location.rsplit("/", 1)[1]
    record = db.jobs.find_one({"_id": job_id})
    assert record["upload_offset"] == 2 * CHUNK_SIZE + 77 and len(record["upload_tail"]) == 77
    assert reveal_chunks(db, record["video_id"]) == 2

    gone = requests.delete(stack.url(location), headers=dict(TUS, **bearer(token)))
    assert gone.status_code == 204 and gone.headers["Tus-Resumable"] == "1.0.0"
    assert db.jobs.find_one({"_id": job_id}) is None
    assert reveal_chunks(db, record["video_id"]) == 0
    assert head(stack.base, token, location).status_code == 404
    assert patch(stack.base, token, location, 2 * CHUNK_SIZE + 77, b"z").status_code == 404


def raw_patch(base, token, location, offset, length):
    """A PATCH whose headers announce `length` bytes, sent on a raw socket; the body follows later."""
    host, port = base.split("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(("PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                  "Tus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n"
                  "Content-Type: application/offset+octet-stream\r\n\r\n"
                  % (location, host, token, offset, length)).encode())
    return sock


def test_one_patch_at_a_time_per_upload(stack, db):
    """Issue 18: concurrent PATCHes at one offset were all let in, each loading the stored tail
    (up to 1 MiB) and writing the same chunks. Now the first holds the writer's claim while its
    body arrives; the others get 409 at once, before their body is read or the tail loaded."""
    token = stack.token_for("twice@example.com")
    location = create(stack.base, token, 4 * CHUNK_SIZE).headers["Location"]
    job_id = location.rsplit("/", 1)[1]
    assert patch(stack.base, token, location, 0, b"a" * (CHUNK_SIZE + 900)).status_code == 204
    offset = CHUNK_SIZE + 900
    first = raw_patch(stack.base, token, location, offset, CHUNK_SIZE)
    try:
        first.sendall(b"b" * 1000)   # part of its body: it holds the claim and waits for the rest
        wait_until(lambda: db.jobs.find_one({"_id": job_id}).get("upload_writer"), 30,
                   message="the first PATCH to claim the upload")
        others = list(eventlet.GreenPool(8).imap(
            lambda _: patch(stack.base, token, location, offset, b"c" * CHUNK_SIZE), range(8)))
        assert [r.status_code for r in others] == [409] * 8, [r.text for r in others]
        assert all(r.json()["error"] == "offset_mismatch" for r in others)
        assert db.jobs.find_one({"_id": job_id})["upload_offset"] == offset
        first.sendall(b"b" * (CHUNK_SIZE - 1000))
        answer = first.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 204"), answer
        assert "Upload-Offset: %d" % (offset + CHUNK_SIZE) in answer
    finally:
        first.close()
    record = db.jobs.find_one({"_id": job_id})
    assert record["upload_offset"] == offset + CHUNK_SIZE and record["upload_writer"] is None
    # the next PATCH may write again
    rest = 4 * CHUNK_SIZE - offset - CHUNK_SIZE
    assert patch(stack.base, token, location, offset + CHUNK_SIZE, b"d" * rest).status_code == 204
    assert db.jobs.find_one({"_id": job_id})["status"] == c.QUEUED
    stored = FileStore(db).open(c.VIDEOS_BUCKET, record["video_id"])
    assert stored.read() == b"a" * (CHUNK_SIZE + 900) + b"b" * CHUNK_SIZE + b"d" * rest


def test_unfinished_upload_expires_and_is_swept(stack, db):
    token = stack.token_for("slow@example.com")
    location = create(stack.base, token, 3 * CHUNK_SIZE).headers["Location"]
    assert patch(stack.base, token, location, 0, b"q" * (CHUNK_SIZE + 5)).status_code == 204
    job_id = location.rsplit("/", 1)[1]
    video_id = db.jobs.find_one({"_id": job_id})["video_id"]
    # its last PATCH was UPLOAD_TIMEOUT ago (the gateway's sweep timer runs every 10 s)
    stale = datetime.datetime.utcnow() - datetime.timedelta(seconds=stack.config["UPLOAD_TIMEOUT"] + 1)
    db.jobs.update_one({"_id": job_id}, {"$set": {"updated_at": stale}})
    wait_until(lambda: db.jobs.find_one({"_id": job_id}) is None, 30, interval=0.5,
               message="the expired upload swept")
    assert head(stack.base, token, location).status_code == 404
    assert reveal_chunks(db, video_id) == 0


@pytest.mark.slow
def test_resumes_after_every_service_is_killed(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink,
                                               video, db):
    procs = ProcessStack(tmp_path, {
        "AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri, "MONGO_DB": mongo_db,
        "JWT_SECRET": JWT_SECRET, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": mail_sink.port}).start()
    try:
        procs.healthy()
        api = Api(procs.base)
        token = api.token_for("crash@example.com")
        size = os.path.getsize(video)
        first = uploader(procs.base, token, video, chunk_size=2 * CHUNK_SIZE + 999,
                         metadata={"filename": "crash.mkv"})
        first.upload(stop_at=size // 2)
        held = first.offset
        assert 0 < held < size and held % CHUNK_SIZE                # ends inside a GridFS chunk
        job_id = first.url.rsplit("/", 1)[1]
        record = lambda: db.jobs.find_one({"_id": job_id})  # noqa: E731

        # the next PATCH is under way (3 MiB of its body sent) when every service is SIGKILLed
        with open(video, "rb") as handle:
            handle.seek(held)
            body = handle.read(3 * CHUNK_SIZE)
        assert held + len(body) < size
        sock = socket.create_connection(("127.0.0.1", procs.port))
        sock.sendall(("PATCH /uploads/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                      "Tus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n"
                      "Content-Type: application/offset+octet-stream\r\n\r\n"
                      % (job_id, token, held, size - held)).encode() + body)
        wait_until(lambda: record()["upload_offset"] > held, 30, message="a chunk of the PATCH recorded")
        procs.kill_all()                                  # SIGKILL, every service, mid-PATCH
        sock.close()
        at_kill = record()
        # never more claimed than stored: the offset is a chunk boundary with nothing in the tail
        assert at_kill["upload_offset"] % CHUNK_SIZE == 0 and at_kill["upload_tail"] == b""
        assert held < at_kill["upload_offset"] <= held + len(body)

        procs.start("auth", "gateway", "notification")  # the converter later: it drops converted videos
        procs.healthy()
        # the killed PATCH's writer claim (one PATCH at a time per upload) expires by itself
        # (with a margin: nx-27017 compares dates to the whole second)
        wait_until(lambda: as_datetime(record()["upload_writer_until"])
                   < datetime.datetime.utcnow() - datetime.timedelta(seconds=2),
                   30, interval=0.5, message="the killed PATCH's claim to expire")
        resumed = uploader(procs.base, token, video, url=first.url, chunk_size=2 * CHUNK_SIZE + 999)
        assert resumed.offset == at_kill["upload_offset"]     # HEAD after the restart
        resumed.upload()
        # queued at its first chunk (Matroska converts as it arrives), maybe claimed by the killed
        # converter: its lease expires and the restarted converter takes it over
        assert record()["status"] in ("queued", "converting") and not record()["upload_open"]
        assert stored_sha256(db, at_kill["video_id"]) == sha256(video)
        procs.start("converter")
        job = api.wait_job(token, job_id, timeout=90)
        assert job["status"] == "done", job
        mp3 = api.download(token, job["mp3_id"])
        assert mp3.status_code == 200 and len(mp3.content) > 10000
    finally:
        procs.stop()
