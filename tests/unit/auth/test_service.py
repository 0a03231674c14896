"""AuthService's logic with real collaborators (SQLite, argon2, PyJWT), no broker."""
import base64
import datetime
import hashlib
import hmac
import json
import types

import jwt
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select

from services.auth.dependencies import ALGORITHM, AUDIENCE, ISSUER, Tokens
from services.auth.settings import MIN_SECRET_BYTES, AuthSettings
from services.common.settings import ConfigurationError
from services.auth.exceptions import (
    InvalidCredentials, InvalidInput, InvalidToken, RegistrationClosed,
    TooManyAttempts, UserExists, WeakPassword)
from services.auth.models import Counter, User
from services.auth.service import AuthService
from services.common.utils import utcnow
from tests.configs import config_defaults

SECRET = "unit-test-secret-" + "k" * 40
PASSWORD = "correct horse battery"
MAX_FAILURES = 3


@pytest.fixture
def tokens():
    return Tokens(SECRET, 600)


def make_service(session, passwords, tokens, **config):
    settings = {"JWT_SECRET": SECRET, "ALLOW_REGISTRATION": True, "EMAIL_VERIFICATION": False,
                "LOGIN_MAX_FAILURES": MAX_FAILURES, "LOGIN_LOCKOUT_SECONDS": 120}
    settings.update(config)
    return worker_factory(AuthService, db=types.SimpleNamespace(session=session),
                          passwords=passwords, tokens=tokens,
                          settings=AuthSettings.load(dict(config_defaults(), **settings)))


@pytest.fixture
def service(session, passwords, tokens):
    return make_service(session, passwords, tokens)


# --- users ------------------------------------------------------------------------------------
def test_register_creates_a_user_with_a_hashed_password(service, session):
    assert service.register("alice@example.com", PASSWORD) == {
        "email": "alice@example.com", "status": "verification_sent"}
    user = session.scalar(select(User).where(User.email == "alice@example.com"))
    assert user is not None
    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2id$")


def test_register_lowercases_the_domain_only(service):
    assert service.register("  Alice@Example.COM ", PASSWORD)["email"] == "Alice@example.com"


def test_create_user_works_when_registration_is_closed(session, passwords, tokens):
    service = make_service(session, passwords, tokens, ALLOW_REGISTRATION=False)
    with pytest.raises(RegistrationClosed):
        service.register("bob@example.com", PASSWORD)
    assert session.scalar(select(User).where(User.email == "bob@example.com")) is None
    assert service.create_user("bob@example.com", PASSWORD) == {"email": "bob@example.com"}


@pytest.mark.parametrize("closed", [False, "false", "0", "no", "off"])
def test_registration_closed_from_yaml_strings(session, passwords, tokens, closed):
    service = make_service(session, passwords, tokens, ALLOW_REGISTRATION=closed)
    with pytest.raises(RegistrationClosed):
        service.register("carol@example.com", PASSWORD)


def test_duplicate_user(service, session):
    first = service.register("dup@example.com", PASSWORD)
    # a taken address: the same answer, and nothing changes (the old password still works)
    assert service.register("dup@example.com", "another password") == first
    assert service.login("dup@example.com", PASSWORD)["token"]
    with pytest.raises(InvalidCredentials):
        service.login("dup@example.com", "another password")
    with pytest.raises(UserExists):
        service.create_user("dup@EXAMPLE.com", "another password")


@pytest.mark.parametrize("email", [
    "", "plainaddress", "@example.com", "a@b", "a@@example.com", "a b@example.com",
    "a@exa mple.com", "a\r\n@example.com", "a@example.com\nBcc: x@y.z", "x" * 65 + "@example.com",
    "a@" + "d" * 250 + ".com", None, 42])
def test_invalid_email(service, email):
    with pytest.raises(InvalidInput):
        service.register(email, PASSWORD)


@pytest.mark.parametrize("length", [0, 1, 7, 1025, 5000])
def test_password_length_outside_8_to_1024(service, length):
    with pytest.raises(WeakPassword):
        service.register("len%d@example.com" % length, "p" * length)


@pytest.mark.parametrize("length", [8, 1024])
def test_password_length_limits_are_inclusive(service, length):
    assert service.register("ok%d@example.com" % length, ("pq7" * 400)[:length])["email"]


def test_password_missing(service):
    with pytest.raises(InvalidInput):
        service.register("nopass@example.com", None)


# --- login ------------------------------------------------------------------------------------
def test_login_returns_a_bearer_token_that_validates(service, tokens):
    service.register("dave@example.com", PASSWORD)
    result = service.login("dave@example.com", PASSWORD)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == tokens.ttl == 600
    user = service.validate_token(result["token"])
    assert user["email"] == "dave@example.com"
    claims = jwt.decode(result["token"], SECRET, algorithms=["HS256"], audience=AUDIENCE,
                        issuer=ISSUER)
    assert claims["sub"] == str(user["user_id"]) and claims["sid"]
    assert 590 <= claims["exp"] - claims["iat"] <= 610


