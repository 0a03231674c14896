"""The stores in a real Nameko container against the MongoDB wire server: the GridFS `FileStore`
and each service's part of the job record (`GatewayStores`, `ConverterJobs`, `Outbox`)."""
import datetime
import hashlib
import io
import os
import time

import eventlet
import pymongo
import pytest
from nameko.testing.services import dummy, entrypoint_hook
from nameko.testing.utils import get_extension
from pymongo.errors import InvalidOperation, ServerSelectionTimeoutError

from services.common import constants as c
from services.common.jobs import Job
from services.common.utils import utcnow
from services.converter.store import ConverterJobs, ConverterStore
from services.gateway.store import GatewayStore, GatewayStores
from services.notification.store import Outbox, OutboxStore
from services.storage.dependencies import Files
from services.storage.files import CHUNK_SIZE, FileStore
from services.storage.gridio import BATCH_CHUNKS
from tests.configs import config_defaults
from tests.helpers import free_port
from tests.integration.stored import leftovers

MiB = 1024 * 1024
OWNER = "me@example.com"
VIDEOS, MP3S = c.VIDEOS_BUCKET, c.MP3S_BUCKET


class StoreProbe:
    name = "store_probe"
    files = Files()
    gateway = GatewayStore()
    converter = ConverterStore()
    outbox = OutboxStore()

    @dummy
    def stores(self):
        return self.files, self.gateway, self.converter, self.outbox

    @dummy
    def ping(self):
        self.gateway.ping()
        return "pong"


def probe_config(mongo_uri, mongo_db, **extra):
    config = config_defaults()
    config.update({"MONGO_URI": mongo_uri, "MONGO_DB": mongo_db}, **extra)
    return config


@pytest.fixture
def container(container_factory, mongo_uri, mongo_db, tmp_path):
    container = container_factory(StoreProbe, probe_config(mongo_uri, mongo_db,
                                                           HEARTBEAT_DIR=str(tmp_path)))
    container.start()
    return container


@pytest.fixture
def stores(container):
    with entrypoint_hook(container, "stores") as get:
        return get()


@pytest.fixture
def files(stores):
    return stores[0]


@pytest.fixture
def gateway(stores):
    return stores[1]


@pytest.fixture
def converter(stores):
    return stores[2]


@pytest.fixture
def outbox(stores):
    return stores[3]


@pytest.fixture
def db(mongo_uri, mongo_db):
    """A client of the test's own (another process's view of the same database)."""
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=3000)
    yield client[mongo_db]
    client.close()


def ago(seconds):
    return utcnow() - datetime.timedelta(seconds=seconds)


def set_fields(db, job_id, **fields):
    assert db[c.JOBS_COLLECTION].update_one({"_id": job_id}, {"$set": fields}).matched_count == 1


def expire_lease(db, job_id, until="lease_until", due="due_at", seconds=30):
    """As if the lease was taken `seconds` + 5 s ago and never renewed (a claim sets the due time
    to the claim time, so the work is due as soon as its lease expires)."""
    set_fields(db, job_id, **{until: ago(5), due: ago(seconds + 5)})


