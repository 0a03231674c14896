"""Outcome emails: what they say, that they cannot be abused, and exactly-once delivery logic."""
import email
import email.policy
import smtplib
from unittest import mock

import pytest
from bson import ObjectId
from nameko.testing.services import worker_factory
from pymongo.errors import AutoReconnect

from services.common import constants as c
from services.common.jobs import Job
from services.notification.delivery import Delivery, retry_delay
from services.notification.emails import compose
from services.notification.service import NotificationService
from services.notification.settings import NotificationSettings
from tests.configs import config_defaults

PUBLIC = "https://mp3.example.org"
SENDER = "mp3svc <noreply@example.org>"
JOB_ID = "d" * 32


def done_job(**fields):
    doc = {"_id": JOB_ID, "owner": "alice@example.com", "filename": "holiday clip.mp4",
           "status": c.DONE, "mp3_id": ObjectId(), "error": None, "notify_attempts": 1}
    doc.update(fields)
    return Job.from_doc(doc)


def failed_job(**fields):
    return done_job(**dict({
        "status": c.FAILED, "mp3_id": None,
        "error": "The video has no audio track, so there is nothing to put in an MP3."}, **fields))


def settings(**values):
    config = dict(config_defaults(), PUBLIC_URL=PUBLIC, MAIL_FROM=SENDER)
    config.update(values)
    return NotificationSettings.load(config)


MAX_ATTEMPTS = settings().NOTIFY_MAX_ATTEMPTS


def parsed(message):
    """What a receiving mail system sees: the serialised bytes parsed again."""
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def text_of(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message):
    return message.get_body(preferencelist=("html",)).get_content()


# --- compose ----------------------------------------------------------------------------------
def test_ready_email_has_fid_and_download_url():
    job = done_job()
    fid = str(job.mp3_id)
    message = parsed(compose(job, PUBLIC, SENDER))
    assert message["To"] == "alice@example.com"
    assert message["From"] == SENDER
    assert "holiday clip.mp4" in message["Subject"]
    text = text_of(message)
    assert fid in text
    assert "%s/download?fid=%s" % (PUBLIC, fid) in text
    assert "holiday clip.mp4" in text
    html = html_of(message)
    assert fid in html and "%s/download?fid=%s" % (PUBLIC, fid) in html
    assert message.get_content_type() == "multipart/alternative"


def test_failed_email_says_which_upload_and_why():
    job = failed_job()
    message = parsed(compose(job, PUBLIC, SENDER))
    assert message["To"] == "alice@example.com"
    assert "holiday clip.mp4" in message["Subject"]
    text = text_of(message)
    assert "holiday clip.mp4" in text
    assert job.error in text
    assert "/download" not in text
    assert job.error in html_of(message)


def test_failed_email_without_a_reason_still_says_something():
    text = text_of(parsed(compose(failed_job(error=None), PUBLIC, SENDER)))
    assert "The conversion failed." in text


def test_message_id_names_the_job_and_outcome():
    ready = compose(done_job(), PUBLIC, SENDER)
    failed = compose(failed_job(), PUBLIC, SENDER)
    assert ready["X-MP3SVC-Job"] == JOB_ID
    assert ready["Message-ID"].startswith("<%s.ready." % JOB_ID)
    assert failed["Message-ID"].startswith("<%s.failed." % JOB_ID)
    assert ready["Message-ID"].endswith("@mp3svc>")


def test_message_id_is_the_same_for_a_resend_of_the_same_outcome():
    assert compose(done_job(), PUBLIC, SENDER)["Message-ID"] == \
        compose(done_job(), PUBLIC, SENDER)["Message-ID"]


