"""The gateway's part of the job record: uploads become queued jobs within the user's quota and
active-job cap; users read and delete their own jobs; finished jobs expire; operators requeue,
delete users and read a summary. The GridFS files come from the shared `FileStore`."""
import collections
import datetime
import uuid

from bson import Binary, ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.common import constants as c
from services.common.jobs import Job
from services.common.utils import utcnow
from services.gateway.exceptions import QuotaExceeded, TooManyJobs, UploadExpired
from services.storage.dependencies import MongoStore
from services.storage.files import FileStore

# seconds a client told 429 too_many_jobs is asked to wait: about one short conversion
TOO_MANY_JOBS_RETRY = 30


def redispatch_time(now):
    return now + datetime.timedelta(seconds=c.REDISPATCH_AFTER)


def quota_exceeded(quota):
    return QuotaExceeded("This upload would take you over your storage quota of %d bytes; delete "
                         "some jobs first." % quota)


class QuotaUpload:
    """An `Upload` that refuses, before writing it, the block that would take its owner over
    quota (`room`: the bytes the owner had left when the upload began)."""

    def __init__(self, upload, room, quota):
        self._upload = upload
        self._room = room
        self._quota = quota

    def write(self, data):
        if self._upload.size + len(data) > self._room:
            raise quota_exceeded(self._quota)
        self._upload.write(data)

    def __getattr__(self, name):  # size, file_id, committed, commit, abort
        return getattr(self._upload, name)


