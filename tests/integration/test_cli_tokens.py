"""`mp3svc token create / ls / rm` as subprocesses against the services as real processes, and the
other commands run by a script with an API token in MP3SVC_TOKEN, within its scopes."""
import json

import pytest

from tests.integration.accounts import verified_token
from tests.integration.test_accounts import site  # noqa: F401  (the fixture)
from tests.integration.test_cli import MP3SVC, Cli

pytestmark = pytest.mark.skipif(MP3SVC is None, reason="mp3svc is not installed in this venv (make setup)")


def test_cli_token_flow(site, tmp_path):  # noqa: F811 (the fixture)
    home = tmp_path / "home"
    home.mkdir()
    cli = Cli(home, site.base)
    email = "cli-tokens@example.com"
    verified_token(site, email)
    assert cli("login", email)[0] == 0

    code, out, err = cli("token", "create", "--name", "nightly backup", "--scope", "jobs:read",
                         "--expires-in-days", "7")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("mp3_") and "\n" not in secret and "shown only this once" in err
    code, out, err = cli("token", "create", "--name", "hooks", "--scope", "webhooks", "--json")
    assert code == 0, err
    hooks = json.loads(out)
    assert hooks["scopes"] == ["webhooks"] and hooks["expires_at"] is None

    # a script with the API token: within its scopes only
    (tmp_path / "script-home").mkdir()
    script = Cli(tmp_path / "script-home", site.base)
    script.env["MP3SVC_TOKEN"] = secret
    code, out, err = script("jobs", "--json")
    assert (code, json.loads(out)) == (0, {"jobs": []}), err
    code, out, err = script("rm", "0" * 32)
    assert code == 1 and "lacks the 'jobs:write' scope" in err
    code, out, err = script("token", "create", "--name", "more", "--scope", "jobs:read")
    assert code == 1 and "API token cannot do this" in err
    code, out, err = script("logout")
    assert code == 1 and "mp3svc token rm ID" in err

    code, out, err = cli("token", "ls")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert len(rows) == 2 and "nightly backup" in out and secret not in out
    code, out, err = cli("token", "ls", "--json")
    listed = {token["name"]: token for token in json.loads(out)["tokens"]}
    assert listed["nightly backup"]["last_used_at"] is not None
    assert listed["hooks"]["last_used_at"] is None
    assert "never" in rows[hooks["id"]]

    token_id = listed["nightly backup"]["id"]
    code, out, err = cli("token", "rm", token_id)
    assert code == 0 and "Revoked %s." % token_id in out, err
    code, out, err = script("jobs")
    assert code == 1 and "revoked" in err     # at once
    code, out, err = cli("token", "rm", token_id)
    assert code == 1 and "No such API token" in err