@pytest.mark.parametrize("make", [done_job, failed_job])
def test_html_part_escapes_the_filename(make):
    job = make(filename="<script>alert(1)</script>.mp4",
               error="<img src=x onerror=alert(1)>" if make is failed_job else None)
    message = parsed(compose(job, PUBLIC, SENDER))
    html = html_of(message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html
    # the plain text part shows the name as it is
    assert "<script>alert(1)</script>.mp4" in text_of(message)


@pytest.mark.parametrize("make", [done_job, failed_job])
@pytest.mark.parametrize("filename", [
    "clip.mp4\r\nBcc: victim@example.net",
    "clip.mp4\nBcc: victim@example.net",
    "clip.mp4\rBcc: victim@example.net",
    "clip.mp4\r\n\r\n<html>fake body</html>",
])
def test_crlf_in_filename_cannot_inject_headers(make, filename):
    raw = compose(make(filename=filename), PUBLIC, SENDER).as_bytes()
    header_block = raw.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Bcc"] is None
    assert b"\nBcc:" not in header_block and not header_block.startswith(b"Bcc:")
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
    assert message["To"] == "alice@example.com"
    assert sorted(part.get_content_type() for part in message.iter_parts()) == \
        ["text/html", "text/plain"]


def test_non_ascii_filename_survives_the_subject():
    message = parsed(compose(done_job(filename="Caf\u00e9 \u65e5\u672c.mp4"), PUBLIC, SENDER))
    assert "Caf\u00e9 \u65e5\u672c.mp4" in str(message["Subject"])
    assert "Caf\u00e9 \u65e5\u672c.mp4" in text_of(message)


def test_public_url_from_config():
    public_url = NotificationSettings.public_url
    assert public_url(settings(PUBLIC_URL="https://x.example/")) == "https://x.example"
    assert public_url(settings(PUBLIC_URL="", WEB_SERVER_ADDRESS="0.0.0.0:9000")) \
        == "http://0.0.0.0:9000"
    assert public_url(settings(PUBLIC_URL="")) == "http://127.0.0.1:8080"


# --- Delivery ---------------------------------------------------------------------------------
def make_outbox(job):
    storage = mock.Mock(name="outbox")
    storage.claim.return_value = job
    mailer = mock.Mock(name="mailer")
    box = Delivery(storage, mailer, settings())
    return box, storage, mailer


def test_deliver_not_claimed_sends_nothing():
    box, storage, mailer = make_outbox(None)
    assert box.deliver(JOB_ID) is False
    storage.claim.assert_called_once_with(JOB_ID, None, box.worker, settings().NOTIFY_LEASE_SECONDS)
    storage.adopt.assert_not_called()  # an event from before outcome ids
    mailer.send.assert_not_called()
    storage.sent.assert_not_called()
    storage.failed.assert_not_called()


@pytest.mark.parametrize("first", [True, False])
def test_deliver_takes_the_outcome_over_then_claims_its_email(first):
    """A duplicate event adopts nothing (False) but still tries the claim: the first delivery may
    have died after adopting, and the claim alone says whether the email is ours to send."""
    box, storage, mailer = make_outbox(done_job(outcome_id="o-1", notify_outcome="o-1"))
    storage.adopt.return_value = first
    calls = mock.Mock()
    calls.attach_mock(storage.adopt, "adopt")
    calls.attach_mock(storage.claim, "claim")
    assert box.deliver(JOB_ID, "o-1") is True
    assert calls.mock_calls == [
        mock.call.adopt(JOB_ID, "o-1"),
        mock.call.claim(JOB_ID, "o-1", box.worker, settings().NOTIFY_LEASE_SECONDS)]
    storage.sent.assert_called_once_with(JOB_ID, box.worker)


def test_deliver_unfinished_job_sends_nothing():
    box, storage, mailer = make_outbox(done_job(status=c.CONVERTING))
    assert box.deliver(JOB_ID) is False
    mailer.send.assert_not_called()


@pytest.mark.parametrize("make", [done_job, failed_job])
def test_deliver_sends_and_records_it(make):
    job = make()
    box, storage, mailer = make_outbox(job)
    assert box.deliver(JOB_ID) is True
    [message] = mailer.send.call_args.args
    assert message["To"] == job.owner
    assert message["From"] == SENDER
    storage.sent.assert_called_once_with(JOB_ID, box.worker)
    storage.failed.assert_not_called()
    if make is done_job:
        assert "%s/download?fid=%s" % (PUBLIC, job.mp3_id) in text_of(message)


@pytest.mark.parametrize("error", [
    smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
    smtplib.SMTPRecipientsRefused({"alice@example.com": (550, b"no such user")}),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError("timed out"),
])
def test_deliver_smtp_error_is_recorded_for_a_retry(error):
    box, storage, mailer = make_outbox(done_job(notify_attempts=2))
    mailer.send.side_effect = error
    assert box.deliver(JOB_ID) is False
    storage.sent.assert_not_called()
    storage.failed.assert_called_once_with(JOB_ID, box.worker, retry_delay(2), False, str(error))


@pytest.mark.parametrize("attempts, give_up", [
    (MAX_ATTEMPTS - 1, False), (MAX_ATTEMPTS, True), (MAX_ATTEMPTS + 3, True)])
def test_deliver_gives_up_after_max_attempts(attempts, give_up):
    box, storage, mailer = make_outbox(done_job(notify_attempts=attempts))
    mailer.send.side_effect = smtplib.SMTPDataError(451, b"try later")
    assert box.deliver(JOB_ID) is False
    args = storage.failed.call_args.args
    assert args[3] is give_up


def test_retry_delay_grows_and_is_capped():
    assert [retry_delay(n) for n in (1, 2, 3)] == [5, 10, 20]
    assert retry_delay(100) == 600


# --- NotificationService ----------------------------------------------------------------------
def make_service(job):
    storage = mock.Mock(name="outbox")
    storage.claim.return_value = job
    mailer = mock.Mock(name="mailer")
    service = worker_factory(NotificationService, outbox=storage, mailer=mailer,
                             settings=settings())
    return service, storage, mailer


@pytest.mark.parametrize("handler", ["handle_mp3_ready", "handle_conversion_failed"])
def test_handlers_deliver(handler):
    job = done_job() if handler == "handle_mp3_ready" else failed_job()
    service, storage, mailer = make_service(job)
    assert getattr(service, handler)({"job_id": JOB_ID, "owner": job.owner, "outcome_id": "o-2"}) \
        is None
    storage.adopt.assert_called_once_with(JOB_ID, "o-2")
    assert storage.claim.call_args.args[:2] == (JOB_ID, "o-2")
    mailer.send.assert_called_once()
    storage.sent.assert_called_once()


@pytest.mark.parametrize("handler", ["handle_mp3_ready", "handle_conversion_failed"])
@pytest.mark.parametrize("where", ["claim", "compose", "send", "record"])
def test_handlers_never_raise(handler, where):
    job = done_job()
    service, storage, mailer = make_service(job)
    payload = {"job_id": JOB_ID}
    if where == "claim":
        storage.claim.side_effect = AutoReconnect("mongo away")
    elif where == "compose":
        storage.claim.return_value = mock.Mock(status=c.DONE, finished=True)  # nothing else
    elif where == "send":
        mailer.send.side_effect = RuntimeError("unexpected")
    else:
        storage.sent.side_effect = AutoReconnect("mongo away")
    assert getattr(service, handler)(payload) is None
    if where == "record":
        mailer.send.assert_called_once()


@pytest.mark.parametrize("handler", ["handle_mp3_ready", "handle_conversion_failed"])
def test_handlers_never_raise_on_a_malformed_payload(handler):
    service, storage, mailer = make_service(done_job())
    assert getattr(service, handler)({"unexpected": "shape"}) is None


@pytest.mark.parametrize("job, event, extra", [
    (done_job(outcome_id="o-3"), c.MP3_READY, "mp3_id"),
    (failed_job(outcome_id="o-3"), c.CONVERSION_FAILED, "error")])
def test_sweep_hands_due_emails_back_to_the_handlers_and_sends_nothing(job, event, extra):
    """The sweeper only finds due work: the email goes out through the event handler."""
    service, storage, mailer = make_service(job)
    storage.due.return_value = [job]
    storage.take_due.return_value = True
    service.sweep()
    mailer.send.assert_not_called()
    storage.claim.assert_not_called()
    [(source, event_type, payload)] = [call.args for call in service.redispatch.call_args_list]
    assert (source, event_type) == (c.CONVERTER, event)
    assert payload["job_id"] == JOB_ID and extra in payload and payload["outcome_id"] == "o-3"


def test_sweep_skips_what_another_sweeper_took_and_never_raises():
    service, storage, mailer = make_service(done_job())
    storage.due.return_value = [done_job()]
    storage.take_due.return_value = False
    service.sweep()
    service.redispatch.assert_not_called()
    storage.due.side_effect = AutoReconnect("down")
    assert service.sweep() is None
