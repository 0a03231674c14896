"""Encode while uploading (issue 20), with the services as real processes: a tus upload in a
container that decodes from a stream converts while it arrives, and waits for its bytes; one that
is deleted or left to expire stops its conversion and leaves nothing; a converter killed mid-stream
is replaced and the job converted once; an MP4 whose moov comes last converts after its last byte."""
import os
import signal
import socket

import pytest
import requests

from services.common import constants as c
from services.storage.files import CHUNK_SIZE
from tests.conftest import JWT_SECRET
from devtools.stack import NotReady
from tests.helpers import probe, wait_until
from tests.integration.conftest import Api, bearer
from tests.integration.processes import ProcessStack
from tests.integration.test_tus import TUS, uploader

UPLOAD_TIMEOUT = 60  # the least the settings allow
PART = CHUNK_SIZE + 999  # tus PATCHes that end inside a GridFS chunk


@pytest.fixture
def lecture(media):
    """About 10 MB of Matroska (2 minutes of PCM sound, a tiny picture): ten GridFS chunks."""
    return media.video("stream-lecture.mkv", duration=120, size="32x32", rate=1, acodec="pcm_s16le")


@pytest.fixture
def moov_last(media):
    """An MP4 whose index (moov) follows its media data: not decodable before its last byte."""
    return media.video("moov-last.mp4", duration=60, size="32x32", rate=1, faststart=False,
                       acodec="pcm_s16le", extra=("-f", "mov"))


@pytest.fixture
def procs(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink):
    stack = ProcessStack(tmp_path, {
        "AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri, "MONGO_DB": mongo_db,
        "JWT_SECRET": JWT_SECRET, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": mail_sink.port,
        "UPLOAD_TIMEOUT": UPLOAD_TIMEOUT}).start()
    try:
        stack.healthy()
        stack.api = Api(stack.base)
        yield stack
    finally:
        stack.stop()


