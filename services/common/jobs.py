"""The job record as every service sees it: one typed view of a `jobs` document.

Documents become `Job`s here and nowhere else, so quirks of the database server are handled once:
nx-27017 (the embedded wire server) returns dates written by `$set` as strings.
"""
import dataclasses
import datetime

from services.common import constants as c
from services.common.utils import isoformat

DATE_FIELDS = ("created_at", "updated_at", "finished_at", "lease_until", "due_at", "announce_due",
               "notify_next", "notify_until")
# finished jobs, as a condition for `$and` (nx-27017 misses `$in` beside a date comparison)
FINISHED = {"$or": [{"status": state} for state in c.FINISHED_STATES]}


def as_datetime(value):
    """A naive UTC datetime from what the server returned (MongoDB: datetime; nx-27017: a string
    like '2026-11-25 10:55:37.291000')."""
    if value is None or isinstance(value, datetime.datetime):
        return value
    parsed = datetime.datetime.fromisoformat(str(value).rstrip("Z").replace("T", " "))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return parsed


@dataclasses.dataclass(frozen=True)
class Job:
    id: str
    owner: str
    filename: str
    status: str
    video_id: object = None      # ObjectId of the upload in GridFS, None once deleted
    mp3_id: object = None        # ObjectId of the MP3 in GridFS when done
    mp3_partial: object = None   # the converter's: the MP3 being stored by the attempt converting
    error: str = None
    attempts: int = 0
    size: int = None             # bytes of the upload
    reserved: int = 0            # bytes announced (Content-Length) while still uploading
    duration: float = None       # seconds of the MP3
    mp3_size: int = None         # bytes of the MP3
    options: dict = dataclasses.field(default_factory=dict)
    progress: float = None
    upload_open: bool = False    # bytes of the upload still to come (a job converted as it arrives)
    upload_length: int = None    # bytes a resumable upload announced
    created_at: datetime.datetime = None
    updated_at: datetime.datetime = None
    finished_at: datetime.datetime = None
    lease_until: datetime.datetime = None
    due_at: datetime.datetime = None
    # the converter's: the id of the job's last outcome, and when it is announced again unless
    # notification has taken it over (None once it has)
    outcome_id: str = None
    announce_due: datetime.datetime = None
    # notification's: the state of the email of outcome `notify_outcome`
    notify_outcome: str = None
    notify: str = None
    notify_attempts: int = 0
    notify_next: datetime.datetime = None
    notify_until: datetime.datetime = None

    @classmethod
    def from_doc(cls, doc):
        if doc is None:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["id"] = doc["_id"]
        for name in DATE_FIELDS:
            if name in values:
                values[name] = as_datetime(values[name])
        values["options"] = dict(doc.get("options") or {})
        return cls(**values)

    @property
    def finished(self):
        return self.status in c.FINISHED_STATES

    @property
    def stored_bytes(self):
        """What the job holds against its owner's USER_QUOTA_BYTES: its video while stored (the
        announced size while uploading) and its MP3."""
        total = 0
        if self.video_id is not None or self.status == c.UPLOADING:
            total += self.size if self.size is not None else (self.reserved or 0)
        if self.mp3_id is not None:
            total += self.mp3_size or 0
        return total

    def expires_at(self, retention_hours):
        """When a finished job and its files are deleted (RETENTION_HOURS after it finished)."""
        if not self.finished or self.finished_at is None:
            return None
        return self.finished_at + datetime.timedelta(hours=retention_hours)

    def event(self, **extra):
        """The identifiers an event about this job carries (never file bytes)."""
        return dict({"job_id": self.id, "owner": self.owner, "filename": self.filename}, **extra)

    def outcome_event(self):
        """(event type, payload) announcing this finished job's outcome to notification."""
        if self.status == c.DONE:
            return c.MP3_READY, self.event(outcome_id=self.outcome_id, mp3_id=str(self.mp3_id))
        return c.CONVERSION_FAILED, self.event(outcome_id=self.outcome_id, error=self.error)


# what `Job.stored_bytes` reads, for sums over many jobs
HELD_FIELDS = {"owner": 1, "filename": 1, "status": 1, "size": 1, "reserved": 1, "video_id": 1,
               "mp3_id": 1, "mp3_size": 1}


def held_bytes(collection, query, exclude=None):
    """Bytes the jobs matching `query` hold (`Job.stored_bytes` summed; uploads in progress count
    what they reserved, which grows as they stream), without job `exclude`. The one sum behind
    USER_QUOTA_BYTES (gateway and converter) and STORAGE_LIMIT_BYTES."""
    return sum(Job.from_doc(doc).stored_bytes
               for doc in collection.find(query, projection=HELD_FIELDS) if doc["_id"] != exclude)


def job_to_json(job, retention_hours):
    """The contract's job fields; `expires_at` once finished (RETENTION_HOURS after)."""
    done = job.status == c.DONE
    return {
        "job_id": job.id,
        "status": job.status,
        "filename": job.filename,
        "mp3_id": str(job.mp3_id) if job.mp3_id else None,
        "error": job.error,
        "created_at": isoformat(job.created_at),
        "updated_at": isoformat(job.updated_at),
        "progress": 1.0 if done else (job.progress or 0.0),
        "options": job.options,
        "duration": job.duration if done else None,
        "size": job.mp3_size if done else None,
        "expires_at": isoformat(job.expires_at(retention_hours)),
    }
