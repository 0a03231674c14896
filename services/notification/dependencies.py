"""SMTP DependencyProvider: a `Mailer` with one verb, `send(message)`."""
import smtplib
import ssl

from nameko.extensions import DependencyProvider

from services.common.utils import as_bool


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
        conf = self.container.config.get("SMTP") or {}
        self.mailer = Mailer(
            host=conf.get("HOST") or "127.0.0.1",
            port=int(conf.get("PORT") or 1025),
            username=conf.get("USERNAME") or None,
            password=conf.get("PASSWORD") or None,
            starttls=as_bool(conf.get("STARTTLS") or False),
            timeout=float(conf.get("TIMEOUT") or 15))

    def get_dependency(self, worker_ctx):
        return self.mailer
