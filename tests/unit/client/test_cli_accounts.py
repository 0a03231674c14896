"""The account commands of the mp3svc client (register, verify, resend, forgot, reset, logout)
against mocked answers; tests/integration/test_cli_accounts.py runs them against the services."""
import json

import httpx
import pytest

from mp3svc_client import cli, config


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in (config.ENV_SERVER, config.ENV_TOKEN, config.ENV_PASSWORD):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(argv, capsys, answer):
    calls = []

    def record(request):
        calls.append((request.method, request.url.path, request.headers.get("authorization"),
                      json.loads(request.content) if request.content else None))
        return answer(request)
    code = cli.main(argv, transport=httpx.MockTransport(record))
    out, err = capsys.readouterr()
    return code, out, err, calls


def error(status, code):
    return httpx.Response(status, json={"error": code, "message": "The server says %s." % code})


def test_register_says_to_confirm_the_address(capsys, monkeypatch):
    monkeypatch.setenv(config.ENV_PASSWORD, "secret-password")

    def answer(request):
        if request.url.path == "/register":
            return httpx.Response(202, json={"email": "me@example.com", "status": "verification_sent"})
        return error(403, "email_unverified")
    code, out, err, calls = run(["register", "me@example.com"], capsys, answer)
    assert code == 0, err
    assert "Confirm the address" in out and "mp3svc verify" in out
    assert [c[1] for c in calls] == ["/register", "/login"]
    assert config.saved_login(config.server()) == (None, None)  # nothing saved


def test_register_when_the_server_does_not_verify_logs_in(capsys, monkeypatch):
    monkeypatch.setenv(config.ENV_PASSWORD, "secret-password")

    def answer(request):
        if request.url.path == "/register":
            return httpx.Response(202, json={"email": "me@example.com", "status": "verification_sent"})
        return httpx.Response(200, json={"token": "t", "token_type": "Bearer", "expires_in": 60})
    code, out, _, _ = run(["register", "me@example.com"], capsys, answer)
    assert code == 0 and "Registered and logged in" in out
    assert config.saved_login(config.server())[0] == "t"


@pytest.mark.parametrize("given", ["abc_DEF-123", "http://h:8080/verify?token=abc_DEF-123",
                                   " https://mp3.example/verify?token=abc_DEF-123&x=1 "])
def test_verify_takes_the_link_or_its_token(capsys, given):
    code, out, _, calls = run(["verify", given], capsys, lambda request: httpx.Response(
        200, json={"email": "me@example.com", "verified": True}))
    assert code == 0 and "Confirmed me@example.com" in out
    assert calls == [("POST", "/verify", None, {"token": "abc_DEF-123"})]


def test_verify_with_a_used_link_fails_with_the_servers_reason(capsys):
    code, _, err, _ = run(["verify", "old"], capsys, lambda request: error(400, "invalid_token"))
    assert code == 1 and "invalid_token" in err


@pytest.mark.parametrize("command, path", [("forgot", "/password/forgot"),
                                           ("resend", "/verify/resend")])
def test_forgot_and_resend(capsys, command, path):
    code, out, _, calls = run([command, "me@example.com", "--json"], capsys,
                              lambda request: httpx.Response(202, json={"email": "me@example.com",
                                                                        "status": "sent"}))
    assert code == 0 and json.loads(out)["email"] == "me@example.com"
    assert calls == [("POST", path, None, {"email": "me@example.com"})]


def test_reset_reads_the_new_password(capsys, monkeypatch):
    monkeypatch.setenv(config.ENV_PASSWORD, "the new password")
    code, out, _, calls = run(["reset", "http://h/reset?token=T0k"], capsys,
                              lambda request: httpx.Response(204))
    assert code == 0 and "Password changed" in out
    assert calls == [("POST", "/password/reset", None, {"token": "T0k",
                                                        "password": "the new password"})]


def test_reset_with_a_weak_password(capsys, monkeypatch):
    monkeypatch.setenv(config.ENV_PASSWORD, "password")
    code, _, err, _ = run(["reset", "T0k"], capsys, lambda request: error(400, "weak_password"))
    assert code == 1 and "weak_password" in err


def saved(token="tok"):
    config.save_login(config.server(), "me@example.com", token, 3600)


def test_logout_revokes_on_the_server_then_forgets(capsys):
    saved()
    code, out, _, calls = run(["logout"], capsys, lambda request: httpx.Response(204))
    assert code == 0 and "Logged out" in out
    assert calls == [("POST", "/logout", "Bearer tok", None)]
    assert config.saved_login(config.server()) == (None, None)


def test_logout_with_a_token_the_server_no_longer_knows_still_forgets_it(capsys):
    saved()
    code, _, _, _ = run(["logout"], capsys, lambda request: error(401, "invalid_token"))
    assert code == 0
    assert config.saved_login(config.server()) == (None, None)


def test_logout_when_the_server_is_down_forgets_and_says_the_token_lives_on(capsys):
    saved()

    def down(request):
        raise httpx.ConnectError("refused", request=request)
    code, _, err, _ = run(["logout"], capsys, down)
    assert code == 1 and "works until it expires" in err
    assert config.saved_login(config.server()) == (None, None)


def test_logout_when_not_logged_in(capsys):
    code, out, _, calls = run(["logout"], capsys, lambda request: httpx.Response(204))
    assert (code, calls) == (0, []) and "Not logged in" in out
