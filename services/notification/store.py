"""The notification service's part of the job record: the email of a job's outcome, taken over once
per outcome id (from the outcome event), claimed under a lease so that it goes out once, retried
with backoff while SMTP fails. Notification alone writes these fields; the converter reads
`notify_outcome` (to stop announcing an outcome), the gateway reads `notify` (retention)."""
import datetime

from services.common import constants as c
from services.common.jobs import FINISHED, Job
from services.common.leases import Lease
from services.common.utils import utcnow
from services.notification.settings import NotificationSettings
from services.storage.dependencies import MongoStore


class Outbox:
    def __init__(self, db):
        self.jobs = db[c.JOBS_COLLECTION]
        self.lease = Lease(self.jobs, "notify", c.NOTIFY_PENDING, c.NOTIFY_SENDING,
                           owner="notify_owner", until="notify_until", attempts="notify_attempts",
                           due="notify_next")

    def ensure_indexes(self):
        self.jobs.create_index([("notify", 1), ("notify_next", 1)])

    def adopt(self, job_id, outcome_id):
        """Owe the email of outcome `outcome_id` of the job, once: True the first time, False for
        a duplicate event or when the job has another outcome now (requeued since). The state of
        an earlier outcome's email is replaced: the job's latest outcome is the one to tell."""
        now = utcnow()
        result = self.jobs.update_one(
            {"_id": job_id, "status": {"$in": list(c.FINISHED_STATES)}, "outcome_id": outcome_id,
             "notify_outcome": {"$nin": [outcome_id]}},  # ($ne misses absent fields on nx-27017)
            {"$set": {"notify_outcome": outcome_id, "notify": c.NOTIFY_PENDING,
                      "notify_attempts": 0, "notify_owner": None, "notify_until": None,
                      "notify_error": None, "notified_at": None,
                      "notify_next": now + datetime.timedelta(seconds=c.EMAIL_REDISPATCH_AFTER)}})
        return result.modified_count == 1

    def claim(self, job_id, outcome_id, worker, seconds):
        """The finished job whose email of outcome `outcome_id` is now ours to send; None when it
        was sent, is being sent by another worker, or is not owed. (`outcome_id` None: a record
        and an event from before outcome ids, whose email the converter marked as owed.)"""
        return Job.from_doc(self.lease.claim(job_id, worker, seconds, where=(
            FINISHED, {"outcome_id": outcome_id, "notify_outcome": outcome_id})))

    def sent(self, job_id, worker):
        self.lease.settle(job_id, worker, {"notify": c.NOTIFY_SENT, "notified_at": utcnow(),
                                           "notify_next": None})

    def failed(self, job_id, worker, retry_in, give_up, reason):
        self.lease.settle(job_id, worker, {
            "notify": c.NOTIFY_GAVE_UP if give_up else c.NOTIFY_PENDING, "notify_error": reason,
            "notify_next": utcnow() + datetime.timedelta(seconds=retry_in)})

    def due(self, limit=50):
        """Finished jobs whose email is owed and overdue: SMTP failed, or the sender died
        mid-send. (Outcomes never taken over are the converter's to announce again.)"""
        return [Job.from_doc(doc) for doc in self.lease.due_docs(limit, where=(FINISHED,))]

    def take_due(self, job):
        return self.lease.postpone(job.id, c.EMAIL_REDISPATCH_AFTER)


class OutboxStore(MongoStore):
    settings_class = NotificationSettings

    def build(self, db, settings):
        return Outbox(db)
