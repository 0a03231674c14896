"""The webhooks' use cases on a stubbed store, resolver and POST: what a delivery sends, how its
attempts are settled and retried, which outcomes are owed, and the RPC methods' checks."""
import datetime
import json
from unittest import mock

import pytest

from services.common import constants as c
from services.common.jobs import Job
from services.common.utils import utcnow
from services.notification import hooks, metrics, poster, signing
from services.notification.exceptions import InvalidUrl, InvalidWebhook, UnknownWebhook
from services.notification.settings import NotificationSettings
from tests.configs import config_defaults

HOOK = {"_id": "b" * 32, "owner": "alice@example.com", "url": "https://hooks.example.org/in",
        "events": [c.JOB_FINISHED], "secret": "whsec_" + "c" * 64}
JOB_ID, OUTCOME = "a" * 32, "outcome-1"


def settings(**values):
    return NotificationSettings.load(dict(config_defaults(), **values))


def public(host, port, type=0):
    return [(2, 1, 6, "", ("93.184.215.14", port))]


def delivery(**fields):
    doc = {"_id": "d" * 32, "webhook_id": HOOK["_id"], "owner": HOOK["owner"], "job_id": JOB_ID,
           "outcome_id": OUTCOME, "event": c.JOB_FINISHED, "body": '{"event": "job.finished"}',
           "created_at": utcnow(), "state": c.DELIVERY_SENDING, "attempts": 1, "log": []}
    doc.update(fields)
    return doc


def service(post, doc=None, resolver=public, **config):
    store = mock.MagicMock()
    store.claim.return_value = doc or delivery()
    store.get.return_value = HOOK
    return hooks.WebhookService(store, settings(**config), resolver=resolver, post=post), store


def counted(result):
    return metrics.WEBHOOK_DELIVERIES.labels(result)._value.get()


def test_a_delivery_is_signed_and_names_its_event_and_id():
    sent = []

    def post(target, addresses, body, headers, timeout):
        sent.append((target, addresses, body, headers, timeout))
        return 204
    before = counted(metrics.DELIVERED)
    webhooks, store = service(post)
    assert webhooks.attempt("d" * 32) == metrics.DELIVERED
    [(target, addresses, body, headers, timeout)] = sent
    assert (target.host, target.path, [str(a) for a in addresses]) == (
        "hooks.example.org", "/in", ["93.184.215.14"])
    assert body == b'{"event": "job.finished"}' and timeout == 10
    assert headers["Mp3svc-Event"] == c.JOB_FINISHED and headers["Mp3svc-Delivery"] == "d" * 32
    assert signing.verify(HOOK["secret"], body, headers["Mp3svc-Signature"])
    (doc, worker, entry), _ = store.delivered.call_args
    assert entry["status"] == 204 and entry["result"] == metrics.DELIVERED and entry["error"] is None
    assert counted(metrics.DELIVERED) == before + 1


@pytest.mark.parametrize("outcome, result, error", [
    (500, metrics.FAILED, "HTTP 500"),
    (302, metrics.FAILED, "HTTP 302 (redirects are not followed)"),
    (poster.Timeout("no answer within 10 s"), metrics.TIMEOUT, "no answer within 10 s"),
    (ConnectionRefusedError(111, "Connection refused"), metrics.FAILED, "Connection refused"),
])
def test_a_failed_attempt_is_retried_with_backoff(outcome, result, error):
    def post(*args):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    webhooks, store = service(post, delivery(attempts=3), WEBHOOK_RETRY_BASE=30)
    assert webhooks.attempt("d" * 32) == result
    (doc, worker, entry, retry_in), _ = store.failed.call_args
    assert retry_in == 120 and entry["result"] == result and error in entry["error"]


def test_an_address_that_turned_private_fails_the_attempt_without_a_connection():
    post = mock.Mock()
    webhooks, store = service(post, resolver=lambda host, port, type=0: [(2, 1, 6, "", ("10.0.0.7", port))])
    assert webhooks.attempt("d" * 32) == metrics.FAILED
    assert not post.called
    (doc, worker, entry, retry_in), _ = store.failed.call_args
    assert "10.0.0.7" in entry["error"] and retry_in is not None
    webhooks, store = service(post := mock.Mock(return_value=200), WEBHOOK_ALLOW_PRIVATE="true",
                              resolver=lambda host, port, type=0: [(2, 1, 6, "", ("10.0.0.7", port))])
    assert webhooks.attempt("d" * 32) == metrics.DELIVERED and post.called


