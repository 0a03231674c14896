"""The notification service's part of the job record: the outcome email of a finished job, claimed
under a lease so that it goes out once, retried with backoff while SMTP fails."""
import datetime

from services.common import constants as c
from services.common.jobs import Job
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

    def claim(self, job_id, worker, seconds):
        """The finished job whose email is now ours to send; None when it was sent, is being sent
        by another worker, or is not owed."""
        return Job.from_doc(self.lease.claim(job_id, worker, seconds))

    def sent(self, job_id, worker):
        self.lease.settle(job_id, worker, {"notify": c.NOTIFY_SENT, "notified_at": utcnow(),
                                           "notify_next": None})

    def failed(self, job_id, worker, retry_in, give_up, reason):
        self.lease.settle(job_id, worker, {
            "notify": c.NOTIFY_GAVE_UP if give_up else c.NOTIFY_PENDING, "notify_error": reason,
            "notify_next": utcnow() + datetime.timedelta(seconds=retry_in)})

    def due(self, limit=50):
        """Finished jobs whose email is owed and overdue: SMTP failed, the event was lost, or the
        sender died mid-send."""
        return [Job.from_doc(doc) for doc in self.lease.due_docs(limit)]

    def take_due(self, job):
        return self.lease.postpone(job.id, c.EMAIL_REDISPATCH_AFTER)


class OutboxStore(MongoStore):
    settings_class = NotificationSettings

    def build(self, db, settings):
        return Outbox(db)
