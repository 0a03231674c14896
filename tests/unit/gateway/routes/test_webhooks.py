"""routes/webhooks.py on a worker (nameko's worker_factory): the routes hand the caller and the checked
body to notification, and its errors and unavailability become the contract's."""
import json
from unittest import mock

import pytest
from nameko.exceptions import UnknownService

from services.auth.exceptions import InvalidInput
from services.common import constants as c
from services.common.scopes import JOBS_READ, WEBHOOKS
from services.gateway.dependencies import NotificationClient
from services.gateway.exceptions import (
    InsufficientScope, InvalidId, NotificationUnavailable, describe)
from services.notification.exceptions import InvalidUrl, UnknownWebhook
from tests.unit.gateway.worker import JOB_ID, OWNER, gateway, request

URL = "https://hooks.example.org/in"


def body(**fields):
    return json.dumps(dict({"url": URL, "events": [c.JOB_FINISHED]}, **fields)).encode()


def post(worker, payload):
    return worker.create_webhook(request("POST", "/webhooks", payload,
                                         headers={"Content-Type": "application/json"}))


def test_create_hands_the_caller_and_the_body_to_notification():
    worker = gateway()
    worker.notification.create_webhook.return_value = {"id": JOB_ID, "secret": "whsec_x"}
    response = post(worker, body(events=[c.JOB_FAILED, c.JOB_FINISHED]))
    assert response.status_code == 201 and json.loads(response.get_data())["secret"] == "whsec_x"
    worker.notification.create_webhook.assert_called_once_with(
        OWNER, URL, [c.JOB_FAILED, c.JOB_FINISHED])


@pytest.mark.parametrize("payload", [
    body(events=[]), body(events=["job.started"]), body(events="job.finished"), body(url=5),
    body(url=""), body(url="x" * 2049), json.dumps({"url": URL}).encode(),
    json.dumps({"events": [c.JOB_FAILED]}).encode()])
def test_a_bad_body_never_reaches_notification(payload):
    worker = gateway()
    with pytest.raises(InvalidInput):
        post(worker, payload)
    assert not worker.notification.create_webhook.called


def test_the_routes_need_the_webhooks_scope():
    worker = gateway()
    worker.auth.validate_token.return_value = {"email": OWNER, "scopes": [JOBS_READ]}
    with pytest.raises(InsufficientScope):
        worker.list_webhooks(request(path="/webhooks"))
    worker.auth.validate_token.return_value = {"email": OWNER, "scopes": [WEBHOOKS]}
    worker.notification.list_webhooks.return_value = []
    assert json.loads(worker.list_webhooks(request(path="/webhooks")).get_data()) == {"webhooks": []}


def test_ids_are_checked_and_deletes_answer_204():
    worker = gateway()
    with pytest.raises(InvalidId):
        worker.delete_webhook(request("DELETE"), "../x")
    with pytest.raises(InvalidId):
        worker.webhook_deliveries(request(), "nope")
    assert worker.delete_webhook(request("DELETE"), JOB_ID).status_code == 204
    worker.notification.delete_webhook.assert_called_once_with(OWNER, JOB_ID)
    worker.notification.list_deliveries.return_value = [{"id": "d"}]
    assert json.loads(worker.webhook_deliveries(request(), JOB_ID).get_data()) == {
        "deliveries": [{"id": "d"}]}


def test_notification_s_errors_are_in_the_one_table():
    assert describe(InvalidUrl("no"))[:2] == (400, "invalid_url")
    assert describe(UnknownWebhook("No such webhook."))[:2] == (404, "not_found")
    assert describe(NotificationUnavailable("down"))[:2] == (503, "notification_unavailable")


def test_notification_not_running_is_notification_unavailable():
    remote = mock.Mock()
    remote.list_webhooks.call_async.side_effect = UnknownService("notification")
    client = NotificationClient(remote, 1, NotificationUnavailable, c.NOTIFICATION)
    with pytest.raises(NotificationUnavailable):
        client.list_webhooks(OWNER)
