"""The GridFSStorage provider in a real Nameko container against the MongoDB wire server."""
import datetime
import hashlib
import io
import os
import time

import pymongo
import pytest
from nameko.testing.services import dummy, entrypoint_hook
from nameko.testing.utils import get_extension
from pymongo.errors import InvalidOperation, ServerSelectionTimeoutError

from services.common import constants as c
from services.common.utils import utcnow
from services.storage.client import CHUNK_SIZE, Storage
from services.storage.dependencies import GridFSStorage
from tests.helpers import free_port

MiB = 1024 * 1024


class StorageProbe:
    name = "storage_probe"
    storage = GridFSStorage()

    @dummy
    def get_storage(self):
        return self.storage

    @dummy
    def ping(self):
        self.storage.ping()
        return "pong"


@pytest.fixture
def container(container_factory, mongo_uri, mongo_db):
    container = container_factory(StorageProbe, {"MONGO_URI": mongo_uri, "MONGO_DB": mongo_db})
    container.start()
    return container


@pytest.fixture
def storage(container):
    with entrypoint_hook(container, "get_storage") as get_storage:
        storage = get_storage()
    assert isinstance(storage, Storage)
    return storage


@pytest.fixture
def db(mongo_uri, mongo_db):
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=3000)
    yield client[mongo_db]
    client.close()


def odd_pieces(data):
    """Split `data` into pieces of awkward sizes (1 byte, primes, just over a chunk)."""
    sizes = [1, 7, 4093, 65537, CHUNK_SIZE - 3, CHUNK_SIZE + 5, 999983, 3, 2 * CHUNK_SIZE + 11]
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        pieces.append(data[pos:pos + size])
        pos += size
        i += 1
    return pieces


def store(storage, data, owner="me@example.com", filename="clip.mp4", commit=True):
    job_id, upload = storage.begin_upload(owner, filename)
    for piece in odd_pieces(data) if len(data) < 20 * MiB else \
            (data[i:i + MiB] for i in range(0, len(data), MiB)):
        upload.write(piece)
    if commit:
        upload.commit()
    return job_id, upload


def chunk_count(db, bucket, file_id):
    # find, not count_documents: nx-27017 cannot aggregate over GridFS chunk tables
    return len(list(db[bucket + ".chunks"].find({"files_id": file_id}, {"n": 1})))


def as_datetime(value):
    """nx-27017 hands back dates written by an update's $set as 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value.rstrip("Z"))
    return value


def queued_job(storage, data=b"v" * 1000):
    job_id, upload = store(storage, data)
    assert storage.queue_job(job_id, upload.size)["status"] == c.QUEUED
    return job_id


def test_provider_injects_a_working_storage(container, storage, mongo_db):
    with entrypoint_hook(container, "ping") as ping:
        assert ping() == "pong"
    assert storage.db.name == mongo_db
    provider = get_extension(container, GridFSStorage)
    assert provider.storage is storage
    assert provider.client is not None


def test_upload_and_read_back_six_mib(storage, db):
    data = os.urandom(6 * MiB + 12345)
    job_id, upload = store(storage, data, filename="Caf\u00e9 clip.mp4")
    assert upload.size == len(data) and upload.committed

    job = storage.get_job(job_id)
    assert job["status"] == c.UPLOADING and job["video_id"] == upload.file_id
    assert storage.jobs_for("me@example.com") == []  # hidden while uploading
    assert storage.queue_job(job_id, upload.size)["status"] == c.QUEUED
    assert [j["_id"] for j in storage.jobs_for("me@example.com")] == [job_id]
    assert chunk_count(db, c.VIDEOS_BUCKET, upload.file_id) == 7

    video = storage.open_video(upload.file_id)
    assert video.length == len(data)
    assert video.filename == "Caf\u00e9 clip.mp4"
    assert video.metadata == {"owner": "me@example.com", "job_id": job_id}
    assert video.read() == data
    assert video.read() == b""  # at the end

    assert b"".join(video.iter_range(0, None, block=333333)) == data
    # seeks: start, across a chunk boundary in the middle, the end
    video.seek(0)
    assert video.read(10) == data[:10] and video.tell() == 10
    boundary = 3 * CHUNK_SIZE
    video.seek(boundary - 5)
    assert video.read(10) == data[boundary - 5:boundary + 5]
    video.seek(-7, io.SEEK_END)
    assert video.read() == data[-7:]
    video.seek(len(data) + 100)
    assert video.read(10) == b""
    video.seek(boundary + 17)
    video.seek(-34, io.SEEK_CUR)
    assert video.read(34) == data[boundary - 17:boundary + 17]
    assert b"".join(video.iter_range(CHUNK_SIZE - 1, 4 * CHUNK_SIZE + 1, block=MiB)) == \
        data[CHUNK_SIZE - 1:4 * CHUNK_SIZE + 1]
    assert b"".join(video.iter_range(len(data) - 3, len(data) + 50)) == data[-3:]
    # io.BufferedReader on top works too (what wsgi file wrappers and shutil use)
    video.seek(0)
    assert hashlib.sha256(io.BufferedReader(video).read()).digest() == \
        hashlib.sha256(data).digest()


def test_empty_upload_reads_back_empty(storage):
    _, upload = store(storage, b"")
    video = storage.open_video(upload.file_id)
    assert video.length == 0 and video.read() == b""
    assert list(video.iter_range()) == []


def test_file_larger_than_one_reply_reads_back_identical(storage):
    """More than the 48 MB a single wire reply may carry: pymongo's GridOut fails here on nx-27017."""
    data = os.urandom(50 * MiB)
    _, upload = store(storage, data)
    video = storage.open_video(upload.file_id)
    assert video.length == len(data)
    digest = hashlib.sha256()
    for block in video.iter_range(0, None, block=4 * MiB):
        digest.update(block)
    assert digest.digest() == hashlib.sha256(data).digest()
    video.seek(49 * MiB - 2)
    assert video.read(4) == data[49 * MiB - 2:49 * MiB + 2]


