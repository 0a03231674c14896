"""The converter's part of the job record: claim a queued job under a lease, finish it once with a
new outcome id, find the jobs that need converting again and the outcomes notification has not
taken over yet. Its videos and MP3s come from the shared `FileStore`."""
import datetime
import uuid

from services.common import constants as c
from services.common.jobs import Job, held_bytes
from services.common.leases import Lease, postpone
from services.common.utils import utcnow
from services.converter import output
from services.converter.exceptions import ConversionAborted
from services.converter.fairness import FairQueue
from services.converter.settings import ConverterSettings
from services.storage.dependencies import MongoStore
from services.storage.files import FileStore


def mp3_filename(filename):
    stem = filename.rsplit(".", 1)[0] if "." in filename.lstrip(".") else filename
    return (stem or "audio") + ".mp3"


END_OF_TIME = datetime.datetime(9999, 1, 1)


def later(seconds):
    return utcnow() + datetime.timedelta(seconds=seconds)


class ConverterJobs:
    def __init__(self, db):
        self.files = FileStore(db)
        self.jobs = db[c.JOBS_COLLECTION]
        self.lease = Lease(self.jobs, "status", c.QUEUED, c.CONVERTING,
                           owner="lease_owner", until="lease_until", attempts="attempts",
                           due="due_at")
        self.queue = FairQueue(db, self.jobs, self.lease)

    def ensure_indexes(self):
        self.jobs.create_index([("status", 1), ("due_at", 1)])
        self.jobs.create_index([("announce_due", 1)])
        self.jobs.create_index([("status", 1), ("created_at", 1)])
        self.files.ensure_indexes()

    # one conversion ----------------------------------------------------------------------------
    def claim(self, job_id, worker, seconds):
        """The job, now ours to convert; None when it is not queued (nor abandoned by a converter).
        Once its lease expires the job is due again at once (see `due`)."""
        return Job.from_doc(self.lease.claim(job_id, worker, seconds, {
            "error": None, "progress": 0.0, "updated_at": utcnow(), "announce_due": None,
            "retry_at": None}))

    def claim_next(self, worker, seconds):
        """The next job to convert, ours now, chosen fairly between users (see fairness.py);
        None when there is nothing to claim."""
        return Job.from_doc(self.queue.claim_next(lambda job_id: self.lease.claim(
            job_id, worker, seconds, {"error": None, "progress": 0.0, "updated_at": utcnow(),
                                      "announce_due": None, "retry_at": None})))

    def renew(self, job_id, worker, seconds):
        return self.lease.renew(job_id, worker, seconds)

    def progress(self, job_id, worker, fraction):
        self.jobs.update_one(self.lease.held(job_id, worker),
                             {"$set": {"progress": round(min(max(fraction, 0.0), 1.0), 3)}})

    def complete(self, job_id, worker, mp3_id, duration, size):
        return self._finish(job_id, worker, {
            "status": c.DONE, "mp3_id": mp3_id, "duration": duration, "mp3_size": size,
            "error": None, "progress": 1.0})

    def fail(self, job_id, worker, error):
        return self._finish(job_id, worker, {"status": c.FAILED, "error": error})

    def _finish(self, job_id, worker, fields):
        """Settle the job with a new outcome (its id goes into the outcome event). The event is
        dispatched next; should it never reach notification, the sweeper announces the outcome
        again from `announce_due` on."""
        now = utcnow()
        fields.update({"updated_at": now, "finished_at": now, "due_at": None, "mp3_partial": None,
                       "outcome_id": uuid.uuid4().hex, "announce_due": later(c.ANNOUNCE_AFTER)})
        return Job.from_doc(self.lease.settle(job_id, worker, fields))

    def release(self, job_id, worker, retry_in, reason):
        """Give a job back after a transient failure; it is due again after `retry_in` seconds."""
        self.lease.settle(job_id, worker, {
            "status": c.QUEUED, "due_at": later(retry_in), "retry_at": later(retry_in),
            "last_error": reason,
            "updated_at": utcnow()})

    def usage_after(self, job, mp3_size):
        """Bytes the job's owner would hold once its MP3 of `mp3_size` bytes replaced its video."""
        return held_bytes(self.jobs, {"owner": job.owner}, exclude=job.id) + mp3_size

    # files -------------------------------------------------------------------------------------
    def open_video(self, job):
        return self.files.open(c.VIDEOS_BUCKET, job.video_id)

    def open_stream(self, job, idle_limit):
        """The job's video while its upload still streams in (a `GrowingFile`): how the upload
        stands is read from the record, and a removed upload (deleted, abandoned, failed) stops the
        conversion (ConversionAborted)."""
        def state():
            doc = self.jobs.find_one({"_id": job.id},
                                     projection={"upload_open": 1, "size": 1, "video_id": 1})
            if doc is None or doc.get("video_id") != job.video_id:
                raise ConversionAborted("the upload of job %s was removed" % job.id)
            return bool(doc.get("upload_open")), doc.get("size")
        return self.files.growing(c.VIDEOS_BUCKET, job.video_id, state, idle_limit,
                                  expected=job.upload_length or job.reserved or None)

    def options_of(self, job_id):
        """The job's options as stored now (a POST /upload may name some after its file)."""
        return dict((self.jobs.find_one({"_id": job_id}, projection={"options": 1}) or {})
                    .get("options") or {})

    def drop_video(self, job):
        """The job's video is no longer needed: converted, or failed because of the upload."""
        self.files.delete(c.VIDEOS_BUCKET, job.video_id)
        self.jobs.update_one({"_id": job.id}, {"$set": {"video_id": None}})

    def mp3_output(self, job, worker, path, should_stop):
        """A `StoredMp3`: the job's MP3 stored as ffmpeg writes its audio to `path`. Each file it
        begins is named on the record (`mp3_partial`) while worker holds the job, so should the
        converter die before it is done, the next attempt deletes it (`drop_partial`)."""
        def place():
            placed = self.files.place(c.MP3S_BUCKET, mp3_filename(job.filename),
                                      {"owner": job.owner, "job_id": job.id, "source": job.filename},
                                      output.CHUNK_SIZE)
            self.jobs.update_one(self.lease.held(job.id, worker),
                                 {"$set": {"mp3_partial": placed.file_id}})
            return placed
        return output.StoredMp3(place, path, should_stop)

    def drop_partial(self, job):
        """What an earlier attempt left of its MP3 (its converter died while storing it) goes."""
        if job.mp3_partial is not None:
            self.files.delete(c.MP3S_BUCKET, job.mp3_partial)

    # due work ----------------------------------------------------------------------------------
    def due(self, limit=50):
        """Jobs no converter is working on although they should be: queued jobs whose event has not
        led to a conversion (or whose retry time came), and jobs whose converter stopped renewing
        its lease."""
        return [Job.from_doc(doc) for doc in self.lease.due_docs(limit)]

    def take_due(self, job):
        """Mark a due job as handed out again; False when another sweeper did it first."""
        return self.lease.postpone(job.id, c.REDISPATCH_AFTER)

    # outcomes to announce -----------------------------------------------------------------------
    def unannounced(self, limit=50):
        """Jobs whose outcome notification had not taken over (`notify_outcome`) when it was last
        checked, the one due the longest first: those due now may have lost their event, the others
        were just finished. (Any date before the end of time: nx-27017 takes None for `$ne: None`
        and for `$gt` a date.)"""
        docs = self.jobs.find({"announce_due": {"$lt": END_OF_TIME}}).sort("announce_due", 1)
        return [Job.from_doc(doc) for doc in docs.limit(limit)]

    def announced(self, job):
        """Notification has taken over the job's outcome (or the job has none any more, requeued):
        nothing left to announce."""
        self.jobs.update_one({"_id": job.id, "outcome_id": job.outcome_id},
                             {"$set": {"announce_due": None}})

    def take_unannounced(self, job):
        """Mark an outcome as announced again; False when it is not due (or another sweeper did
        it first)."""
        return postpone(self.jobs, job.id, "announce_due", c.ANNOUNCE_AFTER)


class ConverterStore(MongoStore):
    settings_class = ConverterSettings

    def build(self, db, settings):
        return ConverterJobs(db)
