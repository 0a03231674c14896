"""The stores in a real Nameko container against the MongoDB wire server: the GridFS `FileStore`
and each service's part of the job record (`GatewayStores`, `ConverterJobs`, `Outbox`)."""
import datetime
import hashlib
import io
import os
import tempfile
import time

import eventlet
import pytest
from nameko.testing.services import dummy, entrypoint_hook
from nameko.testing.utils import get_extension
from mutagen.id3 import ID3
from pymongo.errors import InvalidOperation, ServerSelectionTimeoutError

from services.common import constants as c
from services.common.jobs import Job, as_datetime
from services.common.options import parse_options
from services.common.utils import utcnow
from services.converter import output
from services.converter.media.encoder import Encoder
from services.converter.store import ConverterJobs, ConverterStore
from services.gateway.store import GatewayStore, GatewayStores
from services.notification.store import Outbox, OutboxStore
from services.storage.dependencies import Files
from services.storage.files import CHUNK_SIZE, FileStore
from services.storage.gridio import BATCH_BYTES
from tests import media
from tests.configs import config_defaults
from tests.helpers import free_port, wait_until
from tests.integration.stored import chunk_count, leftovers

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
    mp3 = stored_mp3(converter, job)
    return converter.complete(job_id, "conv", mp3.file_id, 1.0, mp3.size)


def stored_mp3(converter, job, audio=b" fake mp3", tag=b"ID3"):
    """The job's MP3 stored as the converter stores it (services/converter/output.py)."""
    fd, path = tempfile.mkstemp(suffix=".mp3")
    os.close(fd)
    try:
        mp3 = converter.mp3_output(job, "conv", path, lambda: False)
        mp3.reset()
        with open(path, "wb") as out:
            out.write(audio)
        mp3.finish(tag)
        mp3.commit()
        return mp3
    finally:
        os.remove(path)


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
    """More than the 48 MB one wire reply may carry (pymongo's GridOut fails here on nx-27017)."""
    data = os.urandom(65 * MiB + 3)
    upload = write_file(files, data)
    video = files.open(VIDEOS, upload.file_id)
    assert video.length == len(data)
    digest = hashlib.sha256()
    for block in video.iter_range(0, None, block=BATCH_BYTES + MiB):
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


class RacingJobs:
    """The jobs collection, where `meanwhile` happens right after the sweeper's find."""

    def __init__(self, collection, meanwhile):
        self.collection, self.meanwhile = collection, meanwhile

    def find(self, *args, **kwargs):
        found = list(self.collection.find(*args, **kwargs))
        self.meanwhile()
        return found

    def __getattr__(self, name):
        return getattr(self.collection, name)


@pytest.mark.parametrize("meanwhile", ["queued", "bytes arrived"])
def test_gateway_sweep_spares_an_upload_that_changed_after_it_was_found(gateway, db, monkeypatch,
                                                                        meanwhile):
    """Issue 18: the sweeper deleted by id what it had found stale; a job queued (or an upload
    that received bytes) between its find and its delete lost its record and video."""
    job_id, upload = upload_job(gateway, os.urandom(1000))
    set_fields(db, job_id, updated_at=ago(7 * 3600))
    if meanwhile == "queued":
        def change():
            gateway.uploads.queue(job_id, upload.size, filename="clip.mp4", options={})
    else:
        def change():
            set_fields(db, job_id, updated_at=utcnow())
    monkeypatch.setattr(gateway.uploads, "jobs", RacingJobs(db[c.JOBS_COLLECTION], change))
    assert gateway.uploads.sweep(older_than=6 * 3600) == 0
    assert db[c.JOBS_COLLECTION].find_one({"_id": job_id}) is not None
    assert gateway.files.open(VIDEOS, upload.file_id).length == 1000


