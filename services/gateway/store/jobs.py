"""The gateway's reads and removals of job records: users read and delete their own jobs, finished
jobs expire, operators requeue failed jobs, delete users and read a summary. Returns `Job`s."""
import collections
import datetime

from pymongo import ReturnDocument

from services.common import constants as c
from services.common.jobs import Job
from services.common.utils import utcnow


def redispatch_time(now):
    """When the converter's sweeper dispatches a queued job's event again (services/converter)."""
    return now + datetime.timedelta(seconds=c.REDISPATCH_AFTER)


class JobStore:
    def __init__(self, db, files, slots):
        self.jobs = db[c.JOBS_COLLECTION]
        self.files = files
        self.slots = slots

    def ensure_indexes(self):
        self.jobs.create_index([("owner", 1), ("created_at", -1)])
        self.jobs.create_index([("status", 1), ("updated_at", 1)])
        self.jobs.create_index([("finished_at", 1)])

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
        return self.remove({"_id": job_id, "owner": owner, "status": {"$ne": c.UPLOADING}})

    def remove(self, query):
        """Delete the job matching `query` with its files, and give back its active-job slot;
        False when there is none."""
        doc = self.jobs.find_one_and_delete(query)
        if doc is None:
            return False
        self._remove_files(doc)
        self.slots.free(doc["owner"], doc["_id"])
        return True

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
            for file_id in self.files.ids_of(bucket, owner):
                self.files.delete(bucket, file_id)
                files += 1
        self.slots.forget(owner)
        return {"jobs": jobs, "files": files}

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
            count, size = self.files.totals(bucket)
            files[bucket] = {"files": count, "bytes": size}
        return {"jobs": dict(by_status), "files": files,
                "bytes_stored": sum(f["bytes"] for f in files.values()),
                "users_with_jobs": len(owners)}
