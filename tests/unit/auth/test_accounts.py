"""Accounts (issue 16) with real collaborators (SQLite, argon2, PyJWT), no broker: verification,
reset, password change, revocable sessions, guessing limits. The emails auth asks for are read off
the service's event dispatcher (a mock here; tests/integration/test_accounts.py sends them)."""
import datetime
import types

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select

from services.auth.dependencies import Tokens
from services.auth.exceptions import (
    EmailUnverified, InvalidCredentials, InvalidLink, InvalidToken, TooManyAttempts, WeakPassword,
    WrongPassword)
from services.auth.models import Registration, ResetToken, User
from services.auth.schemas import clean_password
from services.auth.service import AuthService
from services.auth.settings import AuthSettings
from services.common import constants as c
from services.common.utils import utcnow
from services.notification import accountmail
from tests.configs import config_defaults

SECRET = "unit-test-secret-" + "k" * 40
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def make_service(session, passwords, **config):
    settings = dict(config_defaults(), JWT_SECRET=SECRET, LOGIN_MAX_FAILURES=3,
                    LOGIN_CLIENT_MAX_FAILURES=6, LOGIN_ACCOUNT_MAX_FAILURES=8)
    settings.update(config)
    return worker_factory(AuthService, db=types.SimpleNamespace(session=session),
                          passwords=passwords, tokens=Tokens(SECRET, 600),
                          settings=AuthSettings.load(settings))


@pytest.fixture
def service(session, passwords):
    return make_service(session, passwords)


def mails(service, kind=None):
    """[(kind, email, token)] of the account emails dispatched so far."""
    found = [(call.args[1]["kind"], call.args[1]["email"], call.args[1]["token"])
             for call in service.dispatch.call_args_list if call.args[0] == c.ACCOUNT_EMAIL]
    return [m for m in found if kind is None or m[0] == kind]


def verified(service, email, password=PASSWORD):
    service.register(email, password)
    service.verify_email(mails(service, c.MAIL_VERIFY)[-1][2])
    return service.login(email, password)["token"]


# --- verification ---------------------------------------------------------------------------------
def test_verification_is_on_by_default():
    assert AuthSettings.load(dict(config_defaults(), JWT_SECRET=SECRET)).EMAIL_VERIFICATION is True


def test_register_then_verify_then_login(service, session):
    answer = service.register("ann@example.com", PASSWORD)
    assert answer == {"email": "ann@example.com", "status": "verification_sent"}
    assert session.scalar(select(User).where(User.email == "ann@example.com")) is None
    [(kind, email, token)] = mails(service)
    assert (kind, email) == (c.MAIL_VERIFY, "ann@example.com") and len(token) >= 40
    stored = session.get(Registration, "ann@example.com")
    assert token not in stored.token_hash and len(stored.token_hash) == 64  # only its hash
    with pytest.raises(EmailUnverified):  # the right password, not yet confirmed
        service.login("ann@example.com", PASSWORD)
    with pytest.raises(InvalidCredentials):  # a wrong one says nothing about the address
        service.login("ann@example.com", "wrong password!")
    assert service.verify_email(token) == {"email": "ann@example.com", "verified": True}
    assert service.login("ann@example.com", PASSWORD)["token"]
    with pytest.raises(InvalidLink):  # once
        service.verify_email(token)


@pytest.mark.parametrize("token", ["", "x" * 43, None, 5, "y" * 5000])
def test_bad_verification_tokens(service, token):
    with pytest.raises(InvalidLink):
        service.verify_email(token)


def test_an_expired_link_does_not_verify(service, session):
    service.register("old@example.com", PASSWORD)
    session.get(Registration, "old@example.com").expires_at = utcnow() - datetime.timedelta(
        seconds=1)
    session.commit()
    with pytest.raises(InvalidLink):
        service.verify_email(mails(service)[-1][2])


def test_taken_address_same_answer_one_notice_a_day_nothing_changes(service):
    token = verified(service, "bea@example.com")
    first = service.register("bea@example.com", "attacker password 1")
    second = service.register("bea@example.com", "attacker password 2")
    assert first == second == {"email": "bea@example.com", "status": "verification_sent"}
    assert [m[:2] for m in mails(service, c.MAIL_NOTICE)] == [(c.MAIL_NOTICE, "bea@example.com")]
    assert mails(service, c.MAIL_NOTICE)[0][2] is None
    assert service.validate_token(token)["email"] == "bea@example.com"
    with pytest.raises(InvalidCredentials):
        service.login("bea@example.com", "attacker password 1")


def test_pre_hijacking_the_owner_registering_replaces_the_pending_password(service):
    service.register("victim@example.com", "attacker password")
    attackers_link = mails(service, c.MAIL_VERIFY)[-1][2]
    service.register("victim@example.com", "the victim's password")
    owners_link = mails(service, c.MAIL_VERIFY)[-1][2]
    with pytest.raises(InvalidLink):
        service.verify_email(attackers_link)
    service.verify_email(owners_link)
    with pytest.raises(InvalidCredentials):
        service.login("victim@example.com", "attacker password")
    assert service.login("victim@example.com", "the victim's password")["token"]