def test_a_slow_upload_refreshes_its_record_by_time(gateway, db, monkeypatch):
    """Issue 18: liveness came every 64 MiB, so a slow upload was swept while bytes arrived."""
    monkeypatch.setattr("services.storage.files.TOUCH_SECONDS", 0.5)
    admission = gateway.uploads.admit(OWNER, None, quota=1 << 40, max_active=1000)
    upload = gateway.uploads.open_file(admission)
    upload.write(b"x" * 100)
    first = db[c.JOBS_COLLECTION].find_one({"_id": admission.job_id})["updated_at"]
    for _ in range(20):   # fast writes: no refresh each time
        upload.write(b"x")
    assert db[c.JOBS_COLLECTION].find_one({"_id": admission.job_id})["updated_at"] == first
    time.sleep(0.6)       # the client is slow: a few bytes after a pause
    upload.write(b"x")
    refreshed = db[c.JOBS_COLLECTION].find_one({"_id": admission.job_id})["updated_at"]
    assert as_datetime(refreshed) > as_datetime(first)


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
    assert (failed.status, failed.error) == (c.FAILED, "The file is not media.")
    assert failed.outcome_id and failed.announce_due > utcnow()
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

    mp3 = stored_mp3(converter, taken)
    assert converter.complete(job_id, "worker-1", mp3.file_id, 1.0, mp3.size) is None
    assert converter.fail(job_id, "worker-1", "late") is None
    converter.release(job_id, "worker-1", 10, "late")
    assert gateway.jobs.get(job_id).status == c.CONVERTING
    done = converter.complete(job_id, "worker-2", mp3.file_id, 1.0, mp3.size)
    assert (done.status, done.mp3_id, done.mp3_size, done.error, done.progress) == \
        (c.DONE, mp3.file_id, 12, None, 1.0)
    assert done.due_at is None and done.finished_at and done.notify is None  # notification's
    assert len(done.outcome_id) == 32 and done.announce_due > utcnow()
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

def owed(outbox, job):
    """The job's outcome taken over by notification, as its event does; the job's id."""
    assert outbox.adopt(job.id, job.outcome_id)
    return job.id


def test_outbox_claim_once_and_again_only_after_its_lease(gateway, converter, outbox, db):
    job_id = queued_job(gateway)
    converter.claim(job_id, "conv", 30)
    assert outbox.claim(job_id, None, "mail-1", 60) is None  # no outcome yet
    failed = converter.fail(job_id, "conv", "The file is not media.")
    outcome = failed.outcome_id
    assert outbox.claim(job_id, outcome, "mail-1", 60) is None  # its event has not arrived
    owed(outbox, failed)

    first = outbox.claim(job_id, outcome, "mail-1", 60)
    assert isinstance(first, Job) and first.finished
    assert (first.notify, first.notify_attempts, first.error, first.notify_outcome) == \
        (c.NOTIFY_SENDING, 1, "The file is not media.", outcome)
    assert outbox.claim(job_id, outcome, "mail-2", 60) is None
    assert outbox.claim(job_id, outcome, "mail-1", 60) is None
    assert outbox.due() == []

    expire_lease(db, job_id, "notify_until", "notify_next", 60)  # mail-1 died mid-send
    assert ids(outbox.due()) == [job_id]
    second = outbox.claim(job_id, outcome, "mail-2", 60)
    assert second.notify_attempts == 2

    outbox.sent(job_id, "mail-1")  # the stale sender cannot record anything
    assert gateway.jobs.get(job_id).notify == c.NOTIFY_SENDING
    outbox.sent(job_id, "mail-2")
    assert gateway.jobs.get(job_id).notify == c.NOTIFY_SENT
    assert db[c.JOBS_COLLECTION].find_one({"_id": job_id})["notified_at"] is not None
    assert outbox.claim(job_id, outcome, "mail-3", 60) is None
    assert outbox.due() == []


def test_outbox_adopts_each_outcome_once(gateway, converter, outbox, db):
    """A duplicate event adopts nothing (the email's state stays); an event of an earlier outcome
    of a requeued job, or of a job not finished, adopts nothing either."""
    failed = converter.fail(*claimed(gateway, converter), "The file is not media.")
    assert outbox.adopt(failed.id, "not-its-outcome") is False
    owed(outbox, failed)
    outbox.claim(failed.id, failed.outcome_id, "mail-1", 60)
    outbox.sent(failed.id, "mail-1")
    assert [outbox.adopt(failed.id, failed.outcome_id) for _ in range(3)] == [False] * 3
    job = gateway.jobs.get(failed.id)
    assert (job.notify, job.notify_outcome) == (c.NOTIFY_SENT, failed.outcome_id)

    requeued = gateway.jobs.requeue(failed.id)
    assert outbox.adopt(failed.id, failed.outcome_id) is False  # queued: no outcome to tell
    converter.claim(requeued.id, "conv-2", 30)
    assert outbox.adopt(failed.id, failed.outcome_id) is False  # converting
    again = converter.fail(requeued.id, "conv-2", "Still not media.")
    assert again.outcome_id != failed.outcome_id
    assert outbox.claim(again.id, failed.outcome_id, "mail-2", 60) is None
    assert outbox.adopt(again.id, failed.outcome_id) is False  # a late event of the first outcome
    owed(outbox, again)
    job = outbox.claim(again.id, again.outcome_id, "mail-2", 60)
    assert (job.notify, job.notify_attempts, job.error) == (c.NOTIFY_SENDING, 1, "Still not media.")


