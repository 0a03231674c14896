"""caller.py: who is calling (Bearer or the page's cookie) and the cookie's CSRF rule."""
import pytest

from services.common.scopes import JOBS_READ, JOBS_WRITE, LOGIN_ONLY
from services.gateway import caller
from services.gateway.exceptions import CsrfRejected, InsufficientScope, Unauthorized
from tests.unit.gateway.worker import HOST, OWNER, TOKEN, gateway, request


def test_a_bearer_token_is_checked_by_auth():
    worker = gateway()
    assert worker._user(request("POST", "/upload"), JOBS_WRITE) == OWNER
    worker.auth.validate_token.assert_called_once_with(TOKEN)


def test_no_token_is_401_before_auth_is_asked():
    worker = gateway()
    with pytest.raises(Unauthorized):
        worker._user(request(token=None), JOBS_READ)
    worker.auth.validate_token.assert_not_called()


@pytest.mark.parametrize("origin, allowed", [
    (HOST, True), ("https://evil.example", False), (None, False)])
def test_a_cookie_changes_state_only_from_the_page_itself(origin, allowed):
    worker = gateway()
    headers = {"Origin": origin} if origin else {}
    incoming = request("DELETE", "/jobs/x", token=None, cookie=TOKEN, headers=headers)
    if allowed:
        assert worker._user(incoming, JOBS_WRITE) == OWNER
    else:
        with pytest.raises(CsrfRejected):
            worker._user(incoming, JOBS_WRITE)
    # reading needs no Origin
    assert worker._user(request("GET", "/jobs", token=None, cookie=TOKEN), JOBS_READ) == OWNER


def test_the_bearer_token_wins_over_the_cookie():
    assert caller.token_from_request(request(cookie="cookie-token")) == (TOKEN, False)
    assert caller.token_from_request(request(token=None, cookie="cookie-token")) == ("cookie-token", True)


@pytest.mark.parametrize("url, origin", [
    ("https://Example.com:443/page", "https://example.com"), ("http://[::1]:8080/x", "http://[::1]:8080"),
    ("ftp://example.com", None), ("null", None), ("http://bad:port", None)])
def test_origin_of(url, origin):
    assert caller.origin_of(url) == origin


def test_the_cookie_is_secure_behind_https_only():
    assert caller.secure_cookie("https://mp3.example.com")
    assert not caller.secure_cookie("") and not caller.secure_cookie("http://127.0.0.1:8080")


@pytest.mark.parametrize("granted, needed, allowed", [
    (None, JOBS_READ, True), (None, LOGIN_ONLY, True),
    (["jobs:read"], JOBS_READ, True), (["jobs:read"], JOBS_WRITE, False),
    (["jobs:read", "jobs:write", "webhooks"], LOGIN_ONLY, False)])
def test_an_api_token_acts_only_within_its_scopes(granted, needed, allowed):
    if allowed:
        caller.check_scope(granted, needed)
    else:
        with pytest.raises(InsufficientScope):
            caller.check_scope(granted, needed)
