"""Quotas, the active-job cap, retention, deleting jobs and what failed jobs keep: real HTTP, RabbitMQ,
nx-27017, ffmpeg and SMTP."""
import base64
import datetime
import logging
import os
import subprocess

import eventlet
import pytest
import requests
from nameko.standalone.rpc import ServiceRpcProxy

from services.auth.service import AuthService
from services.converter.dependencies import FFmpegEncoder
from services.converter.service import ConverterService
from services.gateway.service import GatewayService
from services.notification.service import NotificationService
from tests.helpers import FFMPEG, wait_until
from tests.integration.conftest import Api, bearer

QUOTA = 400 * 1024


def ids(collection, query=None):
    # find() rather than count_documents: nx-27017 fails to count a collection never written
    return [doc["_id"] for doc in collection.find(query or {}, projection={"_id": 1})]


def chunks(db, bucket, file_id):
    """Chunks of one file (nx-27017 shows chunks only to a query by files_id)."""
    from bson import ObjectId
    return len(ids(db[bucket + ".chunks"], {"files_id": ObjectId(str(file_id))}))


def stored(db):
    """What is in MongoDB: job records, and files and chunks per bucket (chunks as a real MongoDB
    shows them; nx-27017 answers a scan of chunks with none, hence `chunks()` for known files)."""
    return {"jobs": len(ids(db.jobs)),
            **{"%s.%s" % (bucket, part): len(ids(db["%s.%s" % (bucket, part)]))
               for bucket in ("videos", "mp3s") for part in ("files", "chunks")}}


NOTHING = {"jobs": 0, "videos.files": 0, "videos.chunks": 0, "mp3s.files": 0, "mp3s.chunks": 0}


def start(runner_factory, config, *services):
    runner = runner_factory(config, *services)
    runner.start()
    api = Api("http://" + config["WEB_SERVER_ADDRESS"])
    if GatewayService in services:
        wait_until(lambda: api.http.get(api.url("/livez")).status_code == 200, 30,
                   message="gateway up")
    return api


def multipart(filename, blocks, boundary="quota-test-boundary"):
    """A multipart body as a generator: requests sends it chunked, without Content-Length."""
    def body():
        yield ('--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
               'Content-Type: application/octet-stream\r\n\r\n' % (boundary, filename)).encode()
        for block in blocks:
            yield block
        yield ("\r\n--%s--\r\n" % boundary).encode()
    return body(), {"Content-Type": "multipart/form-data; boundary=%s" % boundary}


def random_file(tmp_path, name, size):
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return str(path)


def silent_flac(directory, name, seconds, rate=8000, channels="mono"):
    """Hours of silence as FLAC: a few hundred KB, made in seconds."""
    path = os.path.join(str(directory), name)
    if not os.path.exists(path):
        subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                        "anullsrc=r=%d:cl=%s" % (rate, channels), "-t", str(seconds),
                        "-c:a", "flac", path], check=True)
    return path


# --- quota ------------------------------------------------------------------------------------
@pytest.fixture
def quota_config(service_config):
    service_config["USER_QUOTA_BYTES"] = QUOTA
    return service_config


def test_upload_over_quota_is_refused_before_anything_is_stored(quota_config, runner_factory, db,
                                                                tmp_path):
    api = start(runner_factory, quota_config, GatewayService, AuthService)
    token = api.token_for("quota@example.com")
    response = api.upload(token, random_file(tmp_path, "big.bin", QUOTA + 100 * 1024))
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "quota_exceeded"
    assert "quota" in response.json()["message"]
    assert stored(db) == NOTHING

    # no Content-Length: refused while streaming, at the block that would go over
    body, headers = multipart("big.bin", [os.urandom(64 * 1024) for _ in range(10)])
    response = api.http.post(api.url("/upload"), data=body, headers=dict(headers, **bearer(token)))
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "quota_exceeded"
    assert stored(db) == NOTHING

    # within the quota, chunked too: accepted (the converter is not running: it stays queued)
    body, headers = multipart("small.bin", [os.urandom(64 * 1024) for _ in range(3)])
    response = api.http.post(api.url("/upload"), data=body, headers=dict(headers, **bearer(token)))
    assert response.status_code == 202, response.text
    assert stored(db)["videos.files"] == 1
    # what is stored counts: 192 KiB held, so 300 KiB more is over the quota
    response = api.upload(token, random_file(tmp_path, "more.bin", 300 * 1024))
    assert response.status_code == 403 and response.json()["error"] == "quota_exceeded"
    assert stored(db)["videos.files"] == 1
    # another user has a quota of their own
    other = api.token_for("other@example.com")
    assert api.upload(other, random_file(tmp_path, "more.bin", 300 * 1024)).status_code == 202


