"""routes/tokens.py on a worker (nameko's worker_factory): API tokens are managed with a login token
or the page's cookie only, the body is checked before auth is asked."""
import json

import pytest

from services.auth.exceptions import InvalidInput
from services.gateway.exceptions import CsrfRejected, InsufficientScope, InvalidId
from tests.unit.gateway.worker import HOST, OWNER, TOKEN, gateway, request

TOKEN_ID = "0123456789abcdef"


def post(body, **kwargs):
    return request("POST", "/tokens", body=json.dumps(body).encode(),
                   content_type="application/json", **kwargs)


def test_create_passes_the_checked_body_to_auth():
    worker = gateway()
    worker.auth.create_api_token.return_value = {"id": TOKEN_ID, "token": "mp3_x"}
    response = worker.create_token(post({"name": "ci", "scopes": ["jobs:read"],
                                         "expires_in_days": 7}))
    assert response.status_code == 201 and json.loads(response.get_data())["token"] == "mp3_x"
    worker.auth.create_api_token.assert_called_once_with(TOKEN, "ci", ["jobs:read"], 7)


@pytest.mark.parametrize("body", [
    {"name": "", "scopes": ["jobs:read"]}, {"name": "x" * 101, "scopes": ["jobs:read"]},
    {"name": "ci", "scopes": []}, {"name": "ci", "scopes": ["admin"]}, {"name": "ci"},
    {"name": "ci", "scopes": ["jobs:read"], "expires_in_days": 0},
    {"name": "ci", "scopes": ["jobs:read"], "expires_in_days": 3651},
    {"name": "ci", "scopes": ["jobs:read"], "expires_in_days": "7"},
    {"name": "ci", "scopes": "jobs:read"}, {"name": 5, "scopes": ["jobs:read"]}])
def test_create_refuses_bad_bodies(body):
    worker = gateway()
    with pytest.raises(InvalidInput):
        worker.create_token(post(body))
    worker.auth.create_api_token.assert_not_called()


@pytest.mark.parametrize("call", [
    lambda worker: worker.create_token(post({"name": "ci", "scopes": ["jobs:read"]})),
    lambda worker: worker.list_tokens(request("GET", "/tokens")),
    lambda worker: worker.revoke_token(request("DELETE", "/tokens/" + TOKEN_ID), TOKEN_ID)])
def test_an_api_token_manages_no_tokens(call):
    worker = gateway()
    everything = ["jobs:read", "jobs:write", "webhooks"]
    worker.auth.validate_token.return_value = {"email": OWNER, "scopes": everything}
    with pytest.raises(InsufficientScope):
        call(worker)
    assert not worker.auth.create_api_token.called and not worker.auth.revoke_api_token.called


def test_the_cookie_needs_the_pages_own_origin():
    worker = gateway()
    with pytest.raises(CsrfRejected):
        worker.revoke_token(request("DELETE", "/tokens/" + TOKEN_ID, token=None, cookie=TOKEN,
                                    headers={"Origin": "https://evil.example"}), TOKEN_ID)
    response = worker.revoke_token(request("DELETE", "/tokens/" + TOKEN_ID, token=None,
                                           cookie=TOKEN, headers={"Origin": HOST}), TOKEN_ID)
    assert response.status_code == 204
    worker.auth.revoke_api_token.assert_called_once_with(TOKEN, TOKEN_ID)


def test_revoke_checks_the_id_and_list_wraps_them():
    worker = gateway()
    with pytest.raises(InvalidId):
        worker.revoke_token(request("DELETE", "/tokens/nope"), "nope")
    worker.auth.list_api_tokens.return_value = [{"id": TOKEN_ID}]
    response = worker.list_tokens(request("GET", "/tokens"))
    assert json.loads(response.get_data()) == {"tokens": [{"id": TOKEN_ID}]}