def test_abort_leaves_nothing(storage, db):
    job_id, upload = store(storage, os.urandom(3 * MiB + 5), commit=False)
    upload.abort()
    assert chunk_count(db, c.VIDEOS_BUCKET, upload.file_id) == 0
    assert db[c.VIDEOS_BUCKET + ".files"].find_one({"_id": upload.file_id}) is None
    assert storage.open_video(upload.file_id) is None
    upload.abort()  # twice is harmless
    # the same upload committed does leave chunks: the counting above can see them
    _, kept = store(storage, os.urandom(3 * MiB + 5))
    assert chunk_count(db, c.VIDEOS_BUCKET, kept.file_id) == 4


def test_abort_after_commit_keeps_the_file(storage):
    _, upload = store(storage, b"kept")
    upload.abort()
    assert storage.open_video(upload.file_id).read() == b"kept"


def test_discard_job_removes_job_and_video(storage, db):
    job_id, upload = store(storage, os.urandom(2 * MiB + 1))
    storage.queue_job(job_id, upload.size)
    storage.discard_job(job_id)
    assert storage.get_job(job_id) is None
    assert storage.open_video(upload.file_id) is None
    assert chunk_count(db, c.VIDEOS_BUCKET, upload.file_id) == 0
    storage.discard_job(job_id)  # already gone: no error


def test_queue_job_only_from_uploading(storage):
    job_id = queued_job(storage)
    assert storage.queue_job(job_id, 10) is None
    assert storage.queue_job("0" * 32, 10) is None


def test_claim_job_is_a_compare_and_set(storage):
    job_id = queued_job(storage)
    first = storage.claim_job(job_id, "worker-1", 30)
    assert first["status"] == c.CONVERTING
    assert first["lease_owner"] == "worker-1" and first["attempts"] == 1
    assert as_datetime(first["lease_until"]) > utcnow()
    assert storage.claim_job(job_id, "worker-2", 30) is None
    assert storage.claim_job(job_id, "worker-1", 30) is None  # not even by the holder
    assert storage.get_job(job_id)["lease_owner"] == "worker-1"
    assert storage.claim_job("f" * 32, "worker-1", 30) is None


def test_expired_lease_is_taken_over_and_only_the_new_holder_finishes(storage, db):
    job_id = queued_job(storage)
    storage.claim_job(job_id, "worker-1", 30)
    assert storage.renew_lease(job_id, "worker-1", 30)
    assert not storage.renew_lease(job_id, "worker-2", 30)
    # worker-1 stopped renewing: its lease is in the past
    db[c.JOBS_COLLECTION].update_one(
        {"_id": job_id}, {"$set": {"lease_until": utcnow() - datetime.timedelta(seconds=5)}})
    assert [j["_id"] for j in storage.due_jobs(queued_grace=60)] == [job_id]
    taken = storage.claim_job(job_id, "worker-2", 30)
    assert taken["lease_owner"] == "worker-2" and taken["attempts"] == 2
    assert storage.due_jobs(queued_grace=60) == []
    assert not storage.renew_lease(job_id, "worker-1", 30)

    mp3 = storage.begin_mp3(taken)
    mp3.write(b"ID3 fake mp3")
    mp3.commit()
    assert storage.complete_job(job_id, "worker-1", mp3.file_id, 1.0) is None
    assert storage.fail_job(job_id, "worker-1", "late") is None
    done = storage.complete_job(job_id, "worker-2", mp3.file_id, 1.0)
    assert done["status"] == c.DONE and done["mp3_id"] == mp3.file_id
    assert done["notify"] == c.NOTIFY_PENDING and done["lease_owner"] is None
    assert storage.complete_job(job_id, "worker-2", mp3.file_id, 1.0) is None  # once
    stored = storage.open_mp3(mp3.file_id)
    assert stored.filename == "clip.mp3"
    assert stored.metadata["owner"] == "me@example.com"
    assert stored.read() == b"ID3 fake mp3"