def claimed(gateway, converter):
    job_id = queued_job(gateway)
    converter.claim(job_id, "conv", 30)
    return job_id, "conv"


def test_outbox_concurrent_claims_have_one_winner(gateway, converter, outbox, db):
    done = finished_job(gateway, converter)
    other = Outbox(db)
    results = concurrently(*[lambda store=store: store.adopt(done.id, done.outcome_id)
                             for store in [outbox, other] * 3])
    assert sorted(results) == [False] * 5 + [True]
    results = concurrently(*[lambda store=store, n=n: store.claim(done.id, done.outcome_id,
                                                                  "mail-%d" % n, 60)
                             for n, store in enumerate([outbox, other] * 3)])
    assert len([job for job in results if job is not None]) == 1


def test_outbox_failed_retries_later_or_gives_up(gateway, converter, outbox, db):
    failed = finished_job(gateway, converter, fail=True)
    job_id, outcome = owed(outbox, failed), failed.outcome_id
    outbox.claim(job_id, outcome, "mail-1", 60)
    outbox.failed(job_id, "mail-2", 30, False, "not mine")  # not the holder: no effect
    assert gateway.jobs.get(job_id).notify == c.NOTIFY_SENDING
    outbox.failed(job_id, "mail-1", 30, False, "SMTP down")
    job = gateway.jobs.get(job_id)
    assert job.notify == c.NOTIFY_PENDING and job.notify_next > utcnow()
    assert db[c.JOBS_COLLECTION].find_one({"_id": job_id})["notify_error"] == "SMTP down"
    assert outbox.due() == []  # not before notify_next
    set_fields(db, job_id, notify_next=ago(5))
    assert ids(outbox.due()) == [job_id]
    assert outbox.claim(job_id, outcome, "mail-1", 60).notify_attempts == 2
    outbox.failed(job_id, "mail-1", 30, True, "SMTP down for good")
    assert gateway.jobs.get(job_id).notify == c.NOTIFY_GAVE_UP
    assert outbox.claim(job_id, outcome, "mail-2", 60) is None
    set_fields(db, job_id, notify_next=ago(5))
    assert outbox.due() == []  # given up: never due again


def test_outbox_due_filters_in_the_database(gateway, converter, outbox, db):
    """An email waiting on its retry time must not hide the other owed emails."""
    waiting_job = finished_job(gateway, converter, fail=True)  # the oldest, retrying in 5 minutes
    waiting = owed(outbox, waiting_job)
    outbox.claim(waiting, waiting_job.outcome_id, "mail-0", 60)
    outbox.failed(waiting, "mail-0", 300, False, "SMTP down")
    set_fields(db, waiting, created_at=ago(3600), updated_at=ago(3600))
    owed_ids = [owed(outbox, finished_job(gateway, converter, fail=n % 2 == 1)) for n in range(3)]
    assert outbox.due() == []  # being handled by their events
    for minutes, job_id in enumerate(owed_ids, start=1):
        set_fields(db, job_id, notify_next=ago(60 * (10 - minutes)))
    crashed_job = finished_job(gateway, converter)  # its sender died mid-send
    crashed = owed(outbox, crashed_job)
    outbox.claim(crashed, crashed_job.outcome_id, "mail-9", 60)
    expire_lease(db, crashed, "notify_until", "notify_next", 60)
    sending_job = finished_job(gateway, converter)  # being sent, its lease running
    sending = owed(outbox, sending_job)
    outbox.claim(sending, sending_job.outcome_id, "mail-8", 60)
    set_fields(db, sending, notify_next=ago(3600))
    sent_job = finished_job(gateway, converter)
    sent = owed(outbox, sent_job)
    outbox.claim(sent, sent_job.outcome_id, "mail-7", 60)
    outbox.sent(sent, "mail-7")
    set_fields(db, sent, notify_next=ago(3600))
    queued_job(gateway)  # no outcome: nothing owed
    finished_job(gateway, converter)  # its event not arrived: the converter announces it again

    assert ids(outbox.due()) == owed_ids + [crashed]
    assert ids(outbox.due(limit=1)) == [owed_ids[0]]


