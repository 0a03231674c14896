"""What the notification service reads from its configuration (defaults: config/notification.yaml)."""
from services.common.settings import Address, Flag, MongoSettings, Number, Rate, Text


class NotificationSettings(MongoSettings):
    NOTIFICATION_METRICS_ADDRESS = Address()
    PUBLIC_URL = Text(optional=True)
    WEB_SERVER_ADDRESS = Text(env="GATEWAY_ADDRESS")
    MAIL_FROM = Text()
    SMTP_HOST = Text()
    SMTP_PORT = Number(int, minimum=1, maximum=65535)
    SMTP_USERNAME = Text(optional=True)
    SMTP_PASSWORD = Text(optional=True)
    SMTP_STARTTLS = Flag()
    SMTP_TIMEOUT = Number(float, minimum=1)
    NOTIFY_LEASE_SECONDS = Number(int, minimum=10)
    NOTIFY_MAX_ATTEMPTS = Number(int, minimum=1)
    RETENTION_HOURS = Number(float, minimum=0)
    # job outcome emails one account may receive (beyond: the API and the page only)
    USER_EMAIL_RATE = Rate()
    # webhooks: posts to private, loopback or link-local addresses (a trusted network only)
    WEBHOOK_ALLOW_PRIVATE = Flag()
    WEBHOOK_TIMEOUT = Number(float, minimum=0.1, maximum=60)
    # seconds before the first retry (doubling, at most an hour apart), and for how long to retry
    WEBHOOK_RETRY_BASE = Number(float, minimum=0.1)
    WEBHOOK_RETRY_HOURS = Number(float, minimum=0)

    @staticmethod
    def public_url(settings):
        """PUBLIC_URL, or the gateway's own address when it is not set."""
        return (settings.PUBLIC_URL or "http://%s" % settings.WEB_SERVER_ADDRESS).rstrip("/")