def test_release_job_puts_it_back_after_a_delay(storage):
    job_id = queued_job(storage)
    storage.claim_job(job_id, "worker-1", 30)
    storage.release_job(job_id, "worker-2", 10, "not mine")  # not the holder: no effect
    assert storage.get_job(job_id)["status"] == c.CONVERTING
    storage.release_job(job_id, "worker-1", 10, "mongo hiccup")
    job = storage.get_job(job_id)
    assert job["status"] == c.QUEUED and job["lease_owner"] is None
    assert as_datetime(job["not_before"]) > utcnow() and job["last_error"] == "mongo hiccup"
    assert storage.claim_job(job_id, "worker-2", 30)["attempts"] == 2


def test_due_jobs_returns_overdue_queued_jobs(storage, db):
    job_id = queued_job(storage)
    assert storage.due_jobs(queued_grace=60) == []  # its message is not overdue yet
    db[c.JOBS_COLLECTION].update_one(
        {"_id": job_id}, {"$set": {"updated_at": utcnow() - datetime.timedelta(minutes=5)}})
    assert [j["_id"] for j in storage.due_jobs(queued_grace=60)] == [job_id]


def test_due_jobs_after_a_released_job_is_due_again(storage, db):
    job_id = queued_job(storage)
    storage.claim_job(job_id, "worker-1", 30)
    storage.release_job(job_id, "worker-1", 1, "mongo hiccup")  # what a transient failure does
    db[c.JOBS_COLLECTION].update_one({"_id": job_id}, {"$set": {
        "not_before": utcnow() - datetime.timedelta(seconds=1),
        "updated_at": utcnow() - datetime.timedelta(minutes=5)}})
    assert [j["_id"] for j in storage.due_jobs(queued_grace=60)] == [job_id]


def test_requeue_job_only_for_failed_jobs(storage):
    job_id = queued_job(storage)
    assert storage.requeue_job(job_id) is None  # queued
    storage.claim_job(job_id, "worker-1", 30)
    assert storage.requeue_job(job_id) is None  # converting
    failed = storage.fail_job(job_id, "worker-1", "The file is not media.")
    assert failed["status"] == c.FAILED and failed["error"] == "The file is not media."
    requeued = storage.requeue_job(job_id)
    assert requeued["status"] == c.QUEUED
    assert requeued["error"] is None and requeued["attempts"] == 0
    assert storage.requeue_job(job_id) is None  # queued again
    assert storage.claim_job(job_id, "worker-2", 30)["lease_owner"] == "worker-2"

    done_id = queued_job(storage)
    job = storage.claim_job(done_id, "worker-1", 30)
    mp3 = storage.begin_mp3(job)
    mp3.commit()
    storage.complete_job(done_id, "worker-1", mp3.file_id, 1.0)
    assert storage.requeue_job(done_id) is None  # done
    assert storage.requeue_job("0" * 32) is None


def test_requeue_needs_the_video(storage):
    job_id = queued_job(storage)
    storage.claim_job(job_id, "worker-1", 30)
    storage.fail_job(job_id, "worker-1", "x")
    storage.forget_video(job_id)
    assert storage.requeue_job(job_id) is None


def test_claim_notification_once_and_again_only_after_its_lease(storage, db):
    job_id = queued_job(storage)
    storage.claim_job(job_id, "conv", 30)
    assert storage.claim_notification(job_id, "mail-1", 60) is None  # no outcome yet
    storage.fail_job(job_id, "conv", "The file is not media.")

    first = storage.claim_notification(job_id, "mail-1", 60)
    assert first["notify"] == c.NOTIFY_SENDING and first["notify_attempts"] == 1
    assert storage.claim_notification(job_id, "mail-2", 60) is None
    assert storage.claim_notification(job_id, "mail-1", 60) is None

    db[c.JOBS_COLLECTION].update_one(
        {"_id": job_id}, {"$set": {"notify_until": utcnow() - datetime.timedelta(seconds=1)}})
    assert [j["_id"] for j in storage.due_notifications()] == [job_id]
    second = storage.claim_notification(job_id, "mail-2", 60)
    assert second["notify_owner"] == "mail-2" and second["notify_attempts"] == 2

    storage.notification_sent(job_id, "mail-1")  # the stale sender cannot record anything
    assert storage.get_job(job_id)["notify"] == c.NOTIFY_SENDING
    storage.notification_sent(job_id, "mail-2")
    job = storage.get_job(job_id)
    assert job["notify"] == c.NOTIFY_SENT and job["notified_at"] is not None
    assert storage.claim_notification(job_id, "mail-3", 60) is None
    assert storage.due_notifications() == []


