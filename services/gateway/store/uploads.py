"""Uploads in progress: admission (a hidden `uploading` job record holding a slot and reserved bytes),
the video's GridFS stream, the tus offset protocol, and the step that makes an upload a queued job.

A resumable (tus) upload is an `uploading` job with upload_length, upload_offset and upload_tail (the
bytes past the video's last full GridFS chunk). Offset and tail move together in one update, after
the chunks they claim are stored; upload_writer names the one PATCH allowed to move them.

`upload_open` is true while an upload's bytes arrive. An upload in a container ffmpeg decodes as it
arrives (services/common/containers.py) is queued at its first stored chunk (`stream`), so a
converter converts it while it streams (reading the chunks as they land, services/storage/gridio.py
GrowingFile); its record then stays open until the last byte (`finish`). Every step of an upload in
progress is conditional on `upload_open`, not on the status, which the converter moves meanwhile.
"""
import dataclasses
import datetime
import functools
import uuid

from bson import Binary, ObjectId
from pymongo import ReturnDocument

from services.common import constants as c
from services.common.jobs import Job, as_datetime
from services.common.utils import utcnow
from services.gateway.store.jobs import redispatch_time
from services.gateway.exceptions import QuotaExceeded, StorageFull


# bytes an upload streaming past its reservation reserves at a time (one check of the sums each)
GRANT_STEP = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Admission:
    """An admitted upload: its job id, its video's id, the bytes its record reserves (announced),
    and the limits it is held to while it streams."""
    job_id: str
    owner: str
    video_id: ObjectId
    reserved: int
    quota: int
    storage_limit: int = 0


@dataclasses.dataclass(frozen=True)
class Resumable:
    """A resumable upload's state, in progress or complete (`status` past uploading)."""
    id: str
    owner: str
    filename: str
    status: str
    video_id: ObjectId
    length: int
    offset: int
    updated_at: datetime.datetime
    tail: bytes = b""
    open: bool = True

    @classmethod
    def from_doc(cls, doc):
        if doc is None:
            return None
        return cls(id=doc["_id"], owner=doc["owner"], filename=doc["filename"], status=doc["status"],
                   video_id=doc["video_id"], length=doc["upload_length"], offset=doc["upload_offset"],
                   updated_at=as_datetime(doc["updated_at"]), tail=bytes(doc.get("upload_tail") or b""),
                   open=bool(doc.get("upload_open")))

    @property
    def uploading(self):
        """Bytes still to come (the job may be converting already: `streaming`)."""
        return self.open

    @property
    def streaming(self):
        """Queued (or converting) before its last byte: converted as it arrives."""
        return self.open and self.status != c.UPLOADING

    def moved_to(self, offset, status=None):
        """The state after a PATCH stored up to `offset` (`status`: the job's, once complete)."""
        if status is None:
            return dataclasses.replace(self, offset=offset, updated_at=utcnow())
        return dataclasses.replace(self, offset=offset, status=status, open=False, updated_at=utcnow())


def resumable_fields(filename, length, options):
    """The record of a new resumable upload of `length` bytes, for `UploadStore.admit`. (No
    upload_tail yet: nx-27017 cannot $set an ObjectId and bytes in one update.)"""
    return {"filename": filename, "options": options, "upload_length": length, "upload_offset": 0,
            "upload_writer": None}


class QuotaFile:
    """The video's `Upload` held to its owner's quota and the store's limit, together with every
    other upload in progress: a block past what the job record reserves is written only after the
    record reserves more (`UploadStore.grow`: reserve, then check the sums, so of concurrent
    uploads none passes the limits unseen). The block that would pass them is refused unwritten."""

    def __init__(self, upload, admission, grow):
        self._upload = upload
        self._admission = admission
        self._grow = grow
        self._granted = admission.reserved

    def write(self, data):
        needed = self._upload.size + len(data)
        if needed > self._granted:
            self._granted = self._grow(self._admission, self._granted, needed)
        self._upload.write(data)

    def __getattr__(self, name):  # size, file_id, committed, commit, abort
        return getattr(self._upload, name)


