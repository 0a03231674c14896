"""The whole flow over real HTTP, RabbitMQ, MongoDB wire server, ffmpeg and SMTP."""
import re

import pytest
from bson import ObjectId

from services.common import constants as c
from services.common.messaging import CONSUMERS, queue_name
from tests.helpers import probe, wait_until
from tests.integration.sweeps import only_email


def test_register_login_upload_email_download(stack, media, tmp_path):
    source = media.video("holiday clip.mp4", duration=4.0)
    token = stack.token_for("alice@example.com")

    response = stack.upload(token, source)
    assert response.status_code == 202, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "queued"
    job_id = body["job_id"]

    job = stack.wait_job(token, job_id)
    assert job["status"] == "done", job
    assert job["filename"] == "holiday clip.mp4"
    assert job["error"] is None

    mail = only_email(stack, job_id)
    assert mail["To"] == "alice@example.com"
    text = stack.mail.text_of(mail)
    fid = re.search(r"fid\): ([0-9a-f]{24})", text).group(1)
    assert fid == job["mp3_id"]
    assert "%s/download?fid=%s" % (stack.config["PUBLIC_URL"], fid) in text

    response = stack.download(token, fid)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert 'filename="holiday clip.mp3"' in response.headers["Content-Disposition"]
    target = tmp_path / "out.mp3"
    target.write_bytes(response.content)
    fmt, duration, audio = probe(target)
    assert fmt == "mp3" and audio == ["mp3"]
    _, source_duration, _ = probe(source)
    assert abs(duration - source_duration) <= 0.1, (duration, source_duration)

    # another user sees nothing of it; no token gets 401
    other = stack.token_for("bob@example.com")
    assert stack.download(other, fid).status_code == 404
    assert stack.job(other, job_id).status_code == 404
    response = stack.download(None, fid)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert stack.job(None, job_id).status_code == 401


def test_range_requests(stack, media):
    token = stack.token_for("range@example.com")
    job_id = stack.upload(token, media.video("range.mp4", duration=3.0)).json()["job_id"]
    fid = stack.wait_job(token, job_id)["mp3_id"]
    full = stack.download(token, fid).content
    assert stack.download(token, fid).headers["Accept-Ranges"] == "bytes"
    part = stack.download(token, fid, {"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == full[100:200]
    assert part.headers["Content-Range"] == "bytes 100-199/%d" % len(full)
    tail = stack.download(token, fid, {"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == full[-50:]
    bad = stack.download(token, fid, {"Range": "bytes=%d-" % (len(full) + 10)})
    assert bad.status_code == 416
    assert bad.json()["error"] == "range_not_satisfiable"


def test_an_mp3_being_deleted_is_not_found_not_a_500(stack, media, db):
    """Deleting a GridFS file removes its chunks before its files document: a download that
    comes in between finds the document and no chunk (seen in make bench while the converter
    deleted a done job's MP3)."""
    token = stack.token_for("gone@example.com")
    job_id = stack.upload(token, media.video("gone.mp4", duration=2.0)).json()["job_id"]
    fid = stack.wait_job(token, job_id)["mp3_id"]
    assert stack.download(token, fid).status_code == 200
    db[c.MP3S_BUCKET + ".chunks"].delete_many({"files_id": ObjectId(fid)})  # the first half of a delete
    for headers in ({}, {"Range": "bytes=10-19"}):
        response = stack.download(token, fid, headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"
    assert stack.download(token, job_id).status_code == 404  # by the job's id too


@pytest.mark.parametrize("faststart", [False])
def test_mp4_with_index_at_end(stack, media, faststart, tmp_path):
    """moov after mdat cannot be decoded from a pipe: the converter must notice and spool it."""
    source = media.video("moov-at-end.mp4", duration=3.0, faststart=faststart)
    token = stack.token_for("moov@example.com")
    job = stack.wait_job(token, stack.upload(token, source).json()["job_id"])
    assert job["status"] == "done", job
    target = tmp_path / "o.mp3"
    target.write_bytes(stack.download(token, job["mp3_id"]).content)
    assert abs(probe(target)[1] - probe(source)[1]) <= 0.1


@pytest.fixture
def quorum_config(service_config):
    service_config["RABBIT_QUEUE_TYPE"] = "quorum"
    service_config["PREFETCH_COUNT"] = 3
    return service_config


def test_flow_on_quorum_queues(quorum_config, stack, media, rabbit_manager, rabbit_config):
    """As on a RabbitMQ cluster: the event queues are quorum queues; the converter prefetches
    CONVERTER_WORKERS messages."""
    token = stack.token_for("quorum@example.com")
    job_id = stack.upload(token, media.video("q.mp4", duration=1.0)).json()["job_id"]
    assert stack.wait_job(token, job_id)["status"] == "done"
    only_email(stack, job_id)
    vhost = rabbit_config["vhost"]
    queues = {q["name"]: q for q in rabbit_manager.get_queues(vhost)}
    names = [queue_name(source, event, service, method)
             for (source, event), consumers in CONSUMERS.items() for service, method in consumers]
    assert len(names) == 4
    for name in names:
        assert queues[name]["type"] == "quorum", name
        assert queues[name]["durable"] is True
    # the management API's consumer details lag a few seconds behind
    converter_queue = queue_name(c.GATEWAY, c.VIDEO_UPLOADED, c.CONVERTER, "handle_video_uploaded")
    details = wait_until(lambda: rabbit_manager.get_queue(vhost, converter_queue)["consumer_details"],
                         30, interval=0.5, message="consumer details")
    assert [d["prefetch_count"] for d in details] == [3]
