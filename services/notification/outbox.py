"""Exactly one email per job outcome: claim it on the job record, send, record that it was sent."""
import logging
import os
import smtplib
import socket
import uuid

from services.common import constants as c
from services.notification.emails import compose

log = logging.getLogger(__name__)

LEASE = 120
MAX_ATTEMPTS = 20


def retry_delay(attempt):
    return min(600, 5 * 2 ** max(0, attempt - 1))


def public_url(config):
    url = config.get(c.CFG_PUBLIC_URL)
    if not url:
        url = "http://%s" % (config.get("WEB_SERVER_ADDRESS") or "127.0.0.1:8080")
    return str(url).rstrip("/")


class Outbox:
    def __init__(self, storage, mailer, config):
        self.storage = storage
        self.mailer = mailer
        self.config = config
        self.worker = "%s-%d-%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])

    def deliver(self, job_id):
        """True when this call sent the email; False when it was not ours to send (or failed)."""
        job = self.storage.claim_notification(job_id, self.worker, LEASE)
        if job is None or job["status"] not in c.FINISHED_STATES:
            return False
        message = compose(job, public_url(self.config),
                          self.config.get(c.CFG_MAIL_FROM) or "mp3svc <mp3svc@localhost>")
        try:
            self.mailer.send(message)
        except (smtplib.SMTPException, OSError) as exc:
            attempts = job.get("notify_attempts", 1)
            give_up = attempts >= MAX_ATTEMPTS
            log.warning("job %s: email not sent (attempt %d%s): %s", job_id, attempts,
                        ", giving up" if give_up else "", exc)
            self.storage.notification_failed(job_id, self.worker, retry_delay(attempts), give_up,
                                             str(exc))
            return False
        self.storage.notification_sent(job_id, self.worker)
        log.info("job %s: %s email sent to %s", job_id, job["status"], job["owner"])
        return True