def test_notification_failed_retries_later_or_gives_up(storage):
    job_id = queued_job(storage)
    storage.claim_job(job_id, "conv", 30)
    storage.fail_job(job_id, "conv", "bad")
    storage.claim_notification(job_id, "mail-1", 60)
    storage.notification_failed(job_id, "mail-1", 30, False, "SMTP down")
    job = storage.get_job(job_id)
    assert job["notify"] == c.NOTIFY_PENDING and as_datetime(job["notify_next"]) > utcnow()
    assert storage.due_notifications() == []  # not before notify_next
    assert storage.claim_notification(job_id, "mail-1", 60)["notify_attempts"] == 2
    storage.notification_failed(job_id, "mail-1", 30, True, "SMTP down for good")
    assert storage.get_job(job_id)["notify"] == c.NOTIFY_GAVE_UP
    assert storage.claim_notification(job_id, "mail-2", 60) is None


def test_sweep_uploads_removes_stale_uploads_and_their_chunks(storage, db):
    # a gateway that crashed after storing the video, before queueing the job
    stale_id, stale = store(storage, os.urandom(2 * MiB + 3))
    fresh_id, fresh = store(storage, os.urandom(1000))
    old_queued_id = queued_job(storage)
    long_ago = utcnow() - datetime.timedelta(hours=7)
    db[c.JOBS_COLLECTION].update_many({"_id": {"$in": [stale_id, old_queued_id]}},
                                      {"$set": {"updated_at": long_ago}})
    assert chunk_count(db, c.VIDEOS_BUCKET, stale.file_id) == 3

    assert storage.sweep_uploads(older_than=6 * 3600) == 1
    assert storage.get_job(stale_id) is None
    assert chunk_count(db, c.VIDEOS_BUCKET, stale.file_id) == 0
    assert storage.open_video(stale.file_id) is None
    assert storage.get_job(fresh_id)["status"] == c.UPLOADING
    assert storage.open_video(fresh.file_id).length == 1000
    assert storage.get_job(old_queued_id)["status"] == c.QUEUED
    assert storage.sweep_uploads(older_than=6 * 3600) == 0


def test_sweep_uploads_removes_uploads_abandoned_mid_stream(storage, db):
    stale_ids = [store(storage, os.urandom(size), commit=False)[0] for size in (2 * MiB + 3, 0)]
    db[c.JOBS_COLLECTION].update_many(
        {"_id": {"$in": stale_ids}},
        {"$set": {"updated_at": utcnow() - datetime.timedelta(hours=7)}})
    assert storage.sweep_uploads(older_than=6 * 3600) == 2
    assert [storage.get_job(job_id) for job_id in stale_ids] == [None, None]


def test_indexes_are_created_at_start(storage, db):
    for bucket in (c.VIDEOS_BUCKET, c.MP3S_BUCKET):
        chunk_indexes = db[bucket + ".chunks"].index_information()
        # files_id+n, unique (nx-27017 reports the compound key as one field named files_id_n)
        assert any(info.get("unique") and "files_id" in str(info["key"]) and "n" in str(info["key"])
                   for info in chunk_indexes.values()), chunk_indexes
    job_keys = [info["key"] for info in db[c.JOBS_COLLECTION].index_information().values()]
    assert len(job_keys) >= 4, job_keys


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_stop_and_kill_close_the_client(container, storage, how):
    provider = get_extension(container, GridFSStorage)
    client = provider.client
    storage.ping()
    getattr(container, how)()
    assert provider.client is None
    with pytest.raises(InvalidOperation):
        client.admin.command("ping")
    with pytest.raises(InvalidOperation):
        storage.ping()


class ShortTimeoutProbe(StorageProbe):
    storage = GridFSStorage(server_timeout_ms=300)


def test_a_container_starts_while_mongodb_is_down_and_requests_fail_fast(container_factory):
    container = container_factory(ShortTimeoutProbe, {
        "MONGO_URI": "mongodb://127.0.0.1:%d/" % free_port(), "MONGO_DB": "nothing"})
    container.start()
    provider = get_extension(container, GridFSStorage)
    assert provider.storage is not None
    started = time.monotonic()
    with entrypoint_hook(container, "ping") as ping:
        with pytest.raises(ServerSelectionTimeoutError):
            ping()
    assert time.monotonic() - started < 5