def half_sent(procs, token, path, name):
    """A tus upload of `path` stopped about halfway: (its uploader, its job id)."""
    first = uploader(procs.base, token, path, chunk_size=PART, metadata={"filename": name})
    first.upload(stop_at=os.path.getsize(path) // 2)
    assert 0 < first.offset < os.path.getsize(path)
    return first, first.url.rsplit("/", 1)[1]


def converting_halfway(procs, token, job_id):
    """Wait until the job converts what arrived and waits for the rest: its JSON then."""
    def waiting():
        response = procs.api.job(token, job_id)
        body = response.json() if response.status_code == 200 else {}
        return body if body.get("status") == c.CONVERTING and body.get("progress", 0) > 0 else None
    job = wait_until(waiting, 60, interval=0.2, message="the conversion to run on half the upload")
    assert job["progress"] < 0.9, job   # it cannot go past what arrived
    return job


def resumed(procs, token, path, url):
    rest = uploader(procs.base, token, path, url=url, chunk_size=PART)
    rest.upload()
    assert rest.offset == os.path.getsize(path)


def mp3_duration(procs, token, job, tmp_path):
    mp3 = procs.api.download(token, job["mp3_id"])
    assert mp3.status_code == 200
    (tmp_path / "out.mp3").write_bytes(mp3.content)
    return probe(tmp_path / "out.mp3")[1]


def leftovers(db, job_id, video_id, owner):
    """What is left of an upload: its job record, its video's chunks, any MP3 (file or chunk, with
    nx-27017's placeholder of a partial one), its slot."""
    slots = db[c.SLOTS_COLLECTION].find_one({"_id": owner}) or {}
    found = {"job": db.jobs.find_one({"_id": job_id}),
             "video chunks": list(db["videos.chunks"].find({"files_id": video_id}, {"n": 1})),
             "mp3s": list(db["mp3s.files"].find({})),
             "slot": job_id in (slots.get("jobs") or [])}
    return {name: value for name, value in found.items() if value}


def nothing_left(db, job_id, video_id, owner):
    """Nothing left, waited for: the gateway removes the record first, then the video's chunks and
    the slot (a sweep, a cut-off POST), so the converter may stop before the rest is gone."""
    try:
        wait_until(lambda: not leftovers(db, job_id, video_id, owner), 15, interval=0.2,
                   message="the upload's leftovers to go")
    except NotReady:
        assert not leftovers(db, job_id, video_id, owner)


def converter_stopped(procs, job_id, timeout):
    """The converter dropped the job's conversion, whichever noticed the removal first: its reader
    ("the upload of job .. was removed") or its lease renewal ("lease lost ..")."""
    wait_until(lambda: any("job %s: " % job_id in line and "dropping our result" in line
                           for line in procs.log(c.CONVERTER).splitlines()),
               timeout, interval=0.2, message="the converter to stop")


def test_converts_while_it_arrives_and_waits_for_the_rest(procs, db, lecture, tmp_path):
    token = procs.api.token_for("stream@example.com")
    first, job_id = half_sent(procs, token, lecture, "lecture.mkv")
    converting_halfway(procs, token, job_id)
    record = db.jobs.find_one({"_id": job_id})
    assert record["upload_open"] and record["attempts"] == 1
    assert db["mp3s.files"].find_one({"metadata.job_id": job_id}) is None  # nothing settled yet

    resumed(procs, token, lecture, first.url)
    job = procs.api.wait_job(token, job_id, timeout=90)
    assert job["status"] == "done", job
    assert job["filename"] == "lecture.mkv"
    assert abs(mp3_duration(procs, token, job, tmp_path) - probe(lecture)[1]) <= 0.1
    record = db.jobs.find_one({"_id": job_id})
    assert not record["upload_open"] and record["size"] == os.path.getsize(lecture)
    assert record["attempts"] == 1 and record["video_id"] is None  # converted once, video dropped
    assert "converting as it arrived failed" not in procs.log(c.CONVERTER)


def test_a_deleted_upload_stops_its_conversion_and_leaves_nothing(procs, db, lecture):
    token = procs.api.token_for("quitter@example.com")
    first, job_id = half_sent(procs, token, lecture, "quit.mkv")
    converting_halfway(procs, token, job_id)
    video_id = db.jobs.find_one({"_id": job_id})["video_id"]

    gone = requests.delete(first.url, headers=dict(TUS, **bearer(token)))
    assert gone.status_code == 204, gone.text
    converter_stopped(procs, job_id, 30)
    nothing_left(db, job_id, video_id, "quitter@example.com")
    assert procs.api.job(token, job_id).status_code == 404


@pytest.mark.slow
def test_an_upload_left_to_expire_stops_its_conversion_and_leaves_nothing(procs, db, lecture):
    token = procs.api.token_for("gone@example.com")
    first, job_id = half_sent(procs, token, lecture, "gone.mkv")
    converting_halfway(procs, token, job_id)
    video_id = db.jobs.find_one({"_id": job_id})["video_id"]
    # no byte for UPLOAD_TIMEOUT: the gateway's sweep (every 10 s) removes it, the converter stops
    converter_stopped(procs, job_id, UPLOAD_TIMEOUT + 40)
    nothing_left(db, job_id, video_id, "gone@example.com")
    assert requests.head(first.url, headers=dict(TUS, **bearer(token))).status_code == 404


def test_a_converter_killed_mid_stream_is_replaced_and_converts_once(procs, db, lecture, tmp_path):
    token = procs.api.token_for("crash@example.com")
    first, job_id = half_sent(procs, token, lecture, "crash.mkv")
    converting_halfway(procs, token, job_id)
    procs.signal(c.CONVERTER, signal.SIGKILL)
    procs.wait_exit(c.CONVERTER)
    procs.start(c.CONVERTER)
    # its lease expires, the new converter's sweep hands the job out again: it starts over from
    # the stored chunks and waits for the rest
    wait_until(lambda: db.jobs.find_one({"_id": job_id})["attempts"] == 2, 60, interval=0.5,
               message="the job taken over")
    converting_halfway(procs, token, job_id)

    resumed(procs, token, lecture, first.url)
    job = procs.api.wait_job(token, job_id, timeout=90)
    assert job["status"] == "done", job
    assert abs(mp3_duration(procs, token, job, tmp_path) - probe(lecture)[1]) <= 0.1
    assert db.jobs.find_one({"_id": job_id})["attempts"] == 2
    mp3s = [doc for doc in db["mp3s.files"].find({}) if doc.get("length")]
    assert [doc["_id"] for doc in mp3s] == [db.jobs.find_one({"_id": job_id})["mp3_id"]]


def test_an_mp4_with_its_moov_last_converts_after_its_last_byte(procs, db, moov_last, tmp_path):
    token = procs.api.token_for("moov@example.com")
    first, job_id = half_sent(procs, token, moov_last, "moov.mp4")
    record = db.jobs.find_one({"_id": job_id})
    assert record["status"] == c.UPLOADING and record["upload_open"]
    assert procs.api.job(token, job_id).status_code == 404   # not a job before its last byte

    resumed(procs, token, moov_last, first.url)
    assert db.jobs.find_one({"_id": job_id})["status"] in (c.QUEUED, c.CONVERTING, c.DONE)
    job = procs.api.wait_job(token, job_id, timeout=90)
    assert job["status"] == "done", job
    assert abs(mp3_duration(procs, token, job, tmp_path) - probe(moov_last)[1]) <= 0.1


def form_upload(procs, token, path, before=b"", after=b""):
    """A POST /upload of `path` on a raw socket (its parts `before` and `after` the file):
    (the socket, the bytes of the request up to the file's, the file's, the rest)."""
    boundary = b"streamingboundary"
    head = before + (b"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                     b"Content-Type: video/x-matroska\r\n\r\n"
                     % (boundary, os.path.basename(path).encode()))
    with open(path, "rb") as handle:
        data = handle.read()
    tail = b"\r\n" + after + b"--%s--\r\n" % boundary
    sock = socket.create_connection(("127.0.0.1", procs.port), timeout=60)
    sock.sendall(("POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
                  % (token, boundary.decode(), len(head) + len(data) + len(tail))).encode())
    return sock, head, data, tail


def field(name, value):
    return (b"--streamingboundary\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
            % (name.encode(), value.encode()))


def visible_job(procs, token):
    def found():
        jobs = procs.api.http.get(procs.api.url("/jobs"), headers=bearer(token)).json()["jobs"]
        return jobs[0]["job_id"] if jobs else None
    return wait_until(found, 60, interval=0.2, message="the upload to become a job")


def test_a_post_upload_converts_while_it_arrives(procs, db, lecture, tmp_path):
    token = procs.api.token_for("form@example.com")
    # an option before the file (as the web page sends them) and one after it: the stored options
    # change at the last byte, and the job converts again from the whole upload
    sock, head, data, tail = form_upload(procs, token, lecture, before=field("bitrate", "192"),
                                         after=field("title", "Late"))
    try:
        sock.sendall(head + data[:len(data) // 2])
        job_id = visible_job(procs, token)
        converting_halfway(procs, token, job_id)
        assert db.jobs.find_one({"_id": job_id})["options"]["bitrate"] == 192
        sock.sendall(data[len(data) // 2:] + tail)
        answer = sock.recv(4096).decode()
    finally:
        sock.close()
    assert answer.startswith("HTTP/1.1 202"), answer
    job = procs.api.wait_job(token, job_id, timeout=90)
    assert job["status"] == "done", job
    assert job["options"]["bitrate"] == 192 and job["options"]["title"] == "Late"
    assert abs(mp3_duration(procs, token, job, tmp_path) - probe(lecture)[1]) <= 0.1
    assert "options changed by the upload's last fields" in procs.log(c.CONVERTER)


def test_a_post_upload_cut_off_stops_its_conversion_and_leaves_nothing(procs, db, lecture):
    token = procs.api.token_for("cut@example.com")
    sock, head, data, tail = form_upload(procs, token, lecture)
    try:
        sock.sendall(head + data[:len(data) // 2])
        job_id = visible_job(procs, token)
        converting_halfway(procs, token, job_id)
        video_id = db.jobs.find_one({"_id": job_id})["video_id"]
    finally:
        sock.close()   # the client goes away mid-upload
    converter_stopped(procs, job_id, 30)
    nothing_left(db, job_id, video_id, "cut@example.com")


def test_one_users_slow_uploads_hold_one_converter_and_others_go_first(procs, db, lecture, media,
                                                                       tmp_path):
    """Two converter workers (the default). A user's streaming upload paused halfway holds one of
    them; their second one, also paused, is not taken while the first converts (it would hold the
    other converter for as long as its upload lasts), so another user's clip converts meanwhile."""
    slow = procs.api.token_for("slow@example.com")
    first, first_id = half_sent(procs, slow, lecture, "one.mkv")
    converting_halfway(procs, slow, first_id)
    second, second_id = half_sent(procs, slow, lecture, "two.mkv")

    other = procs.api.token_for("other@example.com")
    clip = procs.api.upload(other, media.video("other.mp4", duration=1.0))
    assert clip.status_code == 202, clip.text
    # the second converter handled the second upload's wake-up before the clip's (one message at a
    # time, in order), so once the clip is done the second upload has had its chance to be taken
    assert procs.api.wait_job(other, clip.json()["job_id"], timeout=60)["status"] == "done"
    assert procs.api.job(slow, second_id).json()["status"] == c.QUEUED
    assert procs.api.job(slow, first_id).json()["status"] == c.CONVERTING

    # both uploads end: each converts (the second is woken at its last byte, well before the
    # converter's sweep would find it) and neither twice
    resumed(procs, slow, lecture, first.url)
    resumed(procs, slow, lecture, second.url)
    for job_id in (first_id, second_id):
        job = procs.api.wait_job(slow, job_id, timeout=60)
        assert job["status"] == "done", job
        assert db.jobs.find_one({"_id": job_id})["attempts"] == 1