def odd_pieces(data):
    """`data` in pieces of awkward sizes (1 byte, primes, just under and over a chunk)."""
    sizes = [1, 7, 4093, 65537, CHUNK_SIZE - 3, CHUNK_SIZE + 5, 999983, 3, 2 * CHUNK_SIZE + 11]
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        pieces.append(data[pos:pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return pieces


def write_file(files, data, bucket=VIDEOS, filename="clip.mp4", metadata=None, commit=True,
               touch=None):
    upload = files.create(bucket, filename, metadata or {"owner": OWNER}, touch=touch)
    pieces = odd_pieces(data) if len(data) < 20 * MiB else \
        (data[i:i + MiB] for i in range(0, len(data), MiB))
    for piece in pieces:
        upload.write(piece)
    if commit:
        upload.commit()
    return upload


def upload_job(gateway, data=b"v" * 1000, owner=OWNER, filename="clip.mp4", commit=True):
    admission = gateway.uploads.admit(owner, None, quota=1 << 40, max_active=1000)
    upload = gateway.uploads.open_file(admission)
    for piece in odd_pieces(data):
        upload.write(piece)
    if commit:
        upload.commit(filename)
    return admission.job_id, upload


def queued_job(gateway, data=b"v" * 1000, owner=OWNER):
    job_id, upload = upload_job(gateway, data, owner)
    job = gateway.uploads.queue(job_id, upload.size, filename="clip.mp4", options={})
    assert job.status == c.QUEUED
    return job_id


def finished_job(gateway, converter, fail=False):
    job_id = queued_job(gateway)
    job = converter.claim(job_id, "conv", 30)
    if fail:
        return converter.fail(job_id, "conv", "The file is not media.")
    mp3 = converter.create_mp3(job)
    mp3.write(b"ID3 fake mp3")
    mp3.commit()
    return converter.complete(job_id, "conv", mp3.file_id, 1.0, mp3.size)


def ids(jobs):
    return [job.id for job in jobs]


def concurrently(*calls):
    pool = eventlet.GreenPool()
    threads = [pool.spawn(call) for call in calls]
    return [thread.wait() for thread in threads]


# --- providers ---------------------------------------------------------------------------------

def test_each_provider_injects_its_store(container, stores, mongo_db):
    files, gateway, converter, outbox = stores
    assert [type(s) for s in stores] == [FileStore, GatewayStores, ConverterJobs, Outbox]
    assert files.db.name == gateway.db.name == mongo_db
    assert converter.jobs.database.name == outbox.jobs.database.name == mongo_db
    with entrypoint_hook(container, "ping") as ping:
        assert ping() == "pong"
    clients = set()
    for provider_class, store in zip((Files, GatewayStore, ConverterStore, OutboxStore), stores):
        provider = get_extension(container, provider_class)
        assert provider.store is store and provider.client is not None
        clients.add(id(provider.client))
    assert len(clients) == 4


def test_indexes_are_created_at_start(stores, db):
    for bucket in (VIDEOS, MP3S):
        chunk_indexes = db[bucket + ".chunks"].index_information()
        # files_id+n, unique (nx-27017 reports the compound key as one field named files_id_n)
        assert any(info.get("unique") and "files_id" in str(info["key"]) and "n" in str(info["key"])
                   for info in chunk_indexes.values()), chunk_indexes
    keys = " ".join(str(info["key"]) for info in db[c.JOBS_COLLECTION].index_information().values())
    for field in ("owner", "due_at", "notify_next"):
        assert field in keys, keys


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_stop_and_kill_close_the_clients(container, gateway, how):
    providers = [get_extension(container, cls) for cls in (Files, GatewayStore, ConverterStore,
                                                           OutboxStore)]
    clients = [provider.client for provider in providers]
    gateway.ping()
    getattr(container, how)()
    assert [provider.client for provider in providers] == [None] * 4
    for client in clients:
        with pytest.raises(InvalidOperation):
            client.admin.command("ping")
    with pytest.raises(InvalidOperation):
        gateway.ping()


class ShortTimeoutStore(GatewayStore):
    server_timeout_ms = 300


class ShortTimeoutProbe:
    name = "short_timeout_probe"
    gateway = ShortTimeoutStore()

    @dummy
    def ping(self):
        self.gateway.ping()


def test_a_container_starts_while_mongodb_is_down_and_requests_fail_fast(container_factory):
    container = container_factory(ShortTimeoutProbe, probe_config(
        "mongodb://127.0.0.1:%d/" % free_port(), "nothing"))
    container.start()
    assert get_extension(container, ShortTimeoutStore).store is not None
    started = time.monotonic()
    with entrypoint_hook(container, "ping") as ping:
        with pytest.raises(ServerSelectionTimeoutError):
            ping()
    assert time.monotonic() - started < 5


# --- FileStore ---------------------------------------------------------------------------------

def test_file_round_trip_six_mib_written_in_odd_pieces(files, db):
    data = os.urandom(6 * MiB + 12345)
    upload = write_file(files, data, filename="Caf\u00e9 clip.mp4",
                        metadata={"owner": OWNER, "job_id": "j"})
    assert upload.size == len(data) and upload.committed
    assert leftovers(db) == (1, 7)

    video = files.open(VIDEOS, upload.file_id)
    assert video.length == len(data) and video.chunk_size == CHUNK_SIZE
    assert video.filename == "Caf\u00e9 clip.mp4"
    assert video.metadata == {"owner": OWNER, "job_id": "j"}
    assert video.read() == data
    assert video.read() == b""  # at the end
    assert b"".join(video.iter_range(0, None, block=333333)) == data
    # seeks: start, across a chunk boundary, from the end, past the end, relative
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
    with pytest.raises(ValueError):
        video.seek(-1)
    assert b"".join(video.iter_range(CHUNK_SIZE - 1, 4 * CHUNK_SIZE + 1, block=MiB)) == \
        data[CHUNK_SIZE - 1:4 * CHUNK_SIZE + 1]
    assert b"".join(video.iter_range(len(data) - 3, len(data) + 50)) == data[-3:]
    # backwards across batches: each read fetches the batch it needs again
    video.seek(5 * CHUNK_SIZE + 1)
    assert video.read(2) == data[5 * CHUNK_SIZE + 1:5 * CHUNK_SIZE + 3]
    video.seek(1)
    assert video.read(2) == data[1:3]
    # io.BufferedReader on top works too (what wsgi file wrappers and shutil use)
    video.seek(0)
    assert hashlib.sha256(io.BufferedReader(video).read()).digest() == \
        hashlib.sha256(data).digest()
    # the other bucket is another namespace
    assert files.open(MP3S, upload.file_id) is None


def test_empty_file_reads_back_empty(files):
    upload = write_file(files, b"")
    video = files.open(VIDEOS, upload.file_id)
    assert video.length == 0 and video.read() == b""
    assert list(video.iter_range()) == []


def test_file_larger_than_one_reply_reads_back_in_batches(files):
    """More than the 48 MB one wire reply may carry (pymongo's GridOut fails here on nx-27017), and
    past 64 MiB, where a long upload touches its job record."""
    data = os.urandom(65 * MiB + 3)
    touched = []
    upload = write_file(files, data, touch=lambda: touched.append(1))
    assert touched == [1]
    video = files.open(VIDEOS, upload.file_id)
    assert video.length == len(data)
    digest = hashlib.sha256()
    for block in video.iter_range(0, None, block=(BATCH_CHUNKS + 1) * MiB):
        digest.update(block)
    assert digest.digest() == hashlib.sha256(data).digest()
    video.seek(49 * MiB - 2)
    assert video.read(4) == data[49 * MiB - 2:49 * MiB + 2]


def test_an_upload_left_unfinished_is_seen_by_the_leftovers_check(files, db):
    """What "nothing half-stored" checks in the other tests rely on: an upload neither committed nor
    aborted is visible (MongoDB: its chunks; nx-27017: its placeholder files document)."""
    write_file(files, os.urandom(2 * MiB + 5), commit=False)
    assert leftovers(db) != (0, 0)


def test_abort_leaves_nothing(files, db):
    upload = write_file(files, os.urandom(3 * MiB + 5), commit=False)
    upload.abort()
    assert leftovers(db) == (0, 0)
    assert files.open(VIDEOS, upload.file_id) is None
    upload.abort()  # twice is harmless
    assert leftovers(db) == (0, 0)


def test_abort_after_commit_keeps_the_file(files):
    upload = write_file(files, b"kept")
    upload.abort()
    assert files.open(VIDEOS, upload.file_id).read() == b"kept"


def test_delete_removes_a_file_and_is_idempotent(files, db):
    kept = write_file(files, b"other")
    gone = write_file(files, os.urandom(2 * MiB + 1))
    files.delete(VIDEOS, gone.file_id)
    assert files.open(VIDEOS, gone.file_id) is None
    assert leftovers(db) == (1, 1)
    files.delete(VIDEOS, gone.file_id)   # already gone
    files.delete(VIDEOS, None)           # nothing to delete
    assert files.open(VIDEOS, kept.file_id).read() == b"other"


# --- GatewayStores -----------------------------------------------------------------------------

def test_gateway_upload_lifecycle(gateway, db):
    before = utcnow()
    job_id, upload = upload_job(gateway, b"v" * 5000, filename="Caf\u00e9.mp4")
    # hidden while uploading
    assert gateway.jobs.get(job_id) is None and gateway.jobs.for_owner(OWNER) == []
    stored = db[c.JOBS_COLLECTION].find_one({"_id": job_id})
    assert stored["status"] == c.UPLOADING and stored["video_id"] == upload.file_id

    job = gateway.uploads.queue(job_id, upload.size, filename="Caf\u00e9.mp4", options={})
    assert isinstance(job, Job)
    assert (job.id, job.owner, job.filename, job.status, job.size, job.video_id) == \
        (job_id, OWNER, "Caf\u00e9.mp4", c.QUEUED, 5000, upload.file_id)
    # dates are datetimes whatever the server returned ($set dates are strings on nx-27017)
    assert isinstance(job.updated_at, datetime.datetime) and job.updated_at >= before
    assert job.due_at - job.updated_at == datetime.timedelta(seconds=c.REDISPATCH_AFTER)
    assert gateway.jobs.get(job_id) == job
    assert gateway.jobs.for_owner(OWNER) == [job]
    assert gateway.jobs.for_owner("someone@example.com") == []
    assert gateway.uploads.queue(job_id, 10, options={}) is None  # only from uploading
    assert gateway.uploads.queue("0" * 32, 10, options={}) is None


def test_gateway_for_owner_newest_first_with_a_limit(gateway, db):
    first, second, third = (queued_job(gateway) for _ in range(3))
    for job_id, minutes in ((first, 3), (second, 2), (third, 1)):
        set_fields(db, job_id, created_at=ago(60 * minutes))
    assert ids(gateway.jobs.for_owner(OWNER)) == [third, second, first]
    assert ids(gateway.jobs.for_owner(OWNER, limit=2)) == [third, second]


def test_gateway_discard_removes_job_and_video(gateway, db):
    job_id, upload = upload_job(gateway, os.urandom(2 * MiB + 1))
    gateway.uploads.queue(job_id, upload.size, options={})
    gateway.uploads.discard(job_id)
    assert gateway.jobs.get(job_id) is None
    assert db[c.JOBS_COLLECTION].find_one({"_id": job_id}) is None
    assert leftovers(db) == (0, 0)
    gateway.uploads.discard(job_id)  # already gone: no error


def test_gateway_sweeps_stale_uploads_and_their_files(gateway, db):
    # a gateway that crashed after storing the video, before queueing the job
    stale_id, stale = upload_job(gateway, os.urandom(2 * MiB + 3))
    fresh_id, fresh = upload_job(gateway, os.urandom(1000))
    old_queued_id = queued_job(gateway)
    for job_id in (stale_id, old_queued_id):
        set_fields(db, job_id, updated_at=ago(7 * 3600))

    assert gateway.uploads.sweep(older_than=6 * 3600) == 1
    assert db[c.JOBS_COLLECTION].find_one({"_id": stale_id}) is None
    assert gateway.files.open(VIDEOS, stale.file_id) is None
    assert db[c.JOBS_COLLECTION].find_one({"_id": fresh_id})["status"] == c.UPLOADING
    assert gateway.files.open(VIDEOS, fresh.file_id).length == 1000
    assert gateway.jobs.get(old_queued_id).status == c.QUEUED
    assert leftovers(db) == (2, 2)  # the fresh upload's and the queued job's videos
    assert gateway.uploads.sweep(older_than=6 * 3600) == 0


def test_gateway_sweeps_uploads_abandoned_mid_stream(gateway, db):
    stale_ids = [upload_job(gateway, os.urandom(size), commit=False)[0] for size in (2 * MiB + 3, 0)]
    for job_id in stale_ids:
        set_fields(db, job_id, updated_at=ago(7 * 3600))
    assert leftovers(db) != (0, 0)
    assert gateway.uploads.sweep(older_than=6 * 3600) == 2
    assert [db[c.JOBS_COLLECTION].find_one({"_id": job_id}) for job_id in stale_ids] == [None] * 2
    assert leftovers(db) == (0, 0)


def test_gateway_requeue_only_failed_jobs_with_their_video(gateway, converter):
    job_id = queued_job(gateway)
    assert gateway.jobs.requeue(job_id) is None  # queued
    converter.claim(job_id, "worker-1", 30)
    assert gateway.jobs.requeue(job_id) is None  # converting
    failed = converter.fail(job_id, "worker-1", "The file is not media.")
    assert (failed.status, failed.error, failed.notify) == \
        (c.FAILED, "The file is not media.", c.NOTIFY_PENDING)
    requeued = gateway.jobs.requeue(job_id)
    assert (requeued.status, requeued.error, requeued.attempts, requeued.notify) == \
        (c.QUEUED, None, 0, None)
    assert requeued.due_at > utcnow()
    assert gateway.jobs.requeue(job_id) is None  # queued again
    assert converter.claim(job_id, "worker-2", 30).attempts == 1

    done = finished_job(gateway, converter)
    assert gateway.jobs.requeue(done.id) is None  # done
    assert gateway.jobs.requeue("0" * 32) is None

    gone = finished_job(gateway, converter, fail=True)
    converter.drop_video(gone)
    assert gateway.jobs.requeue(gone.id) is None  # its video is no longer stored


def test_gateway_opens_the_converters_mp3(gateway, converter):
    done = finished_job(gateway, converter)
    stored = gateway.jobs.open_mp3(done.mp3_id)
    assert stored.filename == "clip.mp3"
    assert stored.metadata == {"owner": OWNER, "job_id": done.id, "source": "clip.mp4"}
    assert stored.read() == b"ID3 fake mp3"
    assert done.mp3_size == len(b"ID3 fake mp3") and done.duration == 1.0
    assert gateway.jobs.open_mp3(done.video_id) is None  # a video is not an MP3


# --- ConverterJobs -----------------------------------------------------------------------------

def test_converter_claim_is_a_compare_and_set(gateway, converter):
    job_id = queued_job(gateway)
    first = converter.claim(job_id, "worker-1", 30)
    assert isinstance(first, Job)
    assert first.status == c.CONVERTING and first.attempts == 1
    assert isinstance(first.lease_until, datetime.datetime) and first.lease_until > utcnow()
    assert converter.claim(job_id, "worker-2", 30) is None
    assert converter.claim(job_id, "worker-1", 30) is None  # not even by the holder
    assert converter.claim("f" * 32, "worker-1", 30) is None


def test_converter_concurrent_claims_have_one_winner(gateway, converter, db):
    job_id = queued_job(gateway)
    other = ConverterJobs(db)  # another converter process
    results = concurrently(*[lambda store=store, n=n: store.claim(job_id, "worker-%d" % n, 30)
                             for n, store in enumerate([converter, other] * 3)])
    winners = [job for job in results if job is not None]
    assert len(winners) == 1 and winners[0].attempts == 1


def test_converter_expired_lease_is_taken_over_and_only_the_new_holder_finishes(
        gateway, converter, db):
    job_id = queued_job(gateway)
    job = converter.claim(job_id, "worker-1", 30)
    assert converter.renew(job_id, "worker-1", 30)
    assert not converter.renew(job_id, "worker-2", 30)
    assert converter.due() == []  # its lease runs
    expire_lease(db, job_id)  # worker-1 stopped renewing
    assert ids(converter.due()) == [job_id]
    taken = converter.claim(job_id, "worker-2", 30)
    assert taken.attempts == 2 and taken.status == c.CONVERTING
    assert converter.due() == []
    assert not converter.renew(job_id, "worker-1", 30)

    mp3 = converter.create_mp3(taken)
    mp3.write(b"ID3 fake mp3")
    mp3.commit()
    assert converter.complete(job_id, "worker-1", mp3.file_id, 1.0, mp3.size) is None
    assert converter.fail(job_id, "worker-1", "late") is None
    converter.release(job_id, "worker-1", 10, "late")
    assert gateway.jobs.get(job_id).status == c.CONVERTING
    done = converter.complete(job_id, "worker-2", mp3.file_id, 1.0, mp3.size)
    assert (done.status, done.mp3_id, done.mp3_size, done.error, done.progress) == \
        (c.DONE, mp3.file_id, 12, None, 1.0)
    assert done.notify == c.NOTIFY_PENDING and done.due_at is None and done.finished_at
    assert converter.complete(job_id, "worker-2", mp3.file_id, 1.0, mp3.size) is None  # once
    assert converter.fail(job_id, "worker-2", "again") is None
    assert converter.due() == []  # finished jobs are never due

    converter.drop_video(job)
    assert converter.open_video(job) is None
    assert gateway.jobs.get(job_id).video_id is None
    assert db["jobs"].find_one({"_id": job_id})["lease_owner"] is None


def test_converter_release_puts_the_job_back_after_its_retry_time(gateway, converter, db):
    job_id = queued_job(gateway)
    converter.claim(job_id, "worker-1", 30)
    converter.release(job_id, "worker-2", 10, "not mine")  # not the holder: no effect
    assert gateway.jobs.get(job_id).status == c.CONVERTING
    converter.release(job_id, "worker-1", 10, "mongo hiccup")
    job = gateway.jobs.get(job_id)
    assert job.status == c.QUEUED and job.lease_until is None
    assert utcnow() < job.due_at <= utcnow() + datetime.timedelta(seconds=10)
    assert db[c.JOBS_COLLECTION].find_one({"_id": job_id})["last_error"] == "mongo hiccup"
    assert converter.due() == []  # not before its retry time
    set_fields(db, job_id, due_at=ago(5))
    assert ids(converter.due()) == [job_id]
    assert converter.claim(job_id, "worker-2", 30).attempts == 2


def test_converter_a_queued_job_is_due_once_its_event_is_overdue(gateway, converter, db):
    job_id = queued_job(gateway)
    assert converter.due() == []  # its event is on its way
    set_fields(db, job_id, due_at=ago(5))
    [job] = converter.due()
    assert (job.id, job.video_id, job.owner) == (job_id, gateway.jobs.get(job_id).video_id, OWNER)


def test_converter_due_filters_in_the_database(gateway, converter, db):
    """One job waiting on its retry time must not hide the others: the sweeper once asked for one
    job and filtered the retry time afterwards, so it found nothing while that job waited."""
    backoff_id = queued_job(gateway)  # the oldest job, released with its retry time ahead
    converter.claim(backoff_id, "worker-0", 30)
    converter.release(backoff_id, "worker-0", 300, "mongo hiccup")
    set_fields(db, backoff_id, created_at=ago(3600), updated_at=ago(3600))
    overdue = [queued_job(gateway) for _ in range(3)]
    for minutes, job_id in enumerate(overdue, start=1):
        set_fields(db, job_id, due_at=ago(60 * (10 - minutes)))
    lost_id = queued_job(gateway)  # its converter died
    converter.claim(lost_id, "worker-9", 30)
    expire_lease(db, lost_id)
    running_id = queued_job(gateway)  # being converted, its lease running
    converter.claim(running_id, "worker-8", 30)
    set_fields(db, running_id, due_at=ago(3600))

    due = converter.due()
    assert ids(due) == overdue + [lost_id]  # the longest overdue first
    assert all(isinstance(job, Job) for job in due)
    assert ids(converter.due(limit=1)) == [overdue[0]]
    assert ids(converter.due(limit=2)) == overdue[:2]


def test_converter_take_due_hands_a_job_out_once(gateway, converter, db):
    job_ids = [queued_job(gateway) for _ in range(2)]
    for job_id in job_ids:
        set_fields(db, job_id, due_at=ago(5))
    first, second = converter.due()
    assert converter.take_due(first)
    assert not converter.take_due(first)
    assert ids(converter.due()) == [second.id]  # no longer due; the other still is
    postponed = gateway.jobs.get(first.id).due_at
    assert postponed > utcnow() + datetime.timedelta(seconds=c.REDISPATCH_AFTER - 10)

    other = ConverterJobs(db)  # another converter's sweeper, at the same moment
    results = concurrently(*[lambda store=store: store.take_due(second)
                             for store in [converter, other] * 3])
    assert sorted(results) == [False] * 5 + [True]
    assert converter.due() == []


# --- Outbox ------------------------------------------------------------------------------------

def test_outbox_claim_once_and_again_only_after_its_lease(gateway, converter, outbox, db):
    job_id = queued_job(gateway)
    converter.claim(job_id, "conv", 30)
    assert outbox.claim(job_id, "mail-1", 60) is None  # no outcome yet
    converter.fail(job_id, "conv", "The file is not media.")

    first = outbox.claim(job_id, "mail-1", 60)
    assert isinstance(first, Job) and first.finished
    assert (first.notify, first.notify_attempts, first.error) == \
        (c.NOTIFY_SENDING, 1, "The file is not media.")
    assert outbox.claim(job_id, "mail-2", 60) is None
    assert outbox.claim(job_id, "mail-1", 60) is None
    assert outbox.due() == []

    expire_lease(db, job_id, "notify_until", "notify_next", 60)  # mail-1 died mid-send
    assert ids(outbox.due()) == [job_id]
    second = outbox.claim(job_id, "mail-2", 60)
    assert second.notify_attempts == 2

    outbox.sent(job_id, "mail-1")  # the stale sender cannot record anything
    assert gateway.jobs.get(job_id).notify == c.NOTIFY_SENDING
    outbox.sent(job_id, "mail-2")
    assert gateway.jobs.get(job_id).notify == c.NOTIFY_SENT
    assert db[c.JOBS_COLLECTION].find_one({"_id": job_id})["notified_at"] is not None
    assert outbox.claim(job_id, "mail-3", 60) is None
    assert outbox.due() == []


def test_outbox_concurrent_claims_have_one_winner(gateway, converter, outbox, db):
    done = finished_job(gateway, converter)
    other = Outbox(db)
    results = concurrently(*[lambda store=store, n=n: store.claim(done.id, "mail-%d" % n, 60)
                             for n, store in enumerate([outbox, other] * 3)])
    assert len([job for job in results if job is not None]) == 1


def test_outbox_failed_retries_later_or_gives_up(gateway, converter, outbox, db):
    job_id = finished_job(gateway, converter, fail=True).id
    outbox.claim(job_id, "mail-1", 60)
    outbox.failed(job_id, "mail-2", 30, False, "not mine")  # not the holder: no effect
    assert gateway.jobs.get(job_id).notify == c.NOTIFY_SENDING
    outbox.failed(job_id, "mail-1", 30, False, "SMTP down")
    job = gateway.jobs.get(job_id)
    assert job.notify == c.NOTIFY_PENDING and job.notify_next > utcnow()
    assert db[c.JOBS_COLLECTION].find_one({"_id": job_id})["notify_error"] == "SMTP down"
    assert outbox.due() == []  # not before notify_next
    set_fields(db, job_id, notify_next=ago(5))
    assert ids(outbox.due()) == [job_id]
    assert outbox.claim(job_id, "mail-1", 60).notify_attempts == 2
    outbox.failed(job_id, "mail-1", 30, True, "SMTP down for good")
    assert gateway.jobs.get(job_id).notify == c.NOTIFY_GAVE_UP
    assert outbox.claim(job_id, "mail-2", 60) is None
    set_fields(db, job_id, notify_next=ago(5))
    assert outbox.due() == []  # given up: never due again


def test_outbox_due_filters_in_the_database(gateway, converter, outbox, db):
    """An email waiting on its retry time must not hide the other owed emails."""
    waiting = finished_job(gateway, converter, fail=True).id  # the oldest, retrying in 5 minutes
    outbox.claim(waiting, "mail-0", 60)
    outbox.failed(waiting, "mail-0", 300, False, "SMTP down")
    set_fields(db, waiting, created_at=ago(3600), updated_at=ago(3600))
    owed = [finished_job(gateway, converter, fail=n % 2 == 1).id for n in range(3)]
    assert outbox.due() == []  # their events are on their way
    for minutes, job_id in enumerate(owed, start=1):
        set_fields(db, job_id, notify_next=ago(60 * (10 - minutes)))
    crashed = finished_job(gateway, converter).id  # its sender died mid-send
    outbox.claim(crashed, "mail-9", 60)
    expire_lease(db, crashed, "notify_until", "notify_next", 60)
    sending = finished_job(gateway, converter).id  # being sent, its lease running
    outbox.claim(sending, "mail-8", 60)
    set_fields(db, sending, notify_next=ago(3600))
    sent = finished_job(gateway, converter).id
    outbox.claim(sent, "mail-7", 60)
    outbox.sent(sent, "mail-7")
    set_fields(db, sent, notify_next=ago(3600))
    queued_job(gateway)  # no outcome: nothing owed

    assert ids(outbox.due()) == owed + [crashed]
    assert ids(outbox.due(limit=1)) == [owed[0]]


def test_outbox_take_due_hands_an_email_out_once(gateway, converter, outbox, db):
    job_id = finished_job(gateway, converter).id
    set_fields(db, job_id, notify_next=ago(5))
    [job] = outbox.due()
    other = Outbox(db)
    results = concurrently(*[lambda store=store: store.take_due(job) for store in [outbox, other]])
    assert sorted(results) == [False, True]
    assert outbox.due() == []
    assert gateway.jobs.get(job_id).notify_next > utcnow()
    assert outbox.claim(job_id, "mail-1", 60).notify == c.NOTIFY_SENDING  # the event still works
