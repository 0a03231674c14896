"""The SMTPMailer provider in a real Nameko container against a real SMTP server (the mail sink)."""
import smtplib
import time

import pytest
from bson import ObjectId
from nameko.testing.services import dummy, entrypoint_hook
from nameko.testing.utils import get_extension

from services.common import constants as c
from services.common.jobs import Job
from services.common.settings import ConfigurationError
from services.notification.dependencies import Mailer, SMTPMailer
from services.notification.emails import compose
from tests.configs import config_defaults
from tests.helpers import MailSink, free_port

PUBLIC = "http://mp3.test:8080"


class MailProbe:
    name = "mail_probe"
    mailer = SMTPMailer()

    @dummy
    def send(self, message):
        self.mailer.send(message)
        return True

    @dummy
    def get_mailer(self):
        return self.mailer


def start(container_factory, smtp):
    """A container configured as `nameko run` would be from config/notification.yaml, with the
    SMTP_* settings given in `smtp` (e.g. {"HOST": ...} for SMTP_HOST)."""
    config = config_defaults()
    config.update({"SMTP_" + key: value for key, value in smtp.items()})
    container = container_factory(MailProbe, config)
    container.start()
    return container


def ready_job(**fields):
    values = {"id": "e" * 32, "owner": "alice@example.com", "filename": "Caf\u00e9 clip.mp4",
              "status": c.DONE, "mp3_id": ObjectId(), "error": None}
    values.update(fields)
    return Job(**values)


def test_a_composed_email_arrives_with_both_parts(container_factory, mail_sink):
    container = start(container_factory, mail_sink.config)
    job = ready_job()
    message = compose(job, PUBLIC, "mp3svc <mp3svc@localhost>")
    with entrypoint_hook(container, "send") as send:
        assert send(message) is True

    [received] = mail_sink.wait_for(1, timeout=20)
    assert received["Subject"] == "Your MP3 is ready: Caf\u00e9 clip.mp4"
    assert received["To"] == "alice@example.com"
    assert received["From"] == "mp3svc <mp3svc@localhost>"
    assert received["Message-ID"] == message["Message-ID"]
    text = MailSink.text_of(received)
    fid = str(job.mp3_id)
    assert fid in text and "%s/download?fid=%s" % (PUBLIC, fid) in text
    html = received.get_body(preferencelist=("html",)).get_content()
    assert "%s/download?fid=%s" % (PUBLIC, fid) in html
    assert sorted(part.get_content_type() for part in received.iter_parts()) == \
        ["text/html", "text/plain"]


def test_failed_email_arrives(container_factory, mail_sink):
    container = start(container_factory, mail_sink.config)
    job = ready_job(status=c.FAILED, mp3_id=None, error="The file is not a video we can read.")
    with entrypoint_hook(container, "send") as send:
        send(compose(job, PUBLIC, "mp3svc <mp3svc@localhost>"))
    [received] = mail_sink.wait_for(1, timeout=20)
    assert received["To"] == "alice@example.com"
    assert "The file is not a video we can read." in MailSink.text_of(received)


def test_provider_reads_its_config(container_factory):
    container = start(container_factory, {"HOST": "mail.internal", "PORT": "2525",
                                          "USERNAME": "bot", "PASSWORD": "pw",
                                          "STARTTLS": "true", "TIMEOUT": "4"})
    mailer = get_extension(container, SMTPMailer).mailer
    assert isinstance(mailer, Mailer)
    assert (mailer.host, mailer.port, mailer.username, mailer.password, mailer.starttls,
            mailer.timeout) == ("mail.internal", 2525, "bot", "pw", True, 4.0)
    with entrypoint_hook(container, "get_mailer") as get_mailer:
        assert get_mailer() is mailer


def test_defaults_point_at_the_local_sink(container_factory):
    container = start(container_factory, {})
    mailer = get_extension(container, SMTPMailer).mailer
    assert (mailer.host, mailer.port, mailer.username, mailer.starttls) == \
        ("127.0.0.1", 1025, None, False)


@pytest.mark.parametrize("key, value", [("PORT", "smtp"), ("PORT", 70000), ("STARTTLS", "maybe"),
                                        ("HOST", "")])
def test_a_malformed_setting_stops_the_container_naming_it(container_factory, key, value):
    with pytest.raises(ConfigurationError, match="SMTP_" + key):
        start(container_factory, {key: value})


def test_closed_port_fails_promptly(container_factory):
    container = start(container_factory, {"HOST": "127.0.0.1", "PORT": free_port(),
                                          "TIMEOUT": 3})
    message = compose(ready_job(), PUBLIC, "mp3svc <mp3svc@localhost>")
    started = time.monotonic()
    with entrypoint_hook(container, "send") as send:
        with pytest.raises((OSError, smtplib.SMTPException)):
            send(message)
    assert time.monotonic() - started < 3


def test_server_that_never_answers_times_out(container_factory):
    """A port that accepts connections but never greets: the timeout bounds the wait."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    try:
        container = start(container_factory, {"HOST": "127.0.0.1",
                                              "PORT": listener.getsockname()[1], "TIMEOUT": 1})
        started = time.monotonic()
        with entrypoint_hook(container, "send") as send:
            with pytest.raises((OSError, smtplib.SMTPException)):
                send(compose(ready_job(), PUBLIC, "mp3svc <mp3svc@localhost>"))
        assert 0.5 < time.monotonic() - started < 5
    finally:
        listener.close()