def test_login_email_domain_is_case_insensitive(service):
    service.register("erin@example.com", PASSWORD)
    token = service.login(" erin@EXAMPLE.com", PASSWORD)["token"]
    assert service.validate_token(token)["email"] == "erin@example.com"


def test_wrong_password_and_unknown_user_look_the_same(service):
    service.register("frank@example.com", PASSWORD)
    with pytest.raises(InvalidCredentials) as wrong_password:
        service.login("frank@example.com", "not the password")
    with pytest.raises(InvalidCredentials) as unknown_user:
        service.login("nobody@example.com", PASSWORD)
    assert wrong_password.value.args == unknown_user.value.args
    assert "password" in str(wrong_password.value)


@pytest.mark.parametrize("email, password", [
    (None, PASSWORD), ("frank@example.com", None), ("", ""), (123, PASSWORD),
    ("frank@example.com", b"bytes password")], ids=["no-email", "no-password", "empty",
                                                    "int-email", "bytes-password"])
def test_login_garbage_is_invalid_credentials(service, email, password):
    service.register("frank@example.com", PASSWORD)
    with pytest.raises(InvalidCredentials):
        service.login(email, password)


def test_login_with_an_overlong_password_is_refused_alike_for_known_and_unknown_users(service):
    service.register("frank@example.com", PASSWORD)
    outcomes = []
    for email in ("frank@example.com", "nobody@example.com"):
        with pytest.raises((InvalidCredentials, InvalidInput)) as info:
            service.login(email, PASSWORD + "x" * 1025)
        outcomes.append((type(info.value), info.value.args))
    assert outcomes[0] == outcomes[1]


def test_lockout_after_max_failures(service, session):
    service.register("gina@example.com", PASSWORD)
    for _ in range(MAX_FAILURES):
        with pytest.raises(InvalidCredentials):
            service.login("gina@example.com", "wrong password")
    # locked: even the right password is refused until the lockout ends
    with pytest.raises(TooManyAttempts) as locked:
        service.login("gina@example.com", PASSWORD)
    assert 0 < locked.value.retry_after <= 121
    with pytest.raises(TooManyAttempts):
        service.login("gina@example.com", "wrong password")
    # other accounts are not affected
    service.register("hank@example.com", PASSWORD)
    assert service.login("hank@example.com", PASSWORD)["token"]

    # when the lockout has passed, the right password works and clears the record
    throttle = session.get(Counter, "login:gina@example.com|-")
    throttle.locked_until = utcnow() - datetime.timedelta(seconds=1)
    session.commit()
    assert service.login("gina@example.com", PASSWORD)["token"]
    assert session.get(Counter, "login:gina@example.com|-") is None


def test_lockout_applies_to_unknown_users_too(service):
    for _ in range(MAX_FAILURES):
        with pytest.raises(InvalidCredentials):
            service.login("ghost@example.com", "wrong password")
    with pytest.raises(TooManyAttempts):
        service.login("ghost@example.com", "wrong password")


