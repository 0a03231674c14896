"""Exactly one email per job outcome: take the outcome over, claim its email on the job record, send,
record that it was sent."""
import logging
import smtplib

from services.common.leases import backoff, worker_id
from services.notification import metrics
from services.notification.emails import compose
from services.notification.settings import NotificationSettings

log = logging.getLogger(__name__)


def retry_delay(attempt):
    return backoff(attempt, base=5, cap=600)


class Delivery:
    def __init__(self, outbox, mailer, settings, budget=None):
        self.outbox = outbox
        self.budget = budget
        self.mailer = mailer
        self.settings = settings
        self.worker = worker_id()

    def deliver(self, job_id, outcome_id=None):
        """True when this call sent the email of the job's outcome `outcome_id` (from the event);
        False when it was not ours to send (or failed)."""
        if outcome_id is not None:
            self.outbox.adopt(job_id, outcome_id)  # a duplicate event adopts nothing
        job = self.outbox.claim(job_id, outcome_id, self.worker, self.settings.NOTIFY_LEASE_SECONDS)
        if job is None or not job.finished:
            return False
        if self.over_budget(job):
            return False
        message = compose(job, NotificationSettings.public_url(self.settings),
                          self.settings.MAIL_FROM, self.settings.RETENTION_HOURS)
        try:
            self.mailer.send(message)
        except (smtplib.SMTPException, OSError) as exc:
            attempts = job.notify_attempts
            give_up = attempts >= self.settings.NOTIFY_MAX_ATTEMPTS
            log.warning("job %s: email not sent (attempt %d%s): %s", job_id, attempts,
                        ", giving up" if give_up else "", exc)
            self.outbox.failed(job_id, self.worker, retry_delay(attempts), give_up, str(exc))
            metrics.EMAILS.labels(metrics.GAVE_UP if give_up else metrics.FAILED).inc()
            return False
        self.outbox.sent(job_id, self.worker)
        metrics.EMAILS.labels(metrics.SENT).inc()
        log.info("job %s: %s email sent to %s", job_id, job.status, job.owner)
        return True

    def over_budget(self, job):
        """Past USER_EMAIL_RATE: the outcome is settled without an email (the API and the page
        still show it)."""
        if self.budget is None or self.budget.allow(job.owner):
            return False
        log.info("job %s: no email, %s is past USER_EMAIL_RATE", job.id, job.owner)
        self.outbox.sent(job.id, self.worker)
        return True
