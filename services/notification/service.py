"""notification: one email per job outcome, also when an event comes twice or SMTP is down; the
accounts' webhooks (made, listed and deleted over RPC by the gateway) and their signed, retried
deliveries."""
import logging

import eventlet

from nameko.rpc import rpc
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
from services.notification.exceptions import InvalidUrl, InvalidWebhook, UnknownWebhook
from services.notification.hooks import WebhookService
from services.notification.settings import NotificationSettings
from services.notification.store import OutboxStore
from services.notification.webhooks import WebhookStore

log = logging.getLogger(__name__)
# the caller's mistakes, not ours: logged by nameko as warnings
WEBHOOK_ERRORS = (InvalidUrl, InvalidWebhook, UnknownWebhook)


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
    webhook_store = WebhookStore()

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
            self.webhook_store.purge()
        except Exception:
            log.exception("notification sweep failed")

    # --- webhooks: the gateway's routes call these (services/gateway/routes/webhooks.py) ---------
    @rpc(expected_exceptions=WEBHOOK_ERRORS)
    def create_webhook(self, owner, url, events):
        """{"id", "url", "events", "secret", "created_at"}; InvalidUrl, InvalidWebhook."""
        return self._webhooks().create(owner, url, events)

    @rpc
    def list_webhooks(self, owner):
        return self._webhooks().list(owner)

    @rpc(expected_exceptions=WEBHOOK_ERRORS)
    def delete_webhook(self, owner, webhook_id):
        self._webhooks().delete(owner, webhook_id)

    @rpc(expected_exceptions=WEBHOOK_ERRORS)
    def list_deliveries(self, owner, webhook_id):
        return self._webhooks().deliveries(owner, webhook_id)

    @rpc
    def delete_webhooks_of(self, owner):
        """An account being deleted: its webhooks and their deliveries."""
        return self.webhook_store.delete_owner(owner)

    @timer(interval=1)
    def post_webhooks(self):
        """Post the due deliveries: new ones, retries whose time came, ones whose sender died."""
        try:
            self._webhooks().run_due()
        except Exception:
            log.exception("webhook deliveries failed")

    def _webhooks(self):
        return WebhookService(self.webhook_store, self.settings)

    def _deliver(self, payload):
        # Never raises (nameko would drop the message); the job record keeps what is owed.
        try:
            # the webhooks first: should this fail, the email is not taken over either, so the
            # converter's sweeper announces the outcome again (both are owed once per outcome)
            self._webhooks().fan_out(payload["job_id"], payload.get("outcome_id"))
            Delivery(self.outbox, self.mailer, self.settings, self.budget).deliver(
                payload["job_id"], payload.get("outcome_id"))
        except Exception:
            log.exception("event %r: notification left for the sweeper", payload)