def test_successful_login_resets_the_failure_count(service, session):
    service.register("ivan@example.com", PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            service.login("ivan@example.com", "wrong password")
    assert service.login("ivan@example.com", PASSWORD)["token"]
    assert session.get(Counter, "login:ivan@example.com|-") is None
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            service.login("ivan@example.com", "wrong password")
    assert service.login("ivan@example.com", PASSWORD)["token"]  # not locked


def test_failures_outside_the_window_start_over(service, session):
    service.register("judy@example.com", PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            service.login("judy@example.com", "wrong password")
    throttle = session.get(Counter, "login:judy@example.com|-")
    throttle.window_start = utcnow() - datetime.timedelta(seconds=121)
    session.commit()
    with pytest.raises(InvalidCredentials):
        service.login("judy@example.com", "wrong password")
    assert session.get(Counter, "login:judy@example.com|-").count == 1
    assert service.login("judy@example.com", PASSWORD)["token"]


# --- tokens -----------------------------------------------------------------------------------
def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**changes):
    now = datetime.datetime.now(datetime.timezone.utc)
    claims = {"sub": "1", "sid": "s", "iat": int(now.timestamp()),
              "exp": int((now + datetime.timedelta(minutes=5)).timestamp()),
              "iss": ISSUER, "aud": AUDIENCE}
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _hand_made(header, claims, key=None):
    signing_input = "%s.%s" % (_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()))
    if key is None:
        return signing_input + "."
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def test_a_well_formed_token_validates_only_with_its_session(service, session):
    service.create_user("kate@example.com", PASSWORD)
    issued = jwt.decode(service.login("kate@example.com", PASSWORD)["token"], SECRET,
                        algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
    token = jwt.encode(_claims(sub=issued["sub"], sid=issued["sid"]), SECRET, algorithm="HS256")
    assert service.validate_token(token)["email"] == "kate@example.com"
    assert ALGORITHM == "HS256"
    # well signed, but no such session (or another user's): refused
    for claims in (_claims(sub=issued["sub"], sid="made-up"), _claims(sub="999", sid=issued["sid"]),
                   _claims(sub="kate@example.com", sid=issued["sid"])):
        with pytest.raises(InvalidToken):
            service.validate_token(jwt.encode(claims, SECRET, algorithm="HS256"))


BAD_TOKENS = {
    "alg-none": lambda: _hand_made({"alg": "none", "typ": "JWT"}, _claims()),
    "alg-None-capital": lambda: _hand_made({"alg": "None", "typ": "JWT"}, _claims()),
    "alg-none-with-signature": lambda: _hand_made({"alg": "none", "typ": "JWT"}, _claims(),
                                                  SECRET),
    "wrong-key": lambda: jwt.encode(_claims(), "another-secret-" + "z" * 40, algorithm="HS256"),
    "hs512-same-key": lambda: jwt.encode(_claims(), SECRET, algorithm="HS512"),
    # the RS256/HS256 key-confusion attack: RS256 in the header, HMAC signature with our secret
    "rs256-header": lambda: _hand_made({"alg": "RS256", "typ": "JWT"}, _claims(), SECRET),
    "expired": lambda: jwt.encode(_claims(exp=int(datetime.datetime.now().timestamp()) - 120,
                                          iat=int(datetime.datetime.now().timestamp()) - 900),
                                  SECRET, algorithm="HS256"),
    "missing-exp": lambda: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
    "missing-sub": lambda: jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"),
    "missing-sid": lambda: jwt.encode(_claims(sid=None), SECRET, algorithm="HS256"),
    "email-sub": lambda: jwt.encode(_claims(sub="kate@example.com"), SECRET, algorithm="HS256"),
    "missing-iat": lambda: jwt.encode(_claims(iat=None), SECRET, algorithm="HS256"),
    "wrong-aud": lambda: jwt.encode(_claims(aud="someone-else"), SECRET, algorithm="HS256"),
    "missing-aud": lambda: jwt.encode(_claims(aud=None), SECRET, algorithm="HS256"),
    "wrong-iss": lambda: jwt.encode(_claims(iss="evil"), SECRET, algorithm="HS256"),
    "missing-iss": lambda: jwt.encode(_claims(iss=None), SECRET, algorithm="HS256"),
    "tampered-payload": lambda: _tamper(jwt.encode(_claims(), SECRET, algorithm="HS256")),
    "garbage": lambda: "not.a.token",
    "garbage-one-part": lambda: "abcdef",
    "garbage-base64": lambda: "eyJhbGciOiJIUzI1NiJ9.%%%.***",
    "empty": lambda: "",
    "none": lambda: None,
    "bytes": lambda: b"abc.def.ghi",
}


def _tamper(token):
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "2"
    return "%s.%s.%s" % (header, _b64(json.dumps(claims).encode()), signature)


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_bad_tokens_are_invalid_token(service, kind):
    token = BAD_TOKENS[kind]()
    with pytest.raises(InvalidToken) as info:
        service.validate_token(token)
    assert str(info.value)  # a sentence for the user


def test_expired_token_says_so(service):
    with pytest.raises(InvalidToken, match="expired"):
        service.validate_token(BAD_TOKENS["expired"]())


def test_tokens_issued_by_another_instance_with_the_same_secret_validate():
    token = Tokens(SECRET, 60).issue(7, "session-id")
    assert Tokens(SECRET, 3600).check(token) == (7, "session-id")
    with pytest.raises(InvalidToken):
        Tokens("x" * 40, 3600).check(token)


# --- secrets ----------------------------------------------------------------------------------
def load_secret(config):
    return AuthSettings.fields()["JWT_SECRET"].load(config)


@pytest.mark.parametrize("secret", [None, "", "short", "s" * (MIN_SECRET_BYTES - 1)])
def test_load_secret_refuses_short_secrets(secret):
    config = {} if secret is None else {"JWT_SECRET": secret}
    with pytest.raises(ConfigurationError, match="JWT_SECRET"):
        load_secret(config)


def test_load_secret_counts_bytes_and_accepts_32():
    assert load_secret({"JWT_SECRET": "s" * 32}) == "s" * 32
    assert load_secret({"JWT_SECRET": "\u00e9" * 16}) == "\u00e9" * 16  # 32 bytes in UTF-8
    with pytest.raises(ConfigurationError):
        load_secret({"JWT_SECRET": "\u00e9" * 15 + "x"})  # 31 bytes
