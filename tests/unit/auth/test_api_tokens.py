"""Personal API tokens (issue 21) with real collaborators (SQLite, argon2, PyJWT), no broker:
made, listed and revoked with a login token only; stored hashed; scopes; expiry; last_used_at kept
to the minute; every token of an account ends with a password change or reset, disabling and
deletion."""
import datetime
import hashlib
import types

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select, update

from services.auth import api_tokens
from services.auth.dependencies import Tokens
from services.auth.exceptions import (
    InvalidInput, InvalidToken, TooManyApiTokens, UnknownApiToken)
from services.auth.models import ApiToken
from services.auth.service import AuthService
from services.auth.settings import AuthSettings
from services.common import constants as c
from services.common.scopes import JOBS_READ, JOBS_WRITE, WEBHOOKS
from services.common.utils import utcnow
from tests.configs import config_defaults

SECRET = "unit-test-secret-" + "k" * 40
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def service(session, passwords):
    settings = dict(config_defaults(), JWT_SECRET=SECRET, EMAIL_VERIFICATION=False)
    return worker_factory(AuthService, db=types.SimpleNamespace(session=session),
                          passwords=passwords, tokens=Tokens(SECRET, 600),
                          settings=AuthSettings.load(settings))


def login(service, email="ann@example.com"):
    try:
        service.create_user(email, PASSWORD)
    except Exception:  # made by an earlier step of the test
        pass
    return service.login(email, PASSWORD)["token"]


def row_of(session, token_id):
    session.expire_all()
    return session.scalar(select(ApiToken).where(ApiToken.id == token_id))


def test_create_shows_the_secret_once_and_stores_its_hash(service, session):
    login_token = login(service)
    made = service.create_api_token(login_token, " ci ", [JOBS_WRITE, JOBS_READ, JOBS_READ], 30)
    assert set(made) == {"id", "name", "scopes", "token", "created_at", "expires_at"}
    assert made["name"] == "ci" and made["scopes"] == [JOBS_READ, JOBS_WRITE]  # canonical order
    assert made["token"].startswith("mp3_") and len(made["token"]) >= 4 + 43
    created = datetime.datetime.fromisoformat(made["created_at"].rstrip("Z"))
    expires = datetime.datetime.fromisoformat(made["expires_at"].rstrip("Z"))
    assert expires - created == datetime.timedelta(days=30)
    row = row_of(session, made["id"])
    assert row.secret_hash == hashlib.sha256(made["token"].encode()).hexdigest()
    stored = [str(value) for value in session.execute(select(ApiToken.__table__)).one()]
    assert not any(made["token"][4:] in value for value in stored)
    # listed without the secret
    [listed] = service.list_api_tokens(login_token)
    assert listed == dict({key: value for key, value in made.items() if key != "token"},
                          last_used_at=None)


def test_validate_tells_the_two_kinds_apart(service):
    login_token = login(service)
    made = service.create_api_token(login_token, "read", [JOBS_READ])
    assert service.validate_token(login_token)["scopes"] is None
    user = service.validate_token(made["token"])
    assert user == {"email": "ann@example.com", "user_id": user["user_id"], "scopes": [JOBS_READ]}
    assert user["user_id"] == service.validate_token(login_token)["user_id"]


@pytest.mark.parametrize("token", ["mp3_", "mp3_" + "x" * 43, "mp3_" + "x" * 300, "mp3_a.b.c"])
def test_unknown_api_tokens_are_invalid(service, token):
    with pytest.raises(InvalidToken):
        service.validate_token(token)


def test_last_used_is_kept_to_the_minute(service, session):
    made = service.create_api_token(login(service), "ci", [JOBS_READ])
    assert row_of(session, made["id"]).last_used_at is None
    service.validate_token(made["token"])
    first = row_of(session, made["id"]).last_used_at
    assert first is not None and (utcnow() - first).total_seconds() < 5
    # used again within the minute: not written again
    half_a_minute_ago = first - datetime.timedelta(seconds=30)
    session.execute(update(ApiToken).values(last_used_at=half_a_minute_ago))
    session.commit()
    service.validate_token(made["token"])
    assert row_of(session, made["id"]).last_used_at == half_a_minute_ago
    # after more than a minute: written
    session.execute(update(ApiToken).values(last_used_at=first - datetime.timedelta(seconds=61)))
    session.commit()
    service.validate_token(made["token"])
    assert row_of(session, made["id"]).last_used_at >= first
    assert service.list_api_tokens(login(service))[0]["last_used_at"] is not None


def test_an_expired_token_is_refused(service, session):
    made = service.create_api_token(login(service), "short", [JOBS_READ], 1)
    service.validate_token(made["token"])
    session.execute(update(ApiToken).values(expires_at=utcnow() - datetime.timedelta(seconds=1)))
    session.commit()
    with pytest.raises(InvalidToken) as refused:
        service.validate_token(made["token"])
    assert "expired" in str(refused.value)


def test_without_expiry_it_lasts(service):
    made = service.create_api_token(login(service), "forever", [WEBHOOKS])
    assert made["expires_at"] is None
    assert service.validate_token(made["token"])["scopes"] == [WEBHOOKS]


