"""notification: one email per job outcome, also when an event comes twice or SMTP is down."""
import logging

import eventlet

from nameko.timer import timer

from services.common import constants as c
from services.common.heartbeat import Heartbeat
from services.common.logs import LogContext
from services.common.messaging import Redispatcher, event_handler
from services.common.metrics import MetricsServer
from services.notification import accountmail
from services.notification.budget import EmailBudgets
from services.notification.delivery import Delivery
from services.notification.dependencies import SMTPMailer
from services.notification.settings import NotificationSettings
from services.notification.store import OutboxStore

log = logging.getLogger(__name__)


class NotificationService:
    name = c.NOTIFICATION

    settings = NotificationSettings()
    heartbeat = Heartbeat()
    metrics_server = MetricsServer(NotificationSettings)
    log_context = LogContext()
    outbox = OutboxStore()
    mailer = SMTPMailer()
    redispatch = Redispatcher()
    budget = EmailBudgets()

    @event_handler(c.CONVERTER, c.MP3_READY)
    def handle_mp3_ready(self, payload):
        self._deliver(payload)

    @event_handler(c.CONVERTER, c.CONVERSION_FAILED)
    def handle_conversion_failed(self, payload):
        self._deliver(payload)

    @event_handler(c.AUTH, c.ACCOUNT_EMAIL)
    def handle_account_email(self, payload):
        """Verification, notice and reset emails (never raises: see accountmail.send)."""
        try:
            accountmail.send(self.mailer, payload, NotificationSettings.public_url(self.settings),
                             self.settings.MAIL_FROM, eventlet.sleep)
        except Exception:
            log.exception("account email failed")

    @timer(interval=10)
    def sweep(self):
        """Hand owed emails back to the normal path: SMTP was down, a sender crashed. Sends
        nothing itself. (An outcome whose event never arrived is announced again by the
        converter's sweeper.)"""
        try:
            for job in self.outbox.due():
                if self.outbox.take_due(job):
                    self.redispatch(c.CONVERTER, *job.outcome_event())
        except Exception:
            log.exception("notification sweep failed")

    def _deliver(self, payload):
        # Never raises (nameko would drop the message); the job record keeps what is owed.
        try:
            Delivery(self.outbox, self.mailer, self.settings, self.budget).deliver(
                payload["job_id"], payload.get("outcome_id"))
        except Exception:
            log.exception("event %r: notification left for the sweeper", payload)
