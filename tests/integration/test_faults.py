"""Faults really done to real processes: SIGKILL, SIGTERM, SMTP, MongoDB, auth and broker outages.

Each test checks the promise of the system: one outcome per upload (one MP3 and one email when it
works), a clear 503 while a part is down, and recovery without an operator.
"""
import datetime
import os
import signal
import time

import pymongo
import pytest
import requests

from services.common import constants as c
from services.common.messaging import CONSUMERS, queue_name
from tests.conftest import JWT_SECRET
from tests.helpers import Stack, clean_env, free_port, wait_until
from tests.integration.conftest import Api
from tests.integration.processes import ProcessStack
from tests.integration.stored import chunk_count, leftovers_at
from tests.integration.sweeps import emails_of, sweeper_containers, the_one_email

pytestmark = pytest.mark.slow


@pytest.fixture
def long_video(media):
    """15 minutes of sound in an MKV: 2-3 s to make, a few seconds to convert; room to hit it."""
    return media.video("lecture.mkv", duration=900, size="32x32", rate=1)


def make_stack(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_port, container_factory, **env):
    base = {"AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri, "MONGO_DB": mongo_db,
            "JWT_SECRET": JWT_SECRET, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": mail_port}
    base.update(env)
    stack = ProcessStack(tmp_path, base)
    stack.container_factory = container_factory
    return stack


@pytest.fixture
def procs(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink, container_factory):
    stack = make_stack(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink.port,
                       container_factory).start()
    stack.mail = mail_sink
    try:
        stack.healthy()
        yield stack
    finally:
        stack.stop()


def api_for(stack):
    return Api(stack.base)


def db_of(stack):
    client = pymongo.MongoClient(stack.env["MONGO_URI"], serverSelectionTimeoutMS=3000)
    return client, client[stack.env["MONGO_DB"]]


def job_record(stack, job_id):
    client, db = db_of(stack)
    try:
        return db.jobs.find_one({"_id": job_id})
    finally:
        client.close()


def mp3s_of(stack, job_id):
    client, db = db_of(stack)
    try:
        return [f for f in db["mp3s.files"].find({}) if (f.get("metadata") or {}).get("job_id")
                == job_id]
    finally:
        client.close()


def wait_status(stack, job_id, status, timeout=60):
    return wait_until(lambda: (job_record(stack, job_id) or {}).get("status") == status,
                      timeout, interval=0.05, message="job %s %s" % (job_id, status))


def unhealthy(stack, timeout=10):
    """The body of the first 503 from /healthz (whose result is cached for about a second)."""
    def answer():
        response = requests.get(stack.base + "/healthz", timeout=30)
        return response.json() if response.status_code == 503 else None
    return wait_until(answer, timeout, interval=0.2, message="/healthz to answer 503")


def swept_emails(stack, job_id, count=1):
    """The job's emails, counted after the converter's and the notification's sweeps ran once
    more (in containers of their own on the stack's broker and database)."""
    containers = sweeper_containers(stack.container_factory, stack.env["AMQP_URI"],
                                    stack.env["MONGO_URI"], stack.env["MONGO_DB"])
    try:
        return the_one_email(stack.mail, job_id, lambda: job_record(stack, job_id), containers,
                             count)
    finally:
        for container in containers:
            container.stop()


def exactly_once(stack, api, token, job_id):
    """The job ends done with one MP3 in GridFS and one email, which names it."""
    job = api.wait_job(token, job_id, timeout=120)
    assert job["status"] == "done", job
    assert [str(f["_id"]) for f in mp3s_of(stack, job_id)] == [job["mp3_id"]]
    mail = swept_emails(stack, job_id)
    assert job["mp3_id"] in mail.as_string()
    return job


def mp3_chunks(stack, file_id):
    client, db = db_of(stack)
    try:
        return chunk_count(db, c.MP3S_BUCKET, file_id)
    finally:
        client.close()


def test_sigkill_converter_mid_conversion(procs, long_video):
    """Killed while its MP3 was being stored (some chunks in GridFS, no files document): the next
    attempt converts again and deletes those chunks; one MP3 is left."""
    api = api_for(procs)
    token = api.token_for("kill@example.com")
    job_id = api.upload(token, long_video).json()["job_id"]
    wait_status(procs, job_id, "converting")
    partial = wait_until(lambda: (job_record(procs, job_id) or {}).get("mp3_partial"), 60,
                         interval=0.02, message="an MP3 being stored")
    wait_until(lambda: mp3_chunks(procs, partial) > 0, 60, interval=0.02,
               message="a chunk of the MP3 stored while it is encoded")
    procs.signal("converter", signal.SIGKILL)
    procs.wait_exit("converter")
    assert job_record(procs, job_id)["status"] == "converting"   # killed mid-way, for real
    assert mp3_chunks(procs, partial) > 0
    procs.start("converter")
    job = exactly_once(procs, api, token, job_id)
    assert job_record(procs, job_id)["attempts"] == 2
    assert job["mp3_id"] != str(partial) and mp3_chunks(procs, partial) == 0
    assert job_record(procs, job_id)["mp3_partial"] is None


def test_sigkill_every_service_mid_conversion(procs, long_video):
    api = api_for(procs)
    token = api.token_for("all@example.com")
    job_id = api.upload(token, long_video).json()["job_id"]
    wait_status(procs, job_id, "converting")
    procs.kill_all()
    assert job_record(procs, job_id)["status"] == "converting"
    procs.start()
    procs.healthy()
    exactly_once(procs, api, token, job_id)


def test_sigterm_converter_finishes_the_job_then_exits(procs, long_video):
    """Graceful shutdown: stop consuming, finish the running conversion, exit; nothing redone."""
    api = api_for(procs)
    token = api.token_for("term@example.com")
    job_id = api.upload(token, long_video).json()["job_id"]
    wait_status(procs, job_id, "converting")
    procs.signal("converter", signal.SIGTERM)
    assert procs.wait_exit("converter", timeout=120) == 0
    assert job_record(procs, job_id)["status"] == "done"
    exactly_once(procs, api, token, job_id)
    assert job_record(procs, job_id)["attempts"] == 1


def test_duplicate_events_convert_and_mail_once(procs, media, rabbit_config, rabbit_manager):
    """At-least-once delivery: the same video_uploaded and mp3_ready delivered twice more."""
    from nameko.standalone.events import event_dispatcher
    api = api_for(procs)
    token = api.token_for("dup@example.com")
    job_id = api.upload(token, media.video("dup.mp4", duration=2.0)).json()["job_id"]
    job = api.wait_job(token, job_id)
    dispatch_gateway = event_dispatcher({"AMQP_URI": rabbit_config["AMQP_URI"]})
    record = job_record(procs, job_id)
    payload = {"job_id": job_id, "video_id": str(record["video_id"]), "owner": "dup@example.com",
               "filename": "dup.mp4"}
    for _ in range(2):
        dispatch_gateway("gateway", "video_uploaded", payload)
        dispatch_gateway("converter", "mp3_ready", {
            "job_id": job_id, "mp3_id": job["mp3_id"], "owner": "dup@example.com",
            "filename": "dup.mp4", "outcome_id": record["outcome_id"]})
    # the duplicates are consumed and change nothing. The management statistics lag: wait until
    # they count every delivery acked (the original and both duplicates) and nothing left.
    queues = [queue_name(c.GATEWAY, c.VIDEO_UPLOADED, *CONSUMERS[c.GATEWAY, c.VIDEO_UPLOADED][0]),
              queue_name(c.CONVERTER, c.MP3_READY, *CONSUMERS[c.CONVERTER, c.MP3_READY][0])]

    def consumed(name):
        queue = rabbit_manager.get_queue(rabbit_config["vhost"], name)
        acked = queue.get("message_stats", {}).get("ack")
        return acked is not None and acked >= 3 and queue.get("messages") == 0
    wait_until(lambda: all(consumed(name) for name in queues), 60, interval=0.5,
               message="three deliveries acked on %s, none left" % queues)
    exactly_once(procs, api, token, job_id)
    assert job_record(procs, job_id)["attempts"] == 1


def test_smtp_down_while_jobs_finish(procs, media):
    api = api_for(procs)
    token = api.token_for("smtp@example.com")
    procs.mail.stop()
    job_id = api.upload(token, media.video("smtp.mp4", duration=2.0)).json()["job_id"]
    api.wait_job(token, job_id)
    # (notify_attempts counts claims: wait for the failed attempt to be recorded, not just begun)
    failed = wait_until(lambda: (lambda job: job if job.get("notify_error") and
                                 job["notify"] == c.NOTIFY_PENDING else None)(
        job_record(procs, job_id)), 30, message="a failed delivery attempt, recorded")
    assert failed["notify_attempts"] >= 1 and emails_of(procs.mail, job_id) == []
    procs.mail.start_on(procs.mail.port)
    exactly_once(procs, api, token, job_id)


@pytest.mark.serial  # alone: its bound leaves 2 s above the RPC timeout, not another worker's load
def test_auth_unreachable_gives_503_within_the_rpc_timeout(procs):
    api = api_for(procs)
    token = api.token_for("auth@example.com")
    procs.signal("auth", signal.SIGKILL)
    procs.wait_exit("auth")
    for call in (lambda: api.login("auth@example.com", "correct horse battery"),
                 lambda: api.job(token, "0" * 32)):
        started = time.monotonic()
        response = call()
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "auth_unavailable"
        assert elapsed < 3 + 2, elapsed
    health = requests.get(procs.base + "/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["failing"] == ["auth"]
    procs.start("auth")
    procs.healthy()
    assert api.login("auth@example.com", "correct horse battery").status_code == 200


def test_mongodb_unreachable_then_back(tmp_path, rabbit_config, mail_sink, media, long_video,
                                       container_factory):
    """A MongoDB of the test's own, stopped mid-conversion: 503 within seconds, then recovery."""
    port = free_port()
    mongo = Stack(tmp_path / "mongo", clean_env())
    uri = mongo.start_mongo(tmp_path / "mongo" / "data", port)
    stack = make_stack(tmp_path, rabbit_config, uri, "faults", mail_sink.port,
                       container_factory).start()
    stack.mail = mail_sink
    try:
        stack.healthy()
        api = api_for(stack)
        token = api.token_for("mongo@example.com")
        job_id = api.upload(token, long_video).json()["job_id"]
        wait_status(stack, job_id, "converting")
        mongo.stop()

        started = time.monotonic()
        health = unhealthy(stack)  # (a result from before the stop serves for up to a second)
        assert "mongodb" in health["failing"], health
        response = api.upload(token, media.video("during.mp4", duration=1.0))
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "storage_unavailable"
        assert time.monotonic() - started < 15

        mongo.start_mongo(tmp_path / "mongo" / "data", port)
        stack.healthy()
        exactly_once(stack, api, token, job_id)       # the interrupted job resumes by itself
        second = api.upload(token, media.video("after.mp4", duration=1.0)).json()["job_id"]
        exactly_once(stack, api, token, second)
    finally:
        stack.stop()
        mongo.stop()


def drop_connections(rabbit_manager, vhost, quiet=7, timeout=90):
    """Close every connection of `vhost`, whose permissions are gone (so none comes back). The
    management API lists a connection only from its next statistics round (every 5 s): one opened
    just before, such as the gateway's health connection, is closed once it shows, so this goes on
    until no connection of the vhost has been listed for `quiet` seconds."""
    last_seen = [time.monotonic()]

    def none_for_a_while():
        for conn in rabbit_manager.get_connections():
            if conn.get("vhost") == vhost:
                last_seen[0] = time.monotonic()
                try:
                    rabbit_manager.delete_connection(conn["name"])
                except Exception:  # closed meanwhile
                    pass
        return time.monotonic() - last_seen[0] > quiet
    wait_until(none_for_a_while, timeout, interval=0.5, message="the connections of %s closed" % vhost)


def test_broker_outage(procs, rabbit_config, rabbit_manager, long_video, media):
    """The broker refuses the services and drops their connections, then comes back."""
    api = api_for(procs)
    token = api.token_for("broker@example.com")
    job_id = api.upload(token, long_video).json()["job_id"]
    wait_status(procs, job_id, "converting")
    vhost, user = rabbit_config["vhost"], rabbit_config["username"]

    rabbit_manager._delete("permissions", vhost, user)
    drop_connections(rabbit_manager, vhost)
    try:
        # the conversion in flight finishes while the broker is away; its event cannot be sent
        wait_status(procs, job_id, "done", timeout=120)
        started = time.monotonic()
        response = api.upload(token, media.video("outage.mp4", duration=1.0))
        assert response.status_code == 503, response.text
        assert response.json()["error"] in ("auth_unavailable", "broker_unavailable")
        assert time.monotonic() - started < 15
        health = unhealthy(procs)
        assert "broker" in health["failing"], health
    finally:
        rabbit_manager.set_vhost_permissions(vhost, user, ".*", ".*", ".*")

    procs.healthy(timeout=90)
    exactly_once(procs, api, token, job_id)              # its email still arrives, once
    after = api.upload(token, media.video("after-outage.mp4", duration=1.0))
    assert after.status_code == 202, after.text
    exactly_once(procs, api, token, after.json()["job_id"])


def test_gateway_killed_mid_upload_leaves_no_orphans(
        tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink, container_factory):
    """The abandoned upload's job record and GridFS file are swept (UPLOAD_TIMEOUT)."""
    import socket
    stack = make_stack(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink.port,
                       container_factory, UPLOAD_TIMEOUT=60).start()
    try:
        stack.healthy()
        token = api_for(stack).token_for("crash@example.com")
        sock = socket.create_connection(("127.0.0.1", stack.port))
        head = ("POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: %d\r\n\r\n"
                % (token, 50 * 1024 * 1024))
        sock.sendall(head.encode() + b'--XyZ\r\nContent-Disposition: form-data; name="file"; '
                     b'filename="big.mp4"\r\n\r\n' + os.urandom(8 * 1024 * 1024))

        def jobs():
            client, db = db_of(stack)
            try:
                return len(list(db.jobs.find({}, {"_id": 1})))
            finally:
                client.close()

        def stored():  # (files documents, chunks): tests/integration/stored.py
            return leftovers_at(mongo_uri, mongo_db)
        wait_until(lambda: jobs() == 1 and stored() != (0, 0), 30,
                   message="the upload's job record and its file being written")
        stack.signal("gateway", signal.SIGKILL)
        stack.wait_exit("gateway")
        sock.close()
        assert jobs() == 1 and stored() != (0, 0)
        client, db = db_of(stack)  # as if UPLOAD_TIMEOUT (at least 60 s) went by since
        try:
            db.jobs.update_many({}, {"$set": {"updated_at": datetime.datetime.utcnow()
                                              - datetime.timedelta(seconds=65)}})
        finally:
            client.close()
        stack.start("gateway")  # the sweeper is the gateway's: a restarted one cleans up
        wait_until(lambda: (jobs(), stored()) == (0, (0, 0)), 60,
                   message="orphan file and job swept")
    finally:
        stack.stop()


def test_ops_rpc_create_list_requeue(procs, media, rabbit_config):
    """What the README shows in `nameko shell`: create a user, list their jobs; a job that failed
    because of its upload lost its video, so there is nothing to requeue (a job that gave up for the
    system's reasons is requeued in test_quotas)."""
    from nameko.standalone.rpc import ClusterRpcProxy
    with ClusterRpcProxy({"AMQP_URI": rabbit_config["AMQP_URI"]}, timeout=30) as n:
        assert n.auth.create_user("ops@example.com", "a long password") == {
            "email": "ops@example.com"}
        api = api_for(procs)
        response = api.login("ops@example.com", "a long password")
        token = response.json()["token"]
        job_id = api.upload(token, media.video("mute.mp4", duration=1.0, audio=False)).json()[
            "job_id"]
        assert api.wait_job(token, job_id)["status"] == "failed"
        procs.mail.wait_for(1)  # the user has the failure email and asks the operator
        [listed] = n.gateway.list_jobs("ops@example.com")
        assert listed["job_id"] == job_id and listed["status"] == "failed"
        assert n.gateway.requeue_job(job_id) is None
        assert n.gateway.requeue_job("0" * 32) is None
        assert api.job(token, job_id).json()["status"] == "failed"
        swept_emails(procs, job_id, count=1)  # one email per outcome


# alone (scripts/test.sh's serial pass): a minute of ffmpeg at full speed, and heartbeats a starved
# event loop would miss
@pytest.mark.serial
def test_long_conversion_keeps_broker_heartbeats(tmp_path, rabbit_config, mongo_uri, mongo_db,
                                                 mail_sink, media, rabbit_manager,
                                                 container_factory):
    """With 4 s AMQP heartbeats, a conversion longer than two of them (the broker closes a
    connection after two missed) must not cost the converter its connection: ffmpeg runs in a
    subprocess and the event loop stays free. (Nameko itself misses 1-2 s heartbeats now and
    then even when idle, so shorter ones would test nameko, not us.)"""
    long_video = media.video("seminar.mkv", duration=5400, size="32x32", rate=1)
    stack = make_stack(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink.port,
                       container_factory, RABBIT_HEARTBEAT=4).start()
    stack.mail = mail_sink
    try:
        stack.healthy()
        api = api_for(stack)
        token = api.token_for("beat@example.com")

        def connections():
            return {c["name"] for c in rabbit_manager.get_connections()
                    if c.get("vhost") == rabbit_config["vhost"]}
        before = connections()
        job_id = api.upload(token, long_video).json()["job_id"]
        wait_status(stack, job_id, "converting")
        started = time.monotonic()
        exactly_once(stack, api, token, job_id)
        assert time.monotonic() - started > 8  # the broker closes after two missed heartbeats
        assert job_record(stack, job_id)["attempts"] == 1
        assert before <= connections()  # no connection was dropped and replaced
        assert "Connection to broker lost" not in stack.log("converter")
    finally:
        stack.stop()