def test_outbox_take_due_hands_an_email_out_once(gateway, converter, outbox, db):
    done = finished_job(gateway, converter)
    job_id = owed(outbox, done)
    set_fields(db, job_id, notify_next=ago(5))
    [job] = outbox.due()
    other = Outbox(db)
    results = concurrently(*[lambda store=store: store.take_due(job) for store in [outbox, other]])
    assert sorted(results) == [False, True]
    assert outbox.due() == []
    assert gateway.jobs.get(job_id).notify_next > utcnow()
    # the event still works
    assert outbox.claim(job_id, done.outcome_id, "mail-1", 60).notify == c.NOTIFY_SENDING


def test_outbox_sends_the_email_of_a_record_from_before_outcome_ids(gateway, converter, outbox, db):
    """During an upgrade: a converter of the previous version marked the email owed itself and
    dispatched an event without an outcome id."""
    job_id = queued_job(gateway)
    converter.claim(job_id, "conv", 30)
    db[c.JOBS_COLLECTION].update_one({"_id": job_id}, {"$set": {
        "status": c.DONE, "notify": c.NOTIFY_PENDING, "notify_attempts": 0,
        "notify_next": ago(5)}})
    assert ids(outbox.due()) == [job_id]
    job = outbox.claim(job_id, None, "mail-1", 60)
    assert (job.notify, job.outcome_id, job.notify_outcome) == (c.NOTIFY_SENDING, None, None)


# --- ConverterJobs: announcing outcomes ------------------------------------------------------------

def test_converter_finds_the_outcomes_notification_has_not_taken_over(gateway, converter, outbox, db):
    lost, taken, fresh = [finished_job(gateway, converter, fail=n == 1) for n in range(3)]
    queued = queued_job(gateway)
    # (finished within milliseconds of each other: nx-27017 sorts such dates in no sure order)
    assert sorted(ids(converter.unannounced())) == sorted([lost.id, taken.id, fresh.id])
    for seconds, job in ((10, lost), (5, taken)):
        set_fields(db, job.id, announce_due=ago(seconds))
    owed(outbox, taken)
    [stale_lost, stale_taken, stale_fresh] = converter.unannounced()  # the longest due first
    assert stale_lost.notify_outcome != stale_lost.outcome_id
    assert stale_taken.notify_outcome == stale_taken.outcome_id
    assert ids(converter.unannounced(limit=1)) == [lost.id]

    converter.announced(stale_taken)
    assert gateway.jobs.get(taken.id).announce_due is None
    assert not converter.take_unannounced(stale_fresh)  # not due yet
    other = ConverterJobs(db)  # another converter's sweeper, at the same moment
    results = concurrently(*[lambda store=store: store.take_unannounced(stale_lost)
                             for store in [converter, other] * 3])
    assert sorted(results) == [False] * 5 + [True]
    assert sorted(ids(converter.unannounced())) == sorted([fresh.id, lost.id])
    assert gateway.jobs.get(lost.id).announce_due > utcnow() + datetime.timedelta(
        seconds=c.ANNOUNCE_AFTER - 5)
    assert gateway.jobs.get(queued).announce_due is None


def test_converter_a_new_outcome_is_announced_afresh(gateway, converter, outbox, db):
    failed = finished_job(gateway, converter, fail=True)
    [stale] = converter.unannounced()
    gateway.jobs.requeue(failed.id)
    converter.claim(failed.id, "conv-2", 30)
    assert gateway.jobs.get(failed.id).announce_due is None  # a conversion has no outcome to announce
    again = converter.fail(failed.id, "conv-2", "Still not media.")
    converter.announced(stale)  # a sweeper that read the first outcome: no effect on the second
    assert gateway.jobs.get(failed.id).announce_due == again.announce_due


