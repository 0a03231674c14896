"""AuthService over real RabbitMQ RPC, on SQLite and on the machine's PostgreSQL."""
import pytest
import sqlalchemy
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from services.auth.exceptions import (
    Busy, InvalidCredentials, InvalidInput, InvalidToken, RegistrationClosed, TooManyAttempts,
    UserExists, WeakPassword)
from services.auth.service import AuthService
from tests.configs import config_defaults
from tests.conftest import JWT_SECRET

PASSWORD = "correct horse battery"


@pytest.fixture
def auth_config(rabbit_config, auth_db_uri, tmp_path):
    config = config_defaults()
    config.update(rabbit_config)
    config.update({
        "DB_URIS": {"auth:Base": auth_db_uri},
        "JWT_SECRET": JWT_SECRET,
        "JWT_TTL": 900,
        "ALLOW_REGISTRATION": True,
        "EMAIL_VERIFICATION": False,
        "LOGIN_MAX_FAILURES": 3,
        "LOGIN_LOCKOUT_SECONDS": 300,
        "HEARTBEAT_DIR": str(tmp_path),
    })
    return config


@pytest.fixture
def auth(runner_factory, auth_config):
    runner = runner_factory(auth_config, AuthService)
    runner.start()
    with ServiceRpcProxy("auth", auth_config, timeout=20) as proxy:
        yield proxy


def test_create_user_login_and_validate(auth, auth_db_uri):
    assert auth.ping() == "pong"
    assert auth.create_user("alice@Example.COM", PASSWORD) == {"email": "alice@example.com"}
    result = auth.login("alice@example.com", PASSWORD)
    assert result["token_type"] == "Bearer" and result["expires_in"] == 900
    user = auth.validate_token(result["token"])
    assert user["email"] == "alice@example.com" and isinstance(user["user_id"], int)

    # the row really is in the configured database, with a hash and not the password
    engine = sqlalchemy.create_engine(auth_db_uri)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT email, password_hash FROM users")).all()
    finally:
        engine.dispose()
    assert [row[0] for row in rows] == ["alice@example.com"]
    assert rows[0][1].startswith("$argon2id$") and PASSWORD not in rows[0][1]


def test_errors_arrive_as_their_own_classes(auth):
    auth.register("bob@example.com", PASSWORD)
    with pytest.raises(UserExists) as exists:
        auth.create_user("bob@example.com", PASSWORD)
    assert "already exists" in str(exists.value)
    with pytest.raises(WeakPassword):
        auth.register("carol@example.com", "password1")
    with pytest.raises(UserExists):
        auth.create_user("bob@example.com", PASSWORD)
    with pytest.raises(InvalidInput):
        auth.register("not-an-email", PASSWORD)
    with pytest.raises(InvalidInput):
        auth.register("carol@example.com", "x" * 7)
    with pytest.raises(InvalidInput):
        auth.register("carol@example.com", "x" * 1025)
    with pytest.raises(InvalidToken):
        auth.validate_token("garbage")
    with pytest.raises(InvalidToken):
        auth.validate_token("")
    # none of them is a generic RemoteError
    with pytest.raises(InvalidCredentials) as wrong:
        auth.login("bob@example.com", "wrong password")
    assert not isinstance(wrong.value, RemoteError)


def test_wrong_password_and_unknown_user_same_answer(auth):
    auth.register("dave@example.com", PASSWORD)
    with pytest.raises(InvalidCredentials) as wrong_password:
        auth.login("dave@example.com", "wrong password")
    with pytest.raises(InvalidCredentials) as unknown:
        auth.login("nobody@example.com", PASSWORD)
    assert str(wrong_password.value) == str(unknown.value)


def test_lockout_survives_rpc_with_retry_after(auth):
    auth.register("erin@example.com", PASSWORD)
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            auth.login("erin@example.com", "wrong password")
    with pytest.raises(TooManyAttempts) as locked:
        auth.login("erin@example.com", PASSWORD)
    assert 0 < locked.value.retry_after <= 301
    # other users can still log in
    auth.register("frank@example.com", PASSWORD)
    assert auth.login("frank@example.com", PASSWORD)["token"]


def test_success_resets_failures(auth):
    auth.register("gina@example.com", PASSWORD)
    for _round in range(2):
        for _ in range(2):
            with pytest.raises(InvalidCredentials):
                auth.login("gina@example.com", "wrong password")
        assert auth.login("gina@example.com", PASSWORD)["token"]