def chunked_upload(api, token, name, size, block=16 * 1024):
    """POST /upload without Content-Length, in blocks, on a connection of its own."""
    body, headers = multipart(name, [os.urandom(block) for _ in range(size // block)])
    with requests.Session() as http:
        return http.post(api.url("/upload"), data=body, headers=dict(headers, **bearer(token)))


def stored_video_bytes(db):
    return sum(doc["length"] for doc in db["videos.files"].find({}, projection={"length": 1}))


def test_parallel_chunked_uploads_cannot_together_pass_the_quota(quota_config, runner_factory, db):
    """Issue 18: an upload without Content-Length reserved nothing, so four of them at once could
    each use all of the room left: a user at quota minus a little ended at four times that."""
    api = start(runner_factory, quota_config, GatewayService, AuthService)  # no converter: jobs stay
    token = api.token_for("greedy@example.com")
    size = QUOTA - 32 * 1024   # each alone fits; any two together do not
    responses = list(eventlet.GreenPool(4).imap(
        lambda i: chunked_upload(api, token, "part%d.bin" % i, size), range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) <= 1 and set(statuses) <= {202, 403}, statuses
    for refused in (r for r in responses if r.status_code == 403):
        assert refused.json()["error"] == "quota_exceeded"
    assert stored_video_bytes(db) <= QUOTA
    assert len(ids(db.jobs)) == statuses.count(202)   # nothing of the refused ones is left

    # a resumable upload's Upload-Length counts while it streams, against chunked ones too
    other = api.token_for("mixed@example.com")
    created = requests.post(api.url("/uploads"), headers=dict(bearer(other), **{
        "Tus-Resumable": "1.0.0", "Upload-Length": str(QUOTA // 2),
        "Upload-Metadata": "filename %s" % base64.b64encode(b"tus.bin").decode()}))
    assert created.status_code == 201, created.text
    response = chunked_upload(api, other, "chunked.bin", QUOTA // 2 + 64 * 1024)
    assert response.status_code == 403 and response.json()["error"] == "quota_exceeded"
    assert chunked_upload(api, other, "small.bin", QUOTA // 4).status_code == 202


@pytest.fixture
def store_limit_config(service_config):
    service_config["STORAGE_LIMIT_BYTES"] = 300 * 1024
    return service_config


def test_uploads_past_the_store_limit_get_507(store_limit_config, runner_factory, db, tmp_path):
    api = start(runner_factory, store_limit_config, GatewayService, AuthService)
    first, second = api.token_for("first@example.com"), api.token_for("second@example.com")
    assert api.upload(first, random_file(tmp_path, "a.bin", 200 * 1024)).status_code == 202
    # another user, with Content-Length: refused before a byte is stored
    response = api.upload(second, random_file(tmp_path, "b.bin", 200 * 1024))
    assert response.status_code == 507, response.text
    assert response.json()["error"] == "storage_full" and response.json()["message"]
    # without Content-Length: refused at the block that would pass the limit
    response = chunked_upload(api, second, "c.bin", 200 * 1024)
    assert response.status_code == 507 and response.json()["error"] == "storage_full"
    assert stored_video_bytes(db) == 200 * 1024 and len(ids(db.jobs)) == 1
    # what fits still goes in
    assert api.upload(second, random_file(tmp_path, "d.bin", 50 * 1024)).status_code == 202


def test_a_conversion_whose_mp3_would_pass_the_quota_fails(quota_config, stack, db, tmp_path):
    """MP3s count when stored: a small FLAC of silence at bitrate=320 makes an MP3 far bigger."""
    path = silent_flac(tmp_path, "quiet.flac", 60)
    assert os.path.getsize(path) < QUOTA // 4
    token = stack.token_for("loud@example.com")
    with open(path, "rb") as handle:
        response = stack.http.post(stack.url("/upload"), headers=bearer(token),
                                   files={"file": ("quiet.flac", handle)}, data={"bitrate": "320"})
    assert response.status_code == 202, response.text
    job = stack.wait_job(token, response.json()["job_id"])
    assert job["status"] == "failed" and "quota" in job["error"], job
    assert stored(db)["mp3s.files"] == 0
    wait_until(lambda: stored(db)["videos.files"] == 0, 10, message="the video to be dropped")
    # the same file at a low bitrate fits
    with open(path, "rb") as handle:
        response = stack.http.post(stack.url("/upload"), headers=bearer(token),
                                   files={"file": ("quiet.flac", handle)}, data={"bitrate": "32"})
    assert stack.wait_job(token, response.json()["job_id"])["status"] == "done"


# --- active-job cap ---------------------------------------------------------------------------
@pytest.fixture
def cap_config(service_config):
    service_config["USER_MAX_ACTIVE_JOBS"] = 2
    return service_config


def test_active_job_cap_holds_under_concurrent_uploads(cap_config, runner_factory, db, tmp_path):
    api = start(runner_factory, cap_config, GatewayService, AuthService)  # no converter: jobs stay
    token = api.token_for("busy@example.com")
    path = random_file(tmp_path, "clip.bin", 256 * 1024)

    def upload(_):
        with requests.Session() as http:
            with open(path, "rb") as handle:
                return http.post(api.url("/upload"), headers=bearer(token),
                                 files={"file": ("clip.bin", handle)})
    responses = list(eventlet.GreenPool(8).imap(upload, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * 2 + [429] * 6, statuses
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["error"] == "too_many_jobs"
        assert int(refused.headers["Retry-After"]) > 0
    assert stored(db)["jobs"] == 2 and stored(db)["videos.files"] == 2  # nothing of the refused
    assert api.upload(token, path).status_code == 429

    # deleting a job frees its slot
    job_id = next(r.json()["job_id"] for r in responses if r.status_code == 202)
    assert api.http.delete(api.url("/jobs/%s" % job_id), headers=bearer(token)).status_code == 204
    assert api.upload(token, path).status_code == 202
    assert api.upload(token, path).status_code == 429


# --- what failed jobs keep --------------------------------------------------------------------
def test_job_failed_because_of_its_upload_loses_its_video(stack, db, tmp_path):
    token = stack.token_for("junk@example.com")
    job_id = stack.upload(token, random_file(tmp_path, "junk.mp4", 50 * 1024)).json()["job_id"]
    job = stack.wait_job(token, job_id)
    assert job["status"] == "failed" and "not a video or audio format" in job["error"]
    # deleted right after the failure is recorded
    wait_until(lambda: db.jobs.find_one({"_id": job_id})["video_id"] is None, 10,
               message="the video to be dropped")
    assert stored(db)["videos.files"] == 0 and stored(db)["videos.chunks"] == 0
    assert job["expires_at"] is not None


def test_job_that_gave_up_keeps_its_video_for_a_requeue(runner_factory, service_config, db, media,
                                                        mail_sink):
    service_config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port)
    api = start(runner_factory, service_config, GatewayService, AuthService, NotificationService)
    token = api.token_for("patient@example.com")
    job_id = api.upload(token, media.video("gave-up.mp4", duration=1.0)).json()["job_id"]
    # as if MAX_ATTEMPTS converters had died on it: the next claim gives up
    db.jobs.update_one({"_id": job_id}, {"$set": {"attempts": service_config["MAX_ATTEMPTS"]}})
    start(runner_factory, service_config, ConverterService)
    job = api.wait_job(token, job_id)
    assert job["status"] == "failed" and "requeue" in job["error"]
    record = db.jobs.find_one({"_id": job_id})
    assert record["video_id"] is not None
    assert ids(db["videos.files"]) == [record["video_id"]]
    with ServiceRpcProxy("gateway", service_config, timeout=20) as gateway:
        assert gateway.requeue_job(job_id)["status"] == "queued"
    job = api.wait_job(token, job_id)
    assert job["status"] == "done", job
    assert stored(db)["videos.files"] == 0 and stored(db)["mp3s.files"] == 1


@pytest.fixture
def long_media_config(service_config):
    service_config["MAX_UPLOAD_BYTES"] = 50 * 1024 * 1024
    return service_config


def test_five_hour_silence_fails_within_seconds(long_media_config, stack, db, tmp_path_factory):
    """MAX_DURATION (default 4 h) judged from a probe of the input, not after encoding 4 hours."""
    path = silent_flac(tmp_path_factory.mktemp("long"), "five-hours.flac", 5 * 3600)
    assert stack.config["MAX_DURATION"] == 4 * 3600
    token = stack.token_for("long@example.com")
    job_id = stack.upload(token, path).json()["job_id"]
    started = datetime.datetime.now()
    job = stack.wait_job(token, job_id, timeout=15)
    elapsed = (datetime.datetime.now() - started).total_seconds()
    assert job["status"] == "failed" and "longer than" in job["error"], job
    assert elapsed < 15
    assert stored(db)["videos.files"] == 0  # too long is the upload's fault


# --- retention --------------------------------------------------------------------------------
RETENTION = 0.002  # hours: 7.2 s


@pytest.fixture
def retention_config(service_config):
    service_config["RETENTION_HOURS"] = RETENTION
    return service_config


def parse(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_finished_jobs_and_their_files_expire(retention_config, stack, db, media):
    token = stack.token_for("fleeting@example.com")
    job_id = stack.upload(token, media.video("fleeting.mp4", duration=1.0)).json()["job_id"]
    job = stack.wait_job(token, job_id)
    assert job["status"] == "done"
    expires = parse(job["expires_at"])
    assert expires - parse(job["updated_at"]) == datetime.timedelta(hours=RETENTION)
    [mail] = stack.mail.wait_for(1)
    assert "deleted on %s" % expires.strftime("%Y-%m-%d %H:%M UTC") in stack.mail.text_of(mail)
    assert stored(db)["mp3s.files"] == 1 and chunks(db, "mp3s", job["mp3_id"]) == 1

    wait_until(lambda: stack.job(token, job_id).status_code == 404, 40, interval=0.5,
               message="the job to expire")
    assert datetime.datetime.utcnow() >= expires
    assert stack.download(token, job["mp3_id"]).status_code == 404
    assert stored(db) == NOTHING and chunks(db, "mp3s", job["mp3_id"]) == 0


# --- DELETE /jobs/<id> ------------------------------------------------------------------------
def ffmpeg_children():
    """ffmpeg processes started by this (test) process: the converter runs in it."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as handle:
                stat = handle.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if name == "ffmpeg" and ppid == os.getpid():
            found.append(int(pid))
    return found


def waiting(stack):
    """The pids of the converter's processes started ahead and waiting on their stdin
    (services/converter/media/warm.py); None while one of those starts."""
    container = next(each for each in stack.runner.containers if each.service_name == "converter")
    provider = next(each for each in container.dependencies if isinstance(each, FFmpegEncoder))
    warm = provider.encoder.warm
    return None if warm.starting else {proc.pid for proc in warm.ready.values()}


def converting(stack):
    """The ffmpeg children of this process (the converter runs in it) but those waiting ahead;
    None while one of those starts."""
    ahead = waiting(stack)
    return None if ahead is None else [pid for pid in ffmpeg_children() if pid not in ahead]


def test_delete_stops_a_running_conversion_and_leaves_nothing(stack, db, tmp_path_factory,
                                                              caplog):
    caplog.set_level(logging.INFO)
    # an hour of 48 kHz stereo silence: tiny to upload, tens of seconds of encoding
    path = silent_flac(tmp_path_factory.mktemp("hour"), "hour.flac", 3600, 48000, "stereo")
    token = stack.token_for("deleter@example.com")
    other = stack.token_for("bystander@example.com")
    ahead = wait_until(lambda: (lambda pids: pids and len(pids) == 2 and pids)(waiting(stack)), 30,
                       message="the converter's encoder and probe waiting")
    job_id = stack.upload(token, path).json()["job_id"]
    running = wait_until(lambda: stack.job(token, job_id).json()["status"] == "converting" and
                         converting(stack), 30, message="ffmpeg to run")
    assert set(running) <= ahead  # the conversion took the encoder waiting (a FLAC: no cover)

    video_id = db.jobs.find_one({"_id": job_id})["video_id"]
    assert chunks(db, "videos", video_id) >= 1
    url = stack.url("/jobs/%s" % job_id)
    assert stack.http.delete(url, headers=bearer(other)).status_code == 404  # not theirs
    response = stack.http.delete(url, headers=bearer(token))
    assert response.status_code == 204 and response.content == b""
    deleted = datetime.datetime.now()
    assert stack.job(token, job_id).status_code == 404
    assert stack.http.delete(url, headers=bearer(token)).status_code == 404

    # the converter notices at its next lease renewal (LEASE_SECONDS / 3), kills ffmpeg, and drops
    # whatever it made; only then could an MP3 or an email have appeared
    wait_until(lambda: "job %s: lease lost" % job_id in caplog.text, 30,
               message="the converter to give the job up")
    stopped = (datetime.datetime.now() - deleted).total_seconds()
    found = wait_until(lambda: (lambda pids: None if pids is None else [pids])(converting(stack)),
                       10, 0.01, message="no process being started ahead")[0]
    assert found == []
    assert stopped < stack.config["LEASE_SECONDS"], stopped
    assert stored(db) == NOTHING and chunks(db, "videos", video_id) == 0
    assert stack.mail.messages() == []
    assert "job %s: done" % job_id not in caplog.text
    assert "job %s: failed" % job_id not in caplog.text