def test_gateway_expire_waits_for_the_outcome_email(gateway, converter, outbox, db):
    """Retention deletes a finished job only once notification took its outcome over (as the
    converter records) and its email went out or was given up. (RETENTION_HOURS of 3.6 ms: the
    job's finished_at as the converter wrote it; nx-27017 compares dates rewritten by a test
    differently.)"""
    retention = 1e-6
    job = finished_job(gateway, converter)
    assert gateway.jobs.expire(retention) == 0  # its event is on its way
    owed(outbox, job)
    outbox.claim(job.id, job.outcome_id, "mail-1", 60)
    assert gateway.jobs.expire(retention) == 0  # being sent
    outbox.sent(job.id, "mail-1")
    assert gateway.jobs.expire(retention) == 0  # sent, but is it this outcome's? The converter says next
    [stale] = converter.unannounced()
    converter.announced(stale)
    assert gateway.jobs.expire(retention) == 1 and gateway.jobs.get(job.id) is None


# --- the MP3 stored while ffmpeg writes it -----------------------------------------------------

@pytest.mark.parametrize("fields", [{"bitrate": "320"}, {"bitrate": "320", "cover": "none"}])
def test_an_mp3_stored_while_encoded_is_the_mp3_made_locally(gateway, converter, tmp_path, fields):
    """Real ffmpeg into GridFS as it writes (the tag planned when the cover process beside has its
    picture, or at the start without one): the stored file is, byte for byte, the MP3 the encoder
    makes locally (the tag then put in front), Xing frame included; its chunks past the head were
    stored from the growing file."""
    video = media.make(tmp_path, "long.mp4", duration=70)  # 2.8 MB of MP3: eleven chunks
    encoder = Encoder(tmp_dir=str(tmp_path), timeout=120)
    options = parse_options(fields)
    local = tmp_path / "local.mp3"
    expected = encoder.convert(media.LocalStored(video), str(local), options)
    job = converter.claim(queued_job(gateway), "conv", 30)
    target = tmp_path / "target.mp3"
    mp3 = converter.mp3_output(job, "conv", str(target), lambda: False)
    result = encoder.convert(media.LocalStored(video), str(target), options, output=mp3)
    mp3.commit()
    assert result.size == expected.size == local.stat().st_size > 2 * CHUNK_SIZE
    assert target.read_bytes()[:3] != b"ID3"  # the tag went to storage, not into the file
    stored = converter.files.open(MP3S, mp3.file_id)
    assert stored.read() == local.read_bytes()
    assert stored.chunk_size == output.CHUNK_SIZE < CHUNK_SIZE and stored.length == result.size
    tag = ID3(io.BytesIO(local.read_bytes()))
    assert str(tag["TIT2"]) and tag.getall("CHAP")
    assert bool(tag.getall("APIC")) == ("cover" not in fields)


def test_the_mp3_being_stored_is_named_on_the_record_and_a_later_attempt_drops_it(
        gateway, converter, db, tmp_path):
    job_id = queued_job(gateway)
    job = converter.claim(job_id, "worker-1", 30)
    path = tmp_path / "audio.mp3"
    mp3 = converter.mp3_output(job, "worker-1", str(path), lambda: False)
    mp3.reset()
    mp3.begin(10)
    path.write_bytes(b"\xff" * (3 * CHUNK_SIZE))
    partial = wait_until(lambda: db["jobs"].find_one({"_id": job_id}).get("mp3_partial"), 10)
    assert partial == mp3.file_id
    wait_until(lambda: chunk_count(db, MP3S, partial) >= 1, 10)
    mp3._follower.kill()  # the converter died here
    expire_lease(db, job_id)
    again = converter.claim(job_id, "worker-2", 30)
    assert again.mp3_partial == partial
    late = converter.mp3_output(job, "worker-1", str(path), lambda: False)
    late.reset()
    late.finish(b"ID3")  # a converter that lost its lease names no file on the record
    assert db["jobs"].find_one({"_id": job_id})["mp3_partial"] == partial
    late.abort()
    converter.drop_partial(again)
    assert chunk_count(db, MP3S, partial) == 0
    done = converter.complete(job_id, "worker-2", stored_mp3(converter, again).file_id, 1.0, 12)
    assert done.mp3_partial is None
