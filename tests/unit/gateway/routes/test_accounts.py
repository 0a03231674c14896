"""routes/accounts.py on a worker (nameko's worker_factory)."""
import base64
import json

import pytest

from services.auth.exceptions import InvalidInput
from services.gateway.exceptions import Unauthorized
from tests.unit.gateway.worker import OWNER, TOKEN, gateway, request


def body(response):
    return json.loads(response.get_data())


def test_register_validates_then_asks_auth():
    worker = gateway()
    worker.auth.register.return_value = {"email": OWNER, "status": "verification_sent"}
    sent = json.dumps({"email": " %s " % OWNER, "password": "long enough pw"}).encode()
    response = worker.register(request("POST", "/register", body=sent, token=None,
                                       content_type="application/json"))
    assert (response.status_code, body(response)) == (202, {"email": OWNER,
                                                            "status": "verification_sent"})
    worker.auth.register.assert_called_once_with(OWNER, "long enough pw")
    with pytest.raises(InvalidInput, match="password"):
        worker.register(request("POST", "/register", body=b'{"email": "a@example.com"}', token=None,
                                content_type="application/json"))


def test_login_takes_http_basic_only():
    worker = gateway()
    worker.auth.login.return_value = {"token": TOKEN, "token_type": "Bearer", "expires_in": 60}
    with pytest.raises(Unauthorized):
        worker.login(request("POST", "/login"))  # a Bearer token is no login
    basic = "Basic " + base64.b64encode(b"me@example.com:pw").decode()
    response = worker.login(request("POST", "/login", token=None, headers={"Authorization": basic}))
    assert body(response)["token"] == TOKEN
    worker.auth.login.assert_called_once_with(OWNER, "pw", worker.limits.client.return_value)
