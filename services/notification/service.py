"""notification: one email per job outcome, also when an event comes twice or SMTP is down."""
import logging

from nameko.dependency_providers import Config
from nameko.timer import timer

from services.common import constants as c
from services.common.messaging import event_handler
from services.common.heartbeat import Heartbeat
from services.notification.dependencies import SMTPMailer
from services.notification.outbox import Outbox
from services.storage.dependencies import GridFSStorage

log = logging.getLogger(__name__)


class NotificationService:
    name = c.NOTIFICATION

    config = Config()
    heartbeat = Heartbeat()
    storage = GridFSStorage()
    mailer = SMTPMailer()

    @event_handler(c.CONVERTER, c.MP3_READY)
    def handle_mp3_ready(self, payload):
        self._deliver(payload)

    @event_handler(c.CONVERTER, c.CONVERSION_FAILED)
    def handle_conversion_failed(self, payload):
        self._deliver(payload)

    @timer(interval=10)
    def sweep(self):
        """Send what the events did not: SMTP was down, an event was lost, a sender crashed."""
        try:
            for job in self.storage.due_notifications():
                self._outbox().deliver(job["_id"])
        except Exception:
            log.exception("notification sweep failed")

    def _deliver(self, payload):
        # Never raises (nameko would drop the message); the job record keeps what is owed.
        try:
            self._outbox().deliver(payload["job_id"])
        except Exception:
            log.exception("event %r: notification left for the sweeper", payload)

    def _outbox(self):
        return Outbox(self.storage, self.mailer, self.config)