class UploadStore:
    def __init__(self, db, files, slots, jobs):
        self.jobs = db[c.JOBS_COLLECTION]
        self.files = files
        self.slots = slots
        self.job_store = jobs

    def mark_open(self):
        """Uploads in progress from before `upload_open` existed (an upgrade mid-upload) marked open,
        so they continue; idempotent, run at start with the indexes."""
        self.jobs.update_many({"status": c.UPLOADING, "upload_open": {"$exists": False}},
                              {"$set": {"upload_open": True}})

    # admission ----------------------------------------------------------------------------------
    def admit(self, owner, announced, quota, max_active, storage_limit=0, **fields):
        """Reserve a job for an upload about to stream, before anything is stored. TooManyJobs when
        `max_active` of the owner's jobs are uploading, queued or converting; QuotaExceeded when
        `announced` bytes (Content-Length or Upload-Length; None when unknown) would take them over
        `quota`; StorageFull when they would take the store over `storage_limit` (0: none).
        Leaves nothing behind when it raises.

        The job record (hidden while uploading) is written first, then its id takes one of the
        owner's slots with one conditional update of their slots document, so concurrent uploads
        cannot together exceed the cap. Its `reserved` bytes count in the quota of uploads that
        begin while it streams, and grow as it streams past them (`grow`). `fields`: more of the
        record (a resumable upload's)."""
        now = utcnow()
        job_id = uuid.uuid4().hex
        video_id = ObjectId()
        self.jobs.insert_one(dict({
            "_id": job_id, "owner": owner, "filename": None, "status": c.UPLOADING,
            "video_id": video_id, "mp3_id": None, "error": None, "attempts": 0,
            "reserved": announced or 0, "created_at": now, "upload_open": True,
            "updated_at": now}, **fields))
        try:
            self.slots.take(owner, job_id, max_active)
            self.slots.check(owner, quota, storage_limit)  # this upload's reservation included
        except BaseException:
            self.discard(job_id)
            raise
        return Admission(job_id, owner, video_id, announced or 0, quota, storage_limit)

    def grow(self, admission, granted, needed):
        """Reserve at least `needed` bytes for an upload streaming past its `granted` ones (a step
        more when there is room, so not every block checks); the bytes reserved now. Reserve first,
        then check: two uploads of one user growing at once each see the other's reservation.
        QuotaExceeded or StorageFull (the reservation back at `granted`) when even `needed` is
        too much."""
        error = None
        for target in (needed + GRANT_STEP, needed):
            self._reserve(admission.job_id, target)
            try:
                self.slots.check(admission.owner, admission.quota, admission.storage_limit)
                return target
            except (QuotaExceeded, StorageFull) as exc:
                error = exc
        self._reserve(admission.job_id, granted)
        raise error

    def _reserve(self, job_id, size):
        self.jobs.update_one({"_id": job_id, "upload_open": True},
                             {"$set": {"reserved": size, "updated_at": utcnow()}})

    def open_file(self, admission):
        """The GridFS stream of an admitted upload's video (named when committed), held to its
        room; a long upload keeps its record fresh (not taken for abandoned)."""
        upload = self.files.create(c.VIDEOS_BUCKET, None, {"owner": admission.owner,
                                                           "job_id": admission.job_id},
                                   touch=functools.partial(self._touch, admission.job_id),
                                   file_id=admission.video_id)
        return QuotaFile(upload, admission, self.grow)

    def _touch(self, job_id):
        self.jobs.update_one({"_id": job_id, "upload_open": True}, {"$set": {"updated_at": utcnow()}})

    def queue(self, job_id, size, **fields):
        """The uploaded job made visible and queued (due for redispatch by the converter's sweeper
        if its event is lost) with `fields` set; None when it was swept or deleted meanwhile."""
        return self._queue({"_id": job_id}, size, **fields)

    def _queue(self, query, size, **fields):
        now = utcnow()
        return Job.from_doc(self.jobs.find_one_and_update(
            dict(query, status=c.UPLOADING),
            {"$set": dict(fields, status=c.QUEUED, size=size, updated_at=now, upload_open=False,
                          due_at=redispatch_time(now))},
            return_document=ReturnDocument.AFTER))

    def stream_form(self, job_id, filename, options):
        """Queue a POST /upload whose file still streams in, as `stream` does, with the name and
        options known so far; the job, or None when it was swept or discarded meanwhile."""
        now = utcnow()
        return Job.from_doc(self.jobs.find_one_and_update(
            {"_id": job_id, "status": c.UPLOADING},
            {"$set": {"status": c.QUEUED, "filename": filename, "options": options,
                      "updated_at": now, "due_at": redispatch_time(now)}},
            return_document=ReturnDocument.AFTER))

    def close(self, job_id, size, **fields):
        """The last byte of an upload queued while it streamed (`stream`, `stream_form`): its size
        and `fields` set, no longer open; the job, or None when it was removed meanwhile."""
        return self._close({"_id": job_id}, size, **fields)

    def _close(self, query, size, **fields):
        return Job.from_doc(self.jobs.find_one_and_update(
            dict(query, upload_open=True),
            {"$set": dict(fields, size=size, upload_open=False, updated_at=utcnow())},
            return_document=ReturnDocument.AFTER))

    def stream(self, upload, claim):
        """Queue a resumable upload whose bytes are still arriving, so that it converts as they
        land (its first chunk is stored, and its container decodes from a stream); the job, or None
        when the PATCH lost its claim meanwhile."""
        now = utcnow()
        return Job.from_doc(self.jobs.find_one_and_update(
            {"_id": upload.id, "status": c.UPLOADING, "upload_writer": claim},
            {"$set": {"status": c.QUEUED, "updated_at": now, "due_at": redispatch_time(now)}},
            return_document=ReturnDocument.AFTER))

    def discard(self, job_id, video_id=None):
        """Forget a job that never got queued, with its video (`video_id`: one written for it that
        its record may not name)."""
        self.job_store.remove({"_id": job_id})
        self.files.delete(c.VIDEOS_BUCKET, video_id)

    def sweep(self, older_than):
        """Remove uploads abandoned by a crashed gateway: job record and any chunks written. Each
        delete repeats the state it was found in (still uploading, still not refreshed since the
        cutoff), so an upload that was queued or received bytes meanwhile stays. An abandoned
        upload that was converting as it streamed goes too: its converter finds it gone and stops,
        keeping nothing."""
        cutoff = utcnow() - datetime.timedelta(seconds=older_than)
        stale = {"upload_open": True, "updated_at": {"$lt": cutoff}}
        abandoned = [doc["_id"] for doc in self.jobs.find(stale, projection={"_id": 1})]
        return sum(1 for job_id in abandoned if self.job_store.remove(dict(stale, _id=job_id)))

    # resumable uploads (tus) -------------------------------------------------------------------
    def find(self, job_id, owner, tail=False):
        """Owner's resumable upload (in progress or complete), or None; `tail`: with its bytes past
        the last full chunk (a PATCH continues from them)."""
        return Resumable.from_doc(self.jobs.find_one(
            {"_id": job_id, "owner": owner, "upload_length": {"$exists": True}},
            projection=None if tail else {"upload_tail": 0}))

    def claim(self, upload, offset, seconds):
        """Make the calling PATCH the upload's one writer from offset, for `seconds` unless renewed:
        its claim, or None when another PATCH holds a live claim, or the upload moved on or went
        away meanwhile. (Claimed before the stored tail is loaded: one tail in memory per upload.)"""
        claim = uuid.uuid4().hex
        now = utcnow()
        # ($and spelled out: nx-27017 ignores a condition beside a top-level $or)
        result = self.jobs.update_one(
            {"$and": [{"_id": upload.id, "upload_open": True, "upload_offset": offset},
                      {"$or": [{"upload_writer": None}, {"upload_writer_until": {"$lt": now}}]}]},
            {"$set": {"upload_writer": claim, "updated_at": now,
                      "upload_writer_until": now + datetime.timedelta(seconds=seconds)}})
        return claim if result.matched_count else None

    def renew(self, upload, claim, seconds):
        """Keep the writer's claim alive while its bytes arrive."""
        now = utcnow()
        self.jobs.update_one({"_id": upload.id, "upload_writer": claim}, {"$set": {
            "upload_writer_until": now + datetime.timedelta(seconds=seconds), "updated_at": now}})

    def release(self, upload, claim):
        """The PATCH is over: the next one may write."""
        self.jobs.update_one({"_id": upload.id, "upload_writer": claim},
                             {"$set": {"upload_writer": None, "upload_writer_until": None}})

    def appender(self, upload):
        """A `ChunkAppender` continuing the upload's video at its recorded offset."""
        return self.files.append(c.VIDEOS_BUCKET, upload.video_id, upload.offset, upload.tail)

    def save_offset(self, upload, claim, old, new, tail):
        """Record the bytes held (chunks stored plus tail); False when the claim is lost."""
        result = self.jobs.update_one(
            {"_id": upload.id, "upload_open": True, "upload_writer": claim, "upload_offset": old},
            {"$set": {"upload_offset": new, "upload_tail": Binary(tail), "updated_at": utcnow()}})
        return bool(result.matched_count)

    def finish(self, upload, appender, claim):
        """Store the video's last chunk and files document, then queue the job as `queue` does (a
        streaming one, queued at its first chunk, is only closed: its converter then reads the
        last chunks and settles); None when the upload was terminated, swept or taken over
        meanwhile."""
        size = appender.finish(upload.filename, {"owner": upload.owner, "job_id": upload.id})
        query, fields = {"_id": upload.id, "upload_writer": claim}, {
            "upload_offset": size, "upload_tail": Binary(b"")}
        if not upload.streaming:
            return self._queue(query, size, **fields)
        return self._close(query, size, **fields)

    def terminate(self, job_id):
        """Remove an upload still in progress with every chunk stored (and so stop its conversion,
        when it was converting as it streamed); False when it is not."""
        return self.job_store.remove({"_id": job_id, "upload_open": True})

    def drop_video(self, video_id):
        self.files.delete(c.VIDEOS_BUCKET, video_id)
