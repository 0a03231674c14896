"""`mp3svc register / verify / login / logout / forgot / reset` as subprocesses against the services
as real processes, with the links read from a real SMTP sink."""
import json

import pytest
import requests

from tests.integration.test_accounts import link_in, mails_to, site, start, wait_mail  # noqa: F401
from tests.integration.test_cli import MP3SVC, Cli

pytestmark = pytest.mark.skipif(MP3SVC is None, reason="mp3svc is not installed in this venv (make setup)")
NEW_PASSWORD = "another fine passphrase"


def test_cli_account_flows(site, tmp_path):  # noqa: F811 (the fixture)
    home = tmp_path / "home"
    home.mkdir()
    cli = Cli(home, site.base)
    email = "cli-accounts@example.com"

    code, out, err = cli("register", email)
    assert code == 0, err
    assert "Confirm the address" in out
    link = link_in(wait_mail(site.mail, email)[0], "verify")
    code, out, err = cli("verify", link)
    assert code == 0 and "Confirmed %s" % email in out, err
    code, out, err = cli("verify", link)  # once
    assert code == 1 and "not valid" in err
    assert cli("login", email)[0] == 0
    saved = json.loads((home / "config" / "mp3svc" / "credentials.json").read_text())
    token = saved[site.base]["token"]
    assert requests.get(site.base + "/jobs", headers={"Authorization": "Bearer " + token},
                        timeout=30).status_code == 200

    code, out, err = cli("logout")
    assert code == 0 and "Logged out" in out, err
    # revoked on the server at once, not just forgotten here
    assert requests.get(site.base + "/jobs", headers={"Authorization": "Bearer " + token},
                        timeout=30).status_code == 401
    assert cli("jobs")[0] == 1  # nothing saved any more

    code, out, err = cli("forgot", email)
    assert code == 0, err
    reset = link_in(wait_mail(site.mail, email, subject="new mp3svc password")[0], "reset")
    cli.env["MP3SVC_PASSWORD"] = NEW_PASSWORD
    code, out, err = cli("reset", reset)
    assert code == 0 and "Password changed" in out, err
    assert cli("login", email)[0] == 0
    assert cli("jobs")[0] == 0
    assert len(mails_to(site.mail, email)) == 2