def test_resend_replaces_the_link_and_answers_alike(service):
    service.register("cid@example.com", PASSWORD)
    old = mails(service, c.MAIL_VERIFY)[-1][2]
    assert service.resend_verification("cid@example.com") == {
        "email": "cid@example.com", "status": "verification_sent"}
    assert service.resend_verification("nobody@example.com")["status"] == "verification_sent"
    assert len(mails(service, c.MAIL_VERIFY)) == 2
    with pytest.raises(InvalidLink):
        service.verify_email(old)
    service.verify_email(mails(service, c.MAIL_VERIFY)[-1][2])


def test_links_per_address_are_budgeted(service):
    for _ in range(8):
        service.register("spam@example.com", PASSWORD)
    assert len(mails(service, c.MAIL_VERIFY)) == 5


def test_operator_accounts_are_verified(service):
    service.create_user("ops-made@example.com", PASSWORD)
    assert service.login("ops-made@example.com", PASSWORD)["token"]
    assert mails(service) == []


def test_without_verification_register_makes_the_account(session, passwords):
    service = make_service(session, passwords, EMAIL_VERIFICATION=False)
    assert service.register("dee@example.com", PASSWORD)["status"] == "verification_sent"
    assert service.login("dee@example.com", PASSWORD)["token"]
    assert mails(service) == []


# --- weak passwords -------------------------------------------------------------------------------
@pytest.mark.parametrize("password", ["password", "PASSWORD", "Password1", "qwertyuiop",
                                      "iloveyou", "12345678", "sunshine", "p" * 7, "x" * 1025])
def test_common_or_badly_sized_passwords_are_weak(password):
    with pytest.raises(WeakPassword):
        clean_password(password)


def test_register_refuses_a_common_password_before_anything(service, session):
    with pytest.raises(WeakPassword):
        service.register("eve@example.com", "trustno1")
    assert session.get(Registration, "eve@example.com") is None and mails(service) == []


# --- reset, change --------------------------------------------------------------------------------
def test_forgot_and_reset(service, session):
    old_token = verified(service, "fay@example.com")
    assert service.forgot_password("fay@example.com") == service.forgot_password(
        "fay@example.com") | {}
    assert service.forgot_password("nobody@example.com")["status"] == "reset_sent"
    resets = mails(service, c.MAIL_RESET)
    assert [m[1] for m in resets] == ["fay@example.com", "fay@example.com"]
    with pytest.raises(InvalidLink):  # the newer link replaced the older
        service.reset_password(resets[0][2], NEW_PASSWORD)
    with pytest.raises(WeakPassword):  # a weak password leaves the link usable
        service.reset_password(resets[1][2], "password123")
    assert service.reset_password(resets[1][2], NEW_PASSWORD) == {"email": "fay@example.com"}
    with pytest.raises(InvalidLink):  # once
        service.reset_password(resets[1][2], NEW_PASSWORD + "!")
    with pytest.raises(InvalidToken):  # every token of the account ended
        service.validate_token(old_token)
    with pytest.raises(InvalidCredentials):
        service.login("fay@example.com", PASSWORD)
    assert service.login("fay@example.com", NEW_PASSWORD)["token"]


def test_an_expired_reset_link(service, session):
    verified(service, "gus@example.com")
    service.forgot_password("gus@example.com")
    for row in session.scalars(select(ResetToken)):
        row.expires_at = utcnow() - datetime.timedelta(seconds=1)
    session.commit()
    with pytest.raises(InvalidLink):
        service.reset_password(mails(service, c.MAIL_RESET)[-1][2], NEW_PASSWORD)


def test_change_password_ends_other_tokens_and_gives_a_new_one(service):
    first = verified(service, "hal@example.com")
    second = service.login("hal@example.com", PASSWORD)["token"]
    with pytest.raises(WrongPassword):
        service.change_password(first, "not the password", NEW_PASSWORD)
    with pytest.raises(WeakPassword):
        service.change_password(first, PASSWORD, "password1")
    fresh = service.change_password(first, PASSWORD, NEW_PASSWORD)["token"]
    for old in (first, second):
        with pytest.raises(InvalidToken):
            service.validate_token(old)
    assert service.validate_token(fresh)["email"] == "hal@example.com"
    assert service.login("hal@example.com", NEW_PASSWORD)["token"]


# --- sessions ---------------------------------------------------------------------------------------
def test_logout_ends_that_token_only(service):
    one = verified(service, "ida@example.com")
    two = service.login("ida@example.com", PASSWORD)["token"]
    service.logout(one)
    with pytest.raises(InvalidToken):
        service.validate_token(one)
    assert service.validate_token(two)["email"] == "ida@example.com"
    service.logout("garbage")  # nothing to end, no error


def test_disable_ends_every_token_and_enable_brings_none_back(service):
    token = verified(service, "jon@example.com")
    service.disable_user("jon@example.com")
    with pytest.raises(InvalidToken):
        service.validate_token(token)
    service.enable_user("jon@example.com")
    with pytest.raises(InvalidToken):
        service.validate_token(token)
    assert service.login("jon@example.com", PASSWORD)["token"]