class GatewayJobs:
    def __init__(self, db):
        self.db = db
        self.files = FileStore(db)
        self.jobs = db[c.JOBS_COLLECTION]
        self.slots = db[c.SLOTS_COLLECTION]

    def ensure_indexes(self):
        self.jobs.create_index([("owner", 1), ("created_at", -1)])
        self.jobs.create_index([("status", 1), ("updated_at", 1)])
        self.jobs.create_index([("finished_at", 1)])
        self.files.ensure_indexes()

    def ping(self):
        self.db.command("ping")

    # uploads -----------------------------------------------------------------------------------
    def admit(self, owner, announced, quota, max_active):
        """Reserve a job for an upload about to stream, before anything is stored: (job_id, bytes
        the owner has left for it). TooManyJobs when `max_active` of the owner's jobs are uploading,
        queued or converting; QuotaExceeded when `announced` bytes (from Content-Length; None when
        unknown) would take them over `quota`. Leaves nothing behind when it raises.

        The job record (hidden while uploading) is written first, then its id takes one of the
        owner's slots with one conditional update of their slots document, so concurrent uploads
        cannot together exceed the cap. Its `reserved` bytes count in the quota of uploads that
        begin while it streams."""
        now = utcnow()
        job_id = uuid.uuid4().hex
        self.jobs.insert_one({
            "_id": job_id, "owner": owner, "filename": None, "status": c.UPLOADING,
            "video_id": None, "mp3_id": None, "error": None, "attempts": 0, "reserved": announced or 0,
            "notify": None, "notify_attempts": 0, "created_at": now, "updated_at": now})
        try:
            self._take_slot(owner, job_id, max_active)
            others = self.usage(owner, exclude=job_id)
            if others + (announced or 0) > quota:
                raise quota_exceeded(quota)
        except BaseException:
            self.discard(job_id)
            raise
        return job_id, quota - others

    def begin_file(self, job_id, owner, filename, room, quota):
        """The GridFS stream for the video of an admitted job, held to `room` bytes."""
        upload = self.files.create(
            c.VIDEOS_BUCKET, filename, {"owner": owner, "job_id": job_id},
            touch=lambda: self.jobs.update_one({"_id": job_id, "status": c.UPLOADING},
                                               {"$set": {"updated_at": utcnow()}}))
        found = self.jobs.update_one({"_id": job_id, "status": c.UPLOADING}, {"$set": {
            "filename": filename, "video_id": upload.file_id, "updated_at": utcnow()}})
        if found.matched_count != 1:  # swept, or its owner deleted meanwhile
            raise UploadExpired("The upload was cancelled; send it again.")
        return job_id, QuotaUpload(upload, room, quota)

    def queue(self, job_id, size, options):
        """The uploaded job made visible and queued with its conversion options; None when it was
        swept as abandoned."""
        return self._queue({"_id": job_id}, size, options=options)

    def _queue(self, query, size, **fields):
        """The `uploading` job matching `query`, queued with `fields` set; None when gone."""
        now = utcnow()
        return Job.from_doc(self.jobs.find_one_and_update(
            dict(query, status=c.UPLOADING),
            {"$set": dict(fields, status=c.QUEUED, size=size, updated_at=now,
                          due_at=redispatch_time(now))},
            return_document=ReturnDocument.AFTER))

    def discard(self, job_id, video_id=None):
        """Forget a job that never got queued, with its video (`video_id`: one written for it that
        its record may not name)."""
        self._remove({"_id": job_id})
        self.files.delete(c.VIDEOS_BUCKET, video_id)

    def sweep_uploads(self, older_than):
        """Remove uploads abandoned by a crashed gateway: job record and any chunks written."""
        cutoff = utcnow() - datetime.timedelta(seconds=older_than)
        abandoned = [doc["_id"] for doc in self.jobs.find(
            {"status": c.UPLOADING, "updated_at": {"$lt": cutoff}}, projection={"_id": 1})]
        for job_id in abandoned:
            self.discard(job_id)
        return len(abandoned)

    # resumable uploads (tus) -------------------------------------------------------------------
    # A resumable upload is an `uploading` job with upload_length, upload_offset and upload_tail (the
    # bytes past the video's last full GridFS chunk). Offset and tail move together in one update,
    # after the chunks they claim are stored; upload_writer names the one PATCH allowed to move them.
    def create_upload(self, owner, filename, length, options, quota, max_active):
        """The job record of a new resumable upload of `length` bytes (hidden until complete),
        admitted as `admit` admits a POST /upload: the active-job cap, and the quota from the
        length, counted as reserved while it uploads. Its id."""
        job_id, _ = self.admit(owner, length, quota, max_active)
        # (no upload_tail yet: nx-27017 cannot $set an ObjectId and bytes in one update)
        found = self.jobs.update_one({"_id": job_id, "status": c.UPLOADING}, {"$set": {
            "filename": filename, "video_id": ObjectId(), "options": options, "updated_at": utcnow(),
            "upload_length": length, "upload_offset": 0, "upload_writer": None}})
        if found.matched_count != 1:  # its owner was deleted meanwhile
            raise UploadExpired("The upload was cancelled; send it again.")
        return job_id

    def find_upload(self, job_id, owner, tail=False):
        """The record of owner's resumable upload (in progress or complete), or None."""
        return self.jobs.find_one({"_id": job_id, "owner": owner, "upload_length": {"$exists": True}},
                                  projection=None if tail else {"upload_tail": 0})

    def claim_upload(self, job_id, offset):
        """Make the calling PATCH the upload's writer from offset: its claim, or None when the upload
        moved on or went away meanwhile."""
        claim = uuid.uuid4().hex
        result = self.jobs.update_one(
            {"_id": job_id, "status": c.UPLOADING, "upload_offset": offset},
            {"$set": {"upload_writer": claim, "updated_at": utcnow()}})
        return claim if result.matched_count else None

    def upload_appender(self, upload):
        """A `ChunkAppender` continuing the upload's video at its recorded offset."""
        return self.files.append(c.VIDEOS_BUCKET, upload["video_id"], upload["upload_offset"],
                                 bytes(upload.get("upload_tail") or b""))

    def save_offset(self, job_id, claim, old, new, tail):
        """Record the bytes held (chunks stored plus tail); False when the claim is lost."""
        result = self.jobs.update_one(
            {"_id": job_id, "status": c.UPLOADING, "upload_writer": claim, "upload_offset": old},
            {"$set": {"upload_offset": new, "upload_tail": Binary(tail), "updated_at": utcnow()}})
        return bool(result.matched_count)

    def finish_upload(self, upload, appender, claim):
        """Store the video's last chunk and files document, then queue the job as `queue` does;
        None when the upload was terminated, swept or taken over meanwhile."""
        size = appender.finish(upload["filename"], {"owner": upload["owner"], "job_id": upload["_id"]})
        return self._queue({"_id": upload["_id"], "upload_writer": claim}, size,
                           upload_offset=size, upload_tail=Binary(b""))

    def terminate_upload(self, job_id):
        """Remove an upload still in progress with every chunk stored; False when it is not."""
        return self._remove({"_id": job_id, "status": c.UPLOADING})

    def drop_video(self, video_id):
        self.files.delete(c.VIDEOS_BUCKET, video_id)

    # quota and active-job slots ----------------------------------------------------------------
    def usage(self, owner, exclude=None):
        """Bytes `owner` holds: videos not yet converted (or kept for a requeue), MP3s, and the
        announced size of uploads in progress."""
        return sum(Job.from_doc(doc).stored_bytes for doc in self.jobs.find({"owner": owner})
                   if doc["_id"] != exclude)

    def _take_slot(self, owner, job_id, limit):
        """Add `job_id` to the owner's active jobs unless `limit` are there. Ids of jobs that are no
        longer active are pruned when the slots look full (nothing has to free a slot when a job
        finishes, so a crash cannot leak one)."""
        for _ in range(3):
            try:
                taken = self.slots.find_one_and_update(
                    {"_id": owner, "count": {"$lt": limit}},
                    {"$push": {"jobs": job_id}, "$inc": {"count": 1}}, upsert=True,
                    return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:  # full (MongoDB tries the upsert), or a concurrent first one
                taken = None
            if taken is not None:
                return
            self._prune_slots(owner)
        raise TooManyJobs("You have %d uploads or conversions in progress, the most at once; "
                          "wait for one to finish." % limit, TOO_MANY_JOBS_RETRY)

    def _prune_slots(self, owner):
        doc = self.slots.find_one({"_id": owner}) or {}
        ids = list(doc.get("jobs") or [])
        active = {d["_id"] for d in self.jobs.find(
            {"_id": {"$in": ids}, "status": {"$in": list(c.ACTIVE_STATES)}}, projection={"_id": 1})}
        for job_id in ids:
            if job_id not in active:
                self._free_slot(owner, job_id)

    def _free_slot(self, owner, job_id):
        # conditional on the id being there, so a slot is given back once
        self.slots.update_one({"_id": owner, "jobs": job_id},
                              {"$pull": {"jobs": job_id}, "$inc": {"count": -1}})

    # reading -----------------------------------------------------------------------------------
    def get(self, job_id):
        """A job users may see (not one still uploading), or None."""
        return Job.from_doc(self.jobs.find_one({"_id": job_id, "status": {"$ne": c.UPLOADING}}))

    def for_owner(self, owner, limit=100):
        cursor = self.jobs.find({"owner": owner, "status": {"$ne": c.UPLOADING}})
        return [Job.from_doc(doc) for doc in cursor.sort("created_at", -1).limit(limit)]

    def open_mp3(self, file_id):
        return self.files.open(c.MP3S_BUCKET, file_id)

    # deleting ----------------------------------------------------------------------------------
    def delete(self, job_id, owner):
        """Delete a visible job of `owner` with its video and MP3; False when there is none. A
        conversion in progress notices at its next lease renewal (the record is gone), kills ffmpeg
        and drops whatever it wrote."""
        return self._remove({"_id": job_id, "owner": owner, "status": {"$ne": c.UPLOADING}})

    def expire(self, retention_hours, limit=200):
        """Delete finished jobs, their MP3s and videos `retention_hours` after they finished (once
        their email went out or was given up); idempotent, so every gateway replica may run it.
        Files go first: a crash in between leaves a record the next sweep finds again."""
        cutoff = utcnow() - datetime.timedelta(hours=retention_hours)
        due = list(self.jobs.find({
            "status": {"$in": list(c.FINISHED_STATES)}, "finished_at": {"$lt": cutoff},
            "notify": {"$nin": [c.NOTIFY_PENDING, c.NOTIFY_SENDING]}}).sort("finished_at", 1)
            .limit(limit))
        for doc in due:
            self._remove_files(doc)
            self.jobs.delete_one({"_id": doc["_id"], "status": {"$in": list(c.FINISHED_STATES)}})
        return len(due)

    def delete_owner(self, owner):
        """Every job, video and MP3 of `owner` (files found by their metadata too, so none written by
        an interrupted upload or conversion is missed): {"jobs": n, "files": n}."""
        jobs = 0
        for doc in list(self.jobs.find({"owner": owner})):
            if self.jobs.delete_one({"_id": doc["_id"]}).deleted_count:
                jobs += 1
            self._remove_files(doc)
        files = 0
        for bucket in (c.VIDEOS_BUCKET, c.MP3S_BUCKET):
            for doc in list(self.db[bucket + ".files"].find({"metadata.owner": owner},
                                                            projection={"_id": 1})):
                self.files.delete(bucket, doc["_id"])
                files += 1
        self.slots.delete_one({"_id": owner})
        return {"jobs": jobs, "files": files}

    def _remove(self, query):
        """Delete the job matching `query` with its files, and give back its active-job slot;
        False when there is none."""
        doc = self.jobs.find_one_and_delete(query)
        if doc is None:
            return False
        self._remove_files(doc)
        self._free_slot(doc["owner"], doc["_id"])
        return True

    def _remove_files(self, doc):
        self.files.delete(c.VIDEOS_BUCKET, doc.get("video_id"))
        self.files.delete(c.MP3S_BUCKET, doc.get("mp3_id"))

    # operators ---------------------------------------------------------------------------------
    def requeue(self, job_id):
        """A failed job whose video is still stored, put back in the queue; None otherwise."""
        now = utcnow()
        return Job.from_doc(self.jobs.find_one_and_update(
            {"_id": job_id, "status": c.FAILED, "video_id": {"$ne": None}},
            {"$set": {"status": c.QUEUED, "error": None, "attempts": 0, "notify": None,
                      "updated_at": now, "due_at": redispatch_time(now)}},
            return_document=ReturnDocument.AFTER))

    def summary(self):
        """Jobs by status, files and bytes per bucket, and users with jobs."""
        by_status = collections.Counter()
        owners = set()
        for doc in self.jobs.find({}, projection={"status": 1, "owner": 1}):
            by_status[doc.get("status")] += 1
            owners.add(doc.get("owner"))
        files = {}
        for bucket in (c.VIDEOS_BUCKET, c.MP3S_BUCKET):
            lengths = [doc.get("length") or 0 for doc in self.db[bucket + ".files"].find(
                {}, projection={"length": 1})]
            files[bucket] = {"files": len(lengths), "bytes": sum(lengths)}
        return {"jobs": dict(by_status), "files": files,
                "bytes_stored": sum(f["bytes"] for f in files.values()),
                "users_with_jobs": len(owners)}


class GatewayStore(MongoStore):
    def build(self, db, settings):
        return GatewayJobs(db)
