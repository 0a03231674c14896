"""`mp3svc token create / ls / rm` against mocked answers; tests/integration/test_cli_tokens.py runs
them against the services."""
import json

import httpx
import pytest

from mp3svc_client import cli, config
from tests.unit.client.test_cli_accounts import error, home, run  # noqa: F401  (home: a fixture)

MADE = {"id": "0123456789abcdef", "name": "ci", "scopes": ["jobs:read", "jobs:write"],
        "token": "mp3_secret", "created_at": "2026-12-06T05:00:00.000Z",
        "expires_at": "2027-01-05T05:00:00.000Z"}


@pytest.fixture(autouse=True)
def logged_in(monkeypatch):
    monkeypatch.setenv(config.ENV_TOKEN, "login.jwt.token")


def test_create_prints_the_token_alone_on_stdout(capsys):
    code, out, err, calls = run(
        ["token", "create", "--name", "ci", "--scope", "jobs:read", "--scope", "jobs:write",
         "--expires-in-days", "30"], capsys, lambda request: httpx.Response(201, json=MADE))
    assert code == 0 and out == "mp3_secret\n"
    assert "shown only this once" in err and "expires 2027-01-05" in err
    assert calls == [("POST", "/tokens", "Bearer login.jwt.token",
                      {"name": "ci", "scopes": ["jobs:read", "jobs:write"], "expires_in_days": 30})]


def test_create_json_and_without_expiry(capsys):
    code, out, err, calls = run(["token", "create", "--name", "ci", "--scope", "webhooks", "--json"],
                                capsys, lambda request: httpx.Response(201, json=MADE))
    assert code == 0 and json.loads(out) == MADE
    assert calls[0][3] == {"name": "ci", "scopes": ["webhooks"]}


def test_create_needs_a_name_and_a_scope(capsys):
    for argv in (["token", "create", "--name", "ci"], ["token", "create", "--scope", "jobs:read"]):
        with pytest.raises(SystemExit) as exit:
            cli.main(argv)
        assert exit.value.code == 2


def test_create_with_an_api_token_says_why(capsys):
    code, out, err, _ = run(["token", "create", "--name", "ci", "--scope", "jobs:read"], capsys,
                            lambda request: error(403, "insufficient_scope"))
    assert code == 1 and "MP3SVC_TOKEN holds an API token" in err


def test_ls_is_a_table_without_secrets(capsys):
    listed = [dict({k: v for k, v in MADE.items() if k != "token"},
                   last_used_at="2026-12-06T05:01:02.000Z"),
              dict(MADE, id="fedcba9876543210", name="hooks", scopes=["webhooks"], expires_at=None,
                   last_used_at=None)]
    code, out, err, _ = run(["token", "ls"], capsys,
                            lambda request: httpx.Response(200, json={"tokens": listed}))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "SCOPES", "CREATED", "EXPIRES", "LAST", "USED", "NAME"]
    assert lines[1].split() == ["0123456789abcdef", "jobs:read,jobs:write", "2026-12-06",
                                "2027-01-05", "2026-12-06", "05:01", "ci"]
    assert lines[2].split()[3:] == ["never", "never", "hooks"]
    code, out, _, _ = run(["token", "ls", "--json"], capsys,
                          lambda request: httpx.Response(200, json={"tokens": listed}))
    assert json.loads(out) == {"tokens": listed}
    code, out, _, _ = run(["token", "ls"], capsys,
                          lambda request: httpx.Response(200, json={"tokens": []}))
    assert out == "No API tokens.\n"


def test_rm_revokes_each_and_fails_for_unknown_ones(capsys):
    sent = []

    def answer(request):
        sent.append(request.url.raw_path)
        return httpx.Response(204) if request.url.path.endswith("abcdef") else error(404, "not_found")
    code, out, err, calls = run(["token", "rm", "0123456789abcdef", "../jobs"], capsys, answer)
    assert code == 1
    assert "Revoked 0123456789abcdef." in out and "../jobs: The server says not_found." in err
    assert {call[0] for call in calls} == {"DELETE"}
    assert sent == [b"/tokens/0123456789abcdef", b"/tokens/..%2Fjobs"]  # an id stays one segment


def test_logout_with_an_api_token_says_how_to_revoke_it(capsys, monkeypatch):
    monkeypatch.setenv(config.ENV_TOKEN, "mp3_secret")
    code, out, err, _ = run(["logout"], capsys, lambda request: error(403, "insufficient_scope"))
    assert code == 1 and "mp3svc token rm ID" in err