def test_a_deleted_then_registered_again_address_never_revives_old_tokens(service, session):
    token = verified(service, "kim@example.com")
    old_id = service.validate_token(token)["user_id"]
    service.delete_user("kim@example.com")
    fresh = verified(service, "kim@example.com")
    assert service.validate_token(fresh)["user_id"] != old_id
    with pytest.raises(InvalidToken):
        service.validate_token(token)


def test_confirm_password(service):
    token = verified(service, "lee@example.com")
    assert service.confirm_password(token, PASSWORD)["email"] == "lee@example.com"
    with pytest.raises(WrongPassword):
        service.confirm_password(token, "not it at all")


# --- guessing -----------------------------------------------------------------------------------------
def test_guesses_from_other_addresses_never_lock_the_owner_out(session, passwords):
    service = make_service(session, passwords, LOGIN_ACCOUNT_MAX_FAILURES=1000)
    verified(service, "mae@example.com")
    for attacker in range(10):
        client = "198.51.100.%d" % attacker
        for _ in range(3):
            with pytest.raises(InvalidCredentials):
                service.login("mae@example.com", "guess", client=client)
        with pytest.raises(TooManyAttempts):  # that (account, address) pair is locked
            service.login("mae@example.com", PASSWORD, client=client)
    # the owner, even from an address never seen before, is not
    assert service.login("mae@example.com", PASSWORD, client="192.0.2.1")["token"]


def test_a_botnet_on_one_account_is_stopped_except_at_the_owners_addresses(service):
    verified(service, "max@example.com")
    service.login("max@example.com", PASSWORD, client="192.0.2.1")  # the owner's address
    refused = 0
    for attacker in range(10):
        for _ in range(3):
            with pytest.raises((InvalidCredentials, TooManyAttempts)) as info:
                service.login("max@example.com", "guess", client="198.51.100.%d" % attacker)
            refused += info.type is TooManyAttempts
    assert refused >= 30 - 8  # past LOGIN_ACCOUNT_MAX_FAILURES, guesses are not even judged
    with pytest.raises(TooManyAttempts):  # a new address, even with the right password
        service.login("max@example.com", PASSWORD, client="203.0.113.9")
    assert service.login("max@example.com", PASSWORD, client="192.0.2.1")["token"]


def test_one_address_guessing_many_accounts_is_slowed(service):
    for number in range(6):
        with pytest.raises(InvalidCredentials):
            service.login("user%d@example.com" % number, "guess", client="198.51.100.7")
    with pytest.raises(TooManyAttempts) as slowed:
        service.login("user9@example.com", "guess", client="198.51.100.7")
    assert slowed.value.retry_after > 0
    with pytest.raises(InvalidCredentials):  # another address is not affected
        service.login("user9@example.com", "guess", client="198.51.100.8")


def test_right_logins_do_not_count_against_the_address(service):
    verified(service, "ned@example.com")
    for _ in range(10):
        assert service.login("ned@example.com", PASSWORD, client="192.0.2.5")["token"]


# --- the emails notification renders --------------------------------------------------------------------
@pytest.mark.parametrize("kind, page", [(c.MAIL_VERIFY, "/verify"), (c.MAIL_RESET, "/reset")])
def test_link_emails(kind, page):
    message = accountmail.compose({"kind": kind, "email": "a@example.com", "token": "T-1_x",
                                   "expires_at": "2030-01-02T03:04:05.000Z"},
                                  "https://mp3.example", "mp3svc <m@example.com>")
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    link = "https://mp3.example%s?token=T-1_x" % page
    assert link in text and link in html and "2030-01-02 03:04 UTC" in text
    assert message["To"] == "a@example.com"


def test_notice_email_has_no_link_to_act_on():
    message = accountmail.compose({"kind": c.MAIL_NOTICE, "email": "a@example.com", "token": None},
                                  "http://h", "m@example.com")
    assert "already has an account" in message.get_body(preferencelist=("plain",)).get_content()


def test_bad_account_events_are_dropped_not_raised():
    sent = []
    mailer = types.SimpleNamespace(send=sent.append)
    assert not accountmail.send(mailer, {"kind": "evil"}, "http://h", "m@example.com", None)
    assert not accountmail.send(mailer, {"kind": c.MAIL_VERIFY, "email": "a@example.com"},
                                "http://h", "m@example.com", None)
    assert sent == []


def test_account_email_retries_then_gives_up():
    attempts, pauses = [], []

    def fail(message):
        attempts.append(message)
        raise OSError("down")
    payload = {"kind": c.MAIL_NOTICE, "email": "a@example.com", "token": None}
    assert not accountmail.send(types.SimpleNamespace(send=fail), payload, "http://h", "m@x.org",
                                pauses.append)
    assert len(attempts) == accountmail.ATTEMPTS and len(pauses) == accountmail.ATTEMPTS - 1