def test_registration_closed(runner_factory, auth_config):
    auth_config["ALLOW_REGISTRATION"] = "false"
    runner_factory(auth_config, AuthService).start()
    with ServiceRpcProxy("auth", auth_config, timeout=20) as auth:
        with pytest.raises(RegistrationClosed):
            auth.register("henry@example.com", PASSWORD)
        assert auth.create_user("henry@example.com", PASSWORD) == {"email": "henry@example.com"}
        assert auth.login("henry@example.com", PASSWORD)["token"]


@pytest.mark.parametrize("verification", [False, True])
def test_concurrent_registrations_of_one_address_make_one_user(auth_config, runner_factory,
                                                               auth_db_uri, verification):
    import eventlet
    auth_config["EMAIL_VERIFICATION"] = verification
    runner_factory(auth_config, AuthService).start()

    def register(_):
        with ServiceRpcProxy("auth", auth_config, timeout=20) as proxy:
            while True:
                try:
                    return proxy.register("ivan@example.com", PASSWORD)
                except Busy as busy:  # more hashes at once than AUTH_HASH_CONCURRENCY: retry
                    eventlet.sleep(busy.retry_after * 0.1)
    results = list(eventlet.GreenPool(6).imap(register, range(6)))
    assert results == [{"email": "ivan@example.com", "status": "verification_sent"}] * 6
    engine = sqlalchemy.create_engine(auth_db_uri)
    try:
        with engine.connect() as conn:
            table = "registrations" if verification else "users"
            rows = conn.execute(sqlalchemy.text("SELECT email FROM %s" % table)).all()
    finally:
        engine.dispose()
    assert [row[0] for row in rows] == ["ivan@example.com"]


def test_short_secret_refuses_to_start(runner_factory, auth_config):
    from services.common.settings import ConfigurationError
    auth_config["JWT_SECRET"] = "too short"
    runner = runner_factory(auth_config, AuthService)
    with pytest.raises(ConfigurationError, match="JWT_SECRET"):
        runner.start()


def test_api_tokens_over_rpc(auth, auth_db_uri):
    """API tokens on either database: made with a login token, checked by prefix, the secret kept
    only as its SHA-256, last_used_at written, expiry and revocation at once, and every one of the
    account's ended by a password change."""
    auth.create_user("tess@example.com", PASSWORD)
    login = auth.login("tess@example.com", PASSWORD)["token"]
    made = auth.create_api_token(login, "ci", ["jobs:write", "jobs:read"], 2)
    other = auth.create_api_token(login, "hooks", ["webhooks"])
    assert made["token"].startswith("mp3_") and made["scopes"] == ["jobs:read", "jobs:write"]
    user = auth.validate_token(made["token"])
    assert user["email"] == "tess@example.com" and user["scopes"] == ["jobs:read", "jobs:write"]
    assert auth.validate_token(login)["scopes"] is None
    with pytest.raises(InvalidToken):
        auth.create_api_token(made["token"], "more", ["jobs:read"])
    listed = {token["id"]: token for token in auth.list_api_tokens(login)}
    assert listed[made["id"]]["last_used_at"] is not None
    assert listed[other["id"]]["last_used_at"] is None and listed[other["id"]]["expires_at"] is None

    engine = sqlalchemy.create_engine(auth_db_uri)
    try:
        with engine.begin() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT * FROM api_tokens")).all()
            assert not [row for row in rows if made["token"][4:] in " ".join(map(str, row))]
            conn.execute(sqlalchemy.text(
                "UPDATE api_tokens SET expires_at = created_at WHERE id = :id"), {"id": made["id"]})
    finally:
        engine.dispose()
    with pytest.raises(InvalidToken, match="expired"):
        auth.validate_token(made["token"])

    auth.revoke_api_token(login, made["id"])
    assert [token["id"] for token in auth.list_api_tokens(login)] == [other["id"]]
    assert auth.validate_token(other["token"])["scopes"] == ["webhooks"]
    fresh = auth.change_password(login, PASSWORD, "a brand new passphrase")["token"]
    with pytest.raises(InvalidToken):
        auth.validate_token(other["token"])
    assert auth.list_api_tokens(fresh) == []
    # deleting the account (its tokens first: api_tokens.user_id references users.id)
    last = auth.create_api_token(fresh, "last", ["jobs:read"])
    assert auth.delete_user("tess@example.com")["deleted"] is True
    with pytest.raises(InvalidToken):
        auth.validate_token(last["token"])