def test_revoke_ends_it_at_once_and_only_the_owners(service):
    ann = login(service)
    bob = login(service, "bob@example.com")
    made = service.create_api_token(ann, "ci", [JOBS_READ])
    with pytest.raises(UnknownApiToken):
        service.revoke_api_token(bob, made["id"])          # another user's: as unknown
    assert service.validate_token(made["token"])["email"] == "ann@example.com"
    for unknown in ("", "0" * 16, "x" * 500, None, 5):
        with pytest.raises(UnknownApiToken):
            service.revoke_api_token(ann, unknown)
    service.revoke_api_token(ann, made["id"])
    with pytest.raises(InvalidToken):
        service.validate_token(made["token"])
    assert service.list_api_tokens(ann) == []
    with pytest.raises(UnknownApiToken):
        service.revoke_api_token(ann, made["id"])


def test_lists_only_the_callers_newest_first(service, session):
    ann = login(service)
    bob = login(service, "bob@example.com")
    first = service.create_api_token(ann, "first", [JOBS_READ])
    session.execute(update(ApiToken).where(ApiToken.id == first["id"]).values(
        created_at=utcnow() - datetime.timedelta(minutes=1)))
    session.commit()
    second = service.create_api_token(ann, "second", [JOBS_WRITE])
    service.create_api_token(bob, "bob's", [JOBS_READ])
    assert [t["id"] for t in service.list_api_tokens(ann)] == [second["id"], first["id"]]
    assert [t["name"] for t in service.list_api_tokens(bob)] == ["bob's"]


def test_an_api_token_cannot_manage_tokens_or_the_account(service):
    made = service.create_api_token(login(service), "all", list((JOBS_READ, JOBS_WRITE, WEBHOOKS)))
    for call in (lambda t: service.create_api_token(t, "more", [JOBS_READ]),
                 service.list_api_tokens, lambda t: service.revoke_api_token(t, made["id"]),
                 lambda t: service.change_password(t, PASSWORD, NEW_PASSWORD),
                 lambda t: service.confirm_password(t, PASSWORD)):
        with pytest.raises(InvalidToken):
            call(made["token"])
    assert service.validate_token(made["token"])["email"] == "ann@example.com"


@pytest.mark.parametrize("name, scopes, days", [
    ("", [JOBS_READ], None), ("   ", [JOBS_READ], None), ("x" * 101, [JOBS_READ], None),
    ("tab\there", [JOBS_READ], None), (None, [JOBS_READ], None), ("ok", [], None),
    ("ok", ["admin"], None), ("ok", JOBS_READ, None), ("ok", [JOBS_READ, 1], None),
    ("ok", [JOBS_READ], 0), ("ok", [JOBS_READ], 3651), ("ok", [JOBS_READ], 1.5),
    ("ok", [JOBS_READ], True), ("ok", [JOBS_READ], "7")])
def test_bad_requests_are_invalid_input(service, name, scopes, days):
    with pytest.raises(InvalidInput):
        service.create_api_token(login(service), name, scopes, days)


def test_limits_are_inclusive(service):
    made = service.create_api_token(login(service), "x" * 100, [JOBS_READ], 3650)
    assert len(made["name"]) == 100
    assert service.create_api_token(login(service), "one", [JOBS_READ], 1)["expires_at"]


def test_at_most_so_many_per_account(service, monkeypatch):
    monkeypatch.setattr(api_tokens, "MAX_PER_USER", 2)
    ann = login(service)
    service.create_api_token(ann, "1", [JOBS_READ])
    service.create_api_token(ann, "2", [JOBS_READ])
    with pytest.raises(TooManyApiTokens):
        service.create_api_token(ann, "3", [JOBS_READ])
    service.revoke_api_token(ann, service.list_api_tokens(ann)[0]["id"])
    service.create_api_token(ann, "3", [JOBS_READ])


def test_a_password_change_ends_every_api_token(service):
    ann = login(service)
    made = service.create_api_token(ann, "ci", [JOBS_READ])
    fresh = service.change_password(ann, PASSWORD, NEW_PASSWORD)["token"]
    with pytest.raises(InvalidToken):
        service.validate_token(made["token"])
    assert service.list_api_tokens(fresh) == []


def test_a_password_reset_ends_every_api_token(service):
    made = service.create_api_token(login(service), "ci", [JOBS_READ])
    service.forgot_password("ann@example.com")
    [call] = [call for call in service.dispatch.call_args_list
              if call.args[0] == c.ACCOUNT_EMAIL and call.args[1]["kind"] == c.MAIL_RESET]
    service.reset_password(call.args[1]["token"], NEW_PASSWORD)
    with pytest.raises(InvalidToken):
        service.validate_token(made["token"])


def test_disabling_ends_them_and_enabling_brings_none_back(service):
    made = service.create_api_token(login(service), "ci", [JOBS_READ])
    service.disable_user("ann@example.com")
    with pytest.raises(InvalidToken):
        service.validate_token(made["token"])
    service.enable_user("ann@example.com")
    with pytest.raises(InvalidToken):
        service.validate_token(made["token"])


def test_deleting_the_account_deletes_its_tokens(service, session):
    made = service.create_api_token(login(service), "ci", [JOBS_READ])
    service.delete_user("ann@example.com")
    with pytest.raises(InvalidToken):
        service.validate_token(made["token"])
    assert row_of(session, made["id"]) is None


def test_a_token_of_a_disabled_account_is_refused_even_if_left(service, session):
    """Belt and braces: a row that outlived its account's disabling (made concurrently) is refused."""
    user_id = service.validate_token(login(service))["user_id"]
    service.disable_user("ann@example.com")
    session.add(ApiToken(id="left", user_id=user_id, name="left",
                         scopes=JOBS_READ, secret_hash=api_tokens.digest("mp3_left"),
                         created_at=utcnow()))
    session.commit()
    with pytest.raises(InvalidToken) as refused:
        service.validate_token("mp3_left")
    assert "disabled" in str(refused.value)