def test_given_up_after_retry_hours():
    old = utcnow() - datetime.timedelta(hours=24, seconds=1)
    before = counted(metrics.GAVE_UP)
    webhooks, store = service(lambda *args: 503, delivery(created_at=old, attempts=30))
    assert webhooks.attempt("d" * 32) == metrics.FAILED
    (doc, worker, entry, retry_in), _ = store.failed.call_args
    assert retry_in is None and counted(metrics.GAVE_UP) == before + 1


def test_the_default_schedule_spans_a_day():
    elapsed, attempts = 0, 1
    while elapsed < 24 * 3600:
        elapsed += hooks.retry_delay(attempts, settings().WEBHOOK_RETRY_BASE)
        attempts += 1
    assert settings().WEBHOOK_RETRY_HOURS == 24 and 20 < attempts < 40
    assert hooks.retry_delay(1, 30) == 30 and hooks.retry_delay(50, 30) == 3600


def test_nothing_is_posted_unless_claimed_and_a_deleted_webhook_drops_it():
    post = mock.Mock()
    webhooks, store = service(post)
    store.claim.return_value = None
    assert webhooks.attempt("d" * 32) is None
    store.claim.return_value, store.get.return_value = delivery(), None
    assert webhooks.attempt("d" * 32) is None
    store.drop.assert_called_once() and not post.called


def job(**fields):
    doc = {"_id": JOB_ID, "owner": HOOK["owner"], "filename": "a.mp4", "status": c.DONE,
           "outcome_id": OUTCOME, "mp3_id": None, "created_at": utcnow()}
    doc.update(fields)
    return Job.from_doc(doc)


def test_fan_out_owes_the_outcome_to_the_matching_webhooks():
    webhooks, store = service(mock.Mock())
    store.job.return_value = job()
    store.matching.return_value = [HOOK, dict(HOOK, _id="e" * 32)]
    store.add_delivery.side_effect = [True, False, True, True]  # the second was owed already
    assert webhooks.fan_out(JOB_ID, OUTCOME) == 1
    store.matching.assert_called_once_with(HOOK["owner"], c.JOB_FINISHED)
    hook, outcome, job_id, event, body = store.add_delivery.call_args_list[0].args
    payload = json.loads(body)
    assert (outcome, job_id, event) == (OUTCOME, JOB_ID, c.JOB_FINISHED)
    assert set(payload) == {"event", "created_at", "job"} and payload["event"] == c.JOB_FINISHED
    assert payload["job"]["job_id"] == JOB_ID and payload["job"]["status"] == c.DONE
    store.job.return_value = job(status=c.FAILED, error="The file is not media.")
    webhooks.fan_out(JOB_ID, OUTCOME)
    store.matching.assert_called_with(HOOK["owner"], c.JOB_FAILED)


@pytest.mark.parametrize("record, outcome", [
    (None, OUTCOME), ("other outcome", OUTCOME), ("queued", OUTCOME), ("same", None)])
def test_fan_out_owes_nothing_for_a_stale_or_unknown_outcome(record, outcome):
    webhooks, store = service(mock.Mock())
    store.job.return_value = {None: None, "other outcome": job(outcome_id="outcome-2"),
                              "queued": job(status=c.QUEUED), "same": job()}[record]
    assert webhooks.fan_out(JOB_ID, outcome) == 0
    assert not store.add_delivery.called


def test_create_checks_events_and_the_url_and_shows_the_secret_once():
    webhooks, store = service(mock.Mock())
    store.create.return_value = dict(HOOK, created_at=utcnow())
    made = webhooks.create(HOOK["owner"], HOOK["url"], [c.JOB_FINISHED, c.JOB_FINISHED])
    assert made["secret"] == HOOK["secret"] and made["events"] == [c.JOB_FINISHED]
    store.create.assert_called_once_with(HOOK["owner"], HOOK["url"], [c.JOB_FINISHED])
    for events in ([], ["job.started"], None):
        with pytest.raises(InvalidWebhook):
            webhooks.create(HOOK["owner"], HOOK["url"], events)
    with pytest.raises(InvalidUrl):
        webhooks.create(HOOK["owner"], "http://127.0.0.1/", [c.JOB_FAILED])
    store.create.return_value = None
    with pytest.raises(InvalidWebhook, match="at most"):
        webhooks.create(HOOK["owner"], HOOK["url"], [c.JOB_FAILED])


def test_another_account_s_webhook_is_unknown():
    webhooks, store = service(mock.Mock())
    store.delete.return_value = False
    with pytest.raises(UnknownWebhook):
        webhooks.delete("mallory@example.com", HOOK["_id"])
    store.get.return_value = None
    with pytest.raises(UnknownWebhook):
        webhooks.deliveries("mallory@example.com", HOOK["_id"])
    store.get.assert_called_with(HOOK["_id"], "mallory@example.com")
