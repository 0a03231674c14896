"""SMTP DependencyProvider: a `Mailer` with one verb, `send(message)`."""
import smtplib
import ssl

from nameko.extensions import DependencyProvider

from services.notification.settings import NotificationSettings


class Mailer:
    def __init__(self, host, port, username=None, password=None, starttls=False, timeout=15):
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def send(self, message):
        """Deliver one email.message.EmailMessage; raises smtplib/OSError errors on failure."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


class SMTPMailer(DependencyProvider):
    def setup(self):
        settings = NotificationSettings.of(self.container)
        self.mailer = Mailer(
            host=settings.SMTP_HOST, port=settings.SMTP_PORT,
            username=settings.SMTP_USERNAME or None, password=settings.SMTP_PASSWORD or None,
            starttls=settings.SMTP_STARTTLS, timeout=settings.SMTP_TIMEOUT)

    def get_dependency(self, worker_ctx):
        return self.mailer
