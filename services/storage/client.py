"""The narrow storage API injected into workers: videos, MP3s and job records, by domain verb."""
import datetime
import logging
import uuid

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument

from services.common import constants as c
from services.common.utils import as_datetime, utcnow
from services.storage.gridio import FileWriter, StoredFile, delete_file

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024


def parse_file_id(value):
    """A file id from the outside world, or None when it is not one."""
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None


TOUCH_EVERY = 64 * 1024 * 1024


class Upload:
    """A file being streamed into GridFS. `commit()` keeps it, `abort()` leaves nothing behind.

    `touch` (optional) is called every 64 MiB, so a long upload still in progress is not taken
    for one abandoned by a crashed gateway (see `Storage.sweep_uploads`)."""

    def __init__(self, writer, touch=None):
        self._writer = writer
        self._touch = touch
        self.file_id = writer.file_id
        self.committed = False

    @property
    def size(self):
        return self._writer.length

    def write(self, data):
        before = self.size
        self._writer.write(data)
        if self._touch is not None and before // TOUCH_EVERY != self.size // TOUCH_EVERY:
            self._touch()

    def commit(self):
        self._writer.close()
        self.committed = True

    def abort(self):
        if not self.committed:
            self._writer.abort()


class Storage:
    def __init__(self, db):
        self.db = db
        self.jobs = db[c.JOBS_COLLECTION]

    def ensure_indexes(self):
        self.jobs.create_index([("owner", 1), ("created_at", -1)])
        self.jobs.create_index([("status", 1), ("lease_until", 1)])
        self.jobs.create_index([("notify", 1), ("notify_next", 1)])
        for bucket in (c.VIDEOS_BUCKET, c.MP3S_BUCKET):
            self.db[bucket + ".chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)
            self.db[bucket + ".files"].create_index([("filename", 1), ("uploadDate", 1)])

    def ping(self):
        self.db.command("ping")

    # uploads -------------------------------------------------------------
    def begin_upload(self, owner, filename):
        """Create the job record (hidden while uploading) and a GridFS stream for the video."""
        now = utcnow()
        job_id = uuid.uuid4().hex
        writer = self._writer(c.VIDEOS_BUCKET, filename, {"owner": owner, "job_id": job_id})
        self.jobs.insert_one({
            "_id": job_id, "owner": owner, "filename": filename, "status": c.UPLOADING,
            "video_id": writer.file_id, "mp3_id": None, "error": None, "attempts": 0,
            "lease_owner": None, "lease_until": None, "not_before": None,
            "notify": None, "notify_attempts": 0, "notify_next": None,
            "created_at": now, "updated_at": now,
        })
        return job_id, Upload(writer, touch=lambda: self.jobs.update_one(
            {"_id": job_id, "status": c.UPLOADING}, {"$set": {"updated_at": utcnow()}}))

    def queue_job(self, job_id, size):
        return self.jobs.find_one_and_update(
            {"_id": job_id, "status": c.UPLOADING},
            {"$set": {"status": c.QUEUED, "size": size, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER)

    def discard_job(self, job_id):
        """Forget a job that never got queued, with its video."""
        job = self.jobs.find_one_and_delete({"_id": job_id})
        if job and job.get("video_id") is not None:
            self.delete_video(job["video_id"])

    def sweep_uploads(self, older_than):
        """Remove uploads abandoned by a crashed gateway: their job record and any chunks written."""
        cutoff = utcnow() - datetime.timedelta(seconds=older_than)
        swept = 0
        for job in self.jobs.find({"status": c.UPLOADING, "updated_at": {"$lt": cutoff}}):
            self.discard_job(job["_id"])
            swept += 1
        return swept

    # videos and mp3s -------------------------------------------------------
    def open_video(self, video_id):
        return self._open(c.VIDEOS_BUCKET, video_id)

    def delete_video(self, video_id):
        self._delete(c.VIDEOS_BUCKET, video_id)

    def begin_mp3(self, job):
        return Upload(self._writer(
            c.MP3S_BUCKET, mp3_filename(job["filename"]),
            {"owner": job["owner"], "job_id": job["_id"], "source": job["filename"]}))

    def _writer(self, bucket, filename, metadata):
        return FileWriter(self.db[bucket + ".files"], self.db[bucket + ".chunks"], ObjectId(),
                          filename, metadata, CHUNK_SIZE)

    def open_mp3(self, mp3_id):
        return self._open(c.MP3S_BUCKET, mp3_id)

    def delete_mp3(self, mp3_id):
        self._delete(c.MP3S_BUCKET, mp3_id)

    def _open(self, name, file_id):
        doc = self.db[name + ".files"].find_one({"_id": file_id})
        if doc is None:
            return None
        return StoredFile(self.db[name + ".chunks"], doc)

    def _delete(self, name, file_id):
        delete_file(self.db[name + ".files"], self.db[name + ".chunks"], file_id)

    # job records -----------------------------------------------------------
    def get_job(self, job_id):
        return self.jobs.find_one({"_id": job_id})

    def jobs_for(self, owner, limit=100):
        return list(self.jobs.find({"owner": owner, "status": {"$ne": c.UPLOADING}})
                    .sort("created_at", -1).limit(limit))

    def claim_job(self, job_id, worker, lease):
        """Take a queued job, or one whose converter stopped renewing its lease. None if not ours."""
        now = utcnow()
        update = {"$set": {"status": c.CONVERTING, "lease_owner": worker, "error": None,
                           "lease_until": now + datetime.timedelta(seconds=lease),
                           "updated_at": now},
                  "$inc": {"attempts": 1}}
        job = self.jobs.find_one_and_update(
            {"_id": job_id, "status": c.QUEUED}, update, return_document=ReturnDocument.AFTER)
        if job is None:
            job = self.jobs.find_one_and_update(
                {"_id": job_id, "status": c.CONVERTING, "lease_until": {"$lt": now}},
                update, return_document=ReturnDocument.AFTER)
        return job

    def renew_lease(self, job_id, worker, lease):
        now = utcnow()
        result = self.jobs.update_one(
            {"_id": job_id, "status": c.CONVERTING, "lease_owner": worker},
            {"$set": {"lease_until": now + datetime.timedelta(seconds=lease)}})
        return result.matched_count == 1

    def complete_job(self, job_id, worker, mp3_id, duration):
        return self._finish(job_id, worker, {
            "status": c.DONE, "mp3_id": mp3_id, "duration": duration, "error": None})

    def fail_job(self, job_id, worker, error):
        return self._finish(job_id, worker, {"status": c.FAILED, "error": error})

    def _finish(self, job_id, worker, fields):
        now = utcnow()
        fields.update({"lease_owner": None, "lease_until": None, "updated_at": now,
                       "notify": c.NOTIFY_PENDING, "notify_next": now, "notify_attempts": 0})
        job = self.jobs.find_one_and_update(
            {"_id": job_id, "status": c.CONVERTING, "lease_owner": worker},
            {"$set": fields}, return_document=ReturnDocument.AFTER)
        return job

    def release_job(self, job_id, worker, retry_in, reason):
        """Give a job back after a transient failure; it is taken again after `retry_in` seconds."""
        now = utcnow()
        self.jobs.update_one(
            {"_id": job_id, "status": c.CONVERTING, "lease_owner": worker},
            {"$set": {"status": c.QUEUED, "lease_owner": None, "lease_until": None,
                      "not_before": now + datetime.timedelta(seconds=retry_in),
                      "last_error": reason, "updated_at": now}})

    def due_jobs(self, queued_grace, limit=10):
        """Jobs no converter is working on: expired leases, and queued jobs whose message is overdue."""
        now = utcnow()
        expired = list(self.jobs.find(
            {"status": c.CONVERTING, "lease_until": {"$lt": now}}).limit(limit))
        stale = self.jobs.find(
            {"status": c.QUEUED,
             "updated_at": {"$lt": now - datetime.timedelta(seconds=queued_grace)}}).limit(limit)
        due = [job for job in stale
               if job.get("not_before") is None or as_datetime(job["not_before"]) < now]
        return expired + due

    def requeue_job(self, job_id):
        """Operator action: put a failed job back in the queue. Returns the job or None."""
        now = utcnow()
        return self.jobs.find_one_and_update(
            {"_id": job_id, "status": c.FAILED, "video_id": {"$ne": None}},
            {"$set": {"status": c.QUEUED, "error": None, "attempts": 0, "not_before": None,
                      "notify": None, "updated_at": now}},
            return_document=ReturnDocument.AFTER)

    def forget_video(self, job_id):
        self.jobs.update_one({"_id": job_id}, {"$set": {"video_id": None}})

    # notifications ---------------------------------------------------------
    def claim_notification(self, job_id, worker, lease):
        """Take the job's outcome email, unless it was sent or another worker is sending it."""
        now = utcnow()
        update = {"$set": {"notify": c.NOTIFY_SENDING, "notify_owner": worker,
                           "notify_until": now + datetime.timedelta(seconds=lease)},
                  "$inc": {"notify_attempts": 1}}
        job = self.jobs.find_one_and_update(
            {"_id": job_id, "notify": c.NOTIFY_PENDING}, update,
            return_document=ReturnDocument.AFTER)
        if job is None:
            job = self.jobs.find_one_and_update(
                {"_id": job_id, "notify": c.NOTIFY_SENDING, "notify_until": {"$lt": now}},
                update, return_document=ReturnDocument.AFTER)
        return job

    def notification_sent(self, job_id, worker):
        self.jobs.update_one(
            {"_id": job_id, "notify": c.NOTIFY_SENDING, "notify_owner": worker},
            {"$set": {"notify": c.NOTIFY_SENT, "notified_at": utcnow()}})

    def notification_failed(self, job_id, worker, retry_in, give_up, reason):
        now = utcnow()
        self.jobs.update_one(
            {"_id": job_id, "notify": c.NOTIFY_SENDING, "notify_owner": worker},
            {"$set": {"notify": c.NOTIFY_GAVE_UP if give_up else c.NOTIFY_PENDING,
                      "notify_next": now + datetime.timedelta(seconds=retry_in),
                      "notify_error": reason}})

    def due_notifications(self, limit=20):
        now = utcnow()
        pending = list(self.jobs.find(
            {"notify": c.NOTIFY_PENDING, "notify_next": {"$lt": now}}).limit(limit))
        stuck = list(self.jobs.find(
            {"notify": c.NOTIFY_SENDING, "notify_until": {"$lt": now}}).limit(limit))
        return pending + stuck


def mp3_filename(filename):
    stem = filename.rsplit(".", 1)[0] if "." in filename.lstrip(".") else filename
    return (stem or "audio") + ".mp3"
