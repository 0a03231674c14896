"""The gateway's part of the job record: uploads become queued jobs; users read their own jobs;
operators requeue failed ones. The GridFS files come from the shared `FileStore`."""
import datetime
import uuid

from bson import Binary, ObjectId
from pymongo import ReturnDocument

from services.common import constants as c
from services.common.jobs import Job
from services.common.utils import utcnow
from services.storage.dependencies import MongoStore
from services.storage.files import FileStore


def redispatch_time(now):
    return now + datetime.timedelta(seconds=c.REDISPATCH_AFTER)


class GatewayJobs:
    def __init__(self, db):
        self.db = db
        self.files = FileStore(db)
        self.jobs = db[c.JOBS_COLLECTION]

    def ensure_indexes(self):
        self.jobs.create_index([("owner", 1), ("created_at", -1)])
        self.jobs.create_index([("status", 1), ("updated_at", 1)])
        self.files.ensure_indexes()

    def ping(self):
        self.db.command("ping")

    # uploads -----------------------------------------------------------------------------------
    def begin_upload(self, owner, filename):
        """The job record (hidden while uploading) and the GridFS stream for its video."""
        now = utcnow()
        job_id = uuid.uuid4().hex
        upload = self.files.create(
            c.VIDEOS_BUCKET, filename, {"owner": owner, "job_id": job_id},
            touch=lambda: self.jobs.update_one({"_id": job_id, "status": c.UPLOADING},
                                               {"$set": {"updated_at": utcnow()}}))
        self.jobs.insert_one({
            "_id": job_id, "owner": owner, "filename": filename, "status": c.UPLOADING,
            "video_id": upload.file_id, "mp3_id": None, "error": None, "attempts": 0,
            "notify": None, "notify_attempts": 0, "created_at": now, "updated_at": now})
        return job_id, upload

    def queue(self, job_id, size):
        """The uploaded job made visible and queued; None when it was swept as abandoned."""
        now = utcnow()
        return Job.from_doc(self.jobs.find_one_and_update(
            {"_id": job_id, "status": c.UPLOADING},
            {"$set": {"status": c.QUEUED, "size": size, "updated_at": now,
                      "due_at": redispatch_time(now)}},
            return_document=ReturnDocument.AFTER))

    def discard(self, job_id):
        """Forget a job that never got queued, with its video."""
        doc = self.jobs.find_one_and_delete({"_id": job_id})
        if doc is not None:
            self.files.delete(c.VIDEOS_BUCKET, doc.get("video_id"))

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
    def create_upload(self, owner, filename, length, options):
        """The job record of a new resumable upload (hidden until complete); its id."""
        now = utcnow()
        job_id = uuid.uuid4().hex
        self.jobs.insert_one({
            "_id": job_id, "owner": owner, "filename": filename, "status": c.UPLOADING,
            "video_id": ObjectId(), "mp3_id": None, "error": None, "attempts": 0,
            "notify": None, "notify_attempts": 0, "options": options, "created_at": now,
            "updated_at": now, "upload_length": length, "upload_offset": 0,
            "upload_tail": Binary(b""), "upload_writer": None})
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
        now = utcnow()
        return Job.from_doc(self.jobs.find_one_and_update(
            {"_id": upload["_id"], "status": c.UPLOADING, "upload_writer": claim},
            {"$set": {"status": c.QUEUED, "size": size, "updated_at": now, "due_at": redispatch_time(now),
                      "upload_offset": size, "upload_tail": Binary(b"")}},
            return_document=ReturnDocument.AFTER))

    def terminate_upload(self, job_id):
        """Remove an upload still in progress with every chunk stored; False when it is not."""
        doc = self.jobs.find_one_and_delete({"_id": job_id, "status": c.UPLOADING})
        if doc is None:
            return False
        self.drop_video(doc.get("video_id"))
        return True

    def drop_video(self, video_id):
        self.files.delete(c.VIDEOS_BUCKET, video_id)

    # reading -----------------------------------------------------------------------------------
    def get(self, job_id):
        """A job users may see (not one still uploading), or None."""
        return Job.from_doc(self.jobs.find_one({"_id": job_id, "status": {"$ne": c.UPLOADING}}))

    def for_owner(self, owner, limit=100):
        cursor = self.jobs.find({"owner": owner, "status": {"$ne": c.UPLOADING}})
        return [Job.from_doc(doc) for doc in cursor.sort("created_at", -1).limit(limit)]

    def open_mp3(self, file_id):
        return self.files.open(c.MP3S_BUCKET, file_id)

    # operators ---------------------------------------------------------------------------------
    def requeue(self, job_id):
        """A failed job whose video is still stored, put back in the queue; None otherwise."""
        now = utcnow()
        return Job.from_doc(self.jobs.find_one_and_update(
            {"_id": job_id, "status": c.FAILED, "video_id": {"$ne": None}},
            {"$set": {"status": c.QUEUED, "error": None, "attempts": 0, "notify": None,
                      "updated_at": now, "due_at": redispatch_time(now)}},
            return_document=ReturnDocument.AFTER))


class GatewayStore(MongoStore):
    def build(self, db, settings):
        return GatewayJobs(db)
