"""routes/sessions.py on a worker (nameko's worker_factory): the web page's cookie session."""
import json

import pytest

from services.auth.exceptions import InvalidCredentials
from services.gateway.exceptions import CsrfRejected, Unauthorized
from tests.unit.gateway.worker import HOST, OWNER, TOKEN, gateway, request, settings


def body(response):
    return json.loads(response.get_data())


def login_request(origin=HOST):
    sent = json.dumps({"email": OWNER, "password": "pw"}).encode()
    return request("POST", "/session", body=sent, token=None, content_type="application/json",
                   headers={"Origin": origin} if origin else {})


def test_a_session_puts_the_token_in_an_httponly_cookie():
    worker = gateway(settings=settings(PUBLIC_URL="https://mp3.example.com"))
    worker.auth.login.return_value = {"token": TOKEN, "expires_in": 600}
    response = worker.web_login(login_request("https://mp3.example.com"))
    assert body(response) == {"email": OWNER, "expires_in": 600}
    cookie = response.headers["Set-Cookie"]
    # behind https: the __Host- prefix (Secure, Path=/, no Domain)
    assert cookie.startswith("__Host-mp3svc_token=%s;" % TOKEN) and "Domain" not in cookie
    for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Max-Age=600", "Path=/"):
        assert flag in cookie
    assert TOKEN not in response.get_data(as_text=True)


def test_a_session_refuses_another_sites_page_and_wrong_passwords_without_a_challenge():
    worker = gateway()
    with pytest.raises(CsrfRejected):
        worker.web_login(login_request("https://evil.example"))
    worker.auth.login.side_effect = InvalidCredentials("Wrong email or password.")
    response = worker.web_login(login_request(None))
    assert response.status_code == 401 and "WWW-Authenticate" not in response.headers


def test_session_reads_and_logout_clears_the_cookie():
    worker = gateway()
    assert body(worker.web_session(request(token=None, cookie=TOKEN))) == {"email": OWNER}
    with pytest.raises(Unauthorized):
        worker.web_session(request(token=None))
    response = worker.web_logout(request("DELETE", "/session", token=None, headers={"Origin": HOST}))
    assert response.status_code == 204 and "mp3svc_token=;" in response.headers["Set-Cookie"]
