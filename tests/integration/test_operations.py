"""Operations over real RPC (as `nameko shell` calls them) and account safety over real HTTP:
argument checking, disable/enable, deleting a user with everything of theirs, the summary, the
atomic failed-login count and plain mailboxes."""
import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.auth.exceptions import (
    Busy, InvalidCredentials, InvalidInput, TooManyAttempts, UnknownUser)
from services.auth.service import AuthService
from tests.configs import config_defaults
from tests.conftest import JWT_SECRET
from tests.integration.conftest import bearer
from tests.integration.test_quotas import NOTHING, chunks, ids, stored

PASSWORD = "correct horse battery"


@pytest.fixture
def rpc(stack):
    proxies, started = {}, []

    def get(service):
        if service not in proxies:
            started.append(ServiceRpcProxy(service, stack.config, timeout=30))
            proxies[service] = started[-1].start()
        return proxies[service]
    yield get
    for proxy in started:
        proxy.stop()


INJECTIONS = [{"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, ["a" * 32], None, 42, True, 1.5,
              "a" * 31, "../" + "a" * 29, "A" * 32]


def test_ops_arguments_are_checked_before_mongodb(stack, rpc, db, media):
    token = stack.token_for("victim@example.com")
    job_id = stack.upload(token, media.video("ops.mp4", duration=1.0)).json()["job_id"]
    stack.wait_job(token, job_id)
    stack.mail.wait_for(1)
    db.jobs.update_one({"_id": job_id}, {"$set": {"status": "failed"}})  # requeueable if reached

    def state():
        return [(d["_id"], d["status"], d["attempts"], d["updated_at"]) for d in db.jobs.find()]
    before = state()
    gateway, auth = rpc("gateway"), rpc("auth")
    for value in INJECTIONS:
        with pytest.raises(InvalidInput, match="job id"):
            gateway.requeue_job(value)
        if not isinstance(value, str):
            for call in (gateway.list_jobs, gateway.delete_user, auth.disable_user,
                         auth.enable_user, auth.delete_user):
                with pytest.raises(InvalidInput):
                    call(value)
        if not (isinstance(value, int) and not isinstance(value, bool)):
            with pytest.raises(InvalidInput, match="limit"):
                gateway.list_jobs("victim@example.com", limit=value)
    assert state() == before
    assert [job["job_id"] for job in gateway.list_jobs("victim@example.com", 1)] == [job_id]


def test_disable_user_stops_their_tokens_and_logins(stack, rpc):
    token = stack.token_for("mallory@example.com")
    assert stack.http.get(stack.url("/jobs"), headers=bearer(token)).status_code == 200
    assert rpc("auth").disable_user("mallory@EXAMPLE.com") == {"email": "mallory@example.com",
                                                               "disabled": True}
    response = stack.http.get(stack.url("/jobs"), headers=bearer(token))
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert "disabled" in response.json()["message"]
    login = stack.login("mallory@example.com", PASSWORD)
    assert login.status_code == 401 and "disabled" in login.json()["message"]
    # a wrong password tells nothing about the account
    assert stack.login("mallory@example.com", "wrong password").json()["message"] == \
        stack.login("nobody@example.com", "wrong password").json()["message"]

    assert rpc("auth").enable_user("mallory@example.com")["disabled"] is False
    # enabling brings no token back (disabling ended every session): a new login is needed
    assert stack.http.get(stack.url("/jobs"), headers=bearer(token)).status_code == 401
    assert stack.login("mallory@example.com", PASSWORD).status_code == 200
    with pytest.raises(UnknownUser):
        rpc("auth").disable_user("nobody@example.com")


def test_delete_user_leaves_nothing_of_theirs_and_summary_counts(stack, rpc, db, media, tmp_path):
    token = stack.token_for("leaving@example.com")
    other = stack.token_for("staying@example.com")
    done = stack.upload(token, media.video("leaving.mp4", duration=1.0)).json()["job_id"]
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not media" * 1000)
    failed = stack.upload(token, str(junk)).json()["job_id"]
    kept = stack.upload(other, media.video("staying.mp4", duration=1.0)).json()["job_id"]
    for owner, job_id in ((token, done), (token, failed), (other, kept)):
        stack.wait_job(owner, job_id)
    stack.mail.wait_for(3)

    summary = rpc("gateway").summary()
    mp3_bytes = sum(doc["length"] for doc in db["mp3s.files"].find())
    assert summary["jobs"] == {"done": 2, "failed": 1}
    assert summary["files"]["mp3s"] == {"files": 2, "bytes": mp3_bytes}
    assert summary["files"]["videos"] == {"files": 0, "bytes": 0}
    assert summary["bytes_stored"] == mp3_bytes
    assert summary["users"] == {"users": 2, "disabled": 0, "unverified": 0}
    assert summary["users_with_jobs"] == 2

    theirs = [(bucket, doc[field]) for doc in db.jobs.find({"owner": "leaving@example.com"})
              for bucket, field in (("videos", "video_id"), ("mp3s", "mp3_id")) if doc.get(field)]
    assert theirs and all(chunks(db, bucket, file_id) for bucket, file_id in theirs)
    # a webhook of theirs (a literal public address: nothing is resolved, and no job of theirs
    # finishes after it, so nothing is ever posted) goes too
    hook = stack.http.post(stack.url("/webhooks"), headers=bearer(token),
                           json={"url": "https://93.184.215.14/hook", "events": ["job.finished"]})
    assert hook.status_code == 201, hook.text
    result = rpc("gateway").delete_user("leaving@example.com")
    assert result == {"email": "leaving@example.com", "jobs": 2, "files": 0, "webhooks": 1,
                      "user_deleted": True}
    assert db.webhooks.count_documents({}) == 0
    assert [doc["owner"] for doc in db.jobs.find()] == ["staying@example.com"]
    for bucket in ("videos.files", "mp3s.files"):
        assert ids(db[bucket], {"metadata.owner": "leaving@example.com"}) == []
    assert not any(chunks(db, bucket, file_id) for bucket, file_id in theirs)
    assert stored(db)["mp3s.files"] == 1
    assert stack.http.get(stack.url("/jobs"), headers=bearer(token)).status_code == 401
    assert stack.login("leaving@example.com", PASSWORD).status_code == 401
    assert stack.job(other, kept).json()["status"] == "done"
    assert rpc("gateway").summary()["users"] == {"users": 1, "disabled": 0, "unverified": 0}
    # again: nothing left to delete, and it says so
    assert rpc("gateway").delete_user("leaving@example.com")["user_deleted"] is False

    rpc("gateway").delete_user("staying@example.com")
    assert stored(db) == NOTHING


# --- account safety over HTTP -------------------------------------------------------------------
@pytest.mark.parametrize("email", [
    "a,b,c,x@example.test", "eve@example.com, bob@example.com", '"Eve" <eve@example.com>',
    "Eve <eve@example.com>", '"eve"@example.com', '"a b"@example.com', "a b@example.com",
    "a@b@example.com", "eve@example.com>", "<eve@example.com>", "eve;bob@example.com",
    "eve@example..com", "eve.@example.com", ".eve@example.com", "eve@-example.com",
    "eve@example.com\r\nBcc: x@example.com", "eve(comment)@example.com", "eve@[127.0.0.1]",
    "\u00e9ve@example.com"])
def test_registration_takes_one_plain_mailbox(stack, email):
    response = stack.register(email, PASSWORD)
    assert response.status_code == 400, (email, response.text)
    assert response.json()["error"] == "invalid_input"


@pytest.mark.parametrize("email", ["o'neil+tag@example.co.uk", "first.last@sub.example.com",
                                   "x_y-z@example-host.io"])
def test_plain_mailboxes_register(stack, email):
    assert stack.register(email, PASSWORD).status_code == 202


def test_concurrent_wrong_passwords_judge_at_most_the_limit(stack):
    stack.register("target@example.com", PASSWORD)
    limit = stack.config["LOGIN_MAX_FAILURES"]

    def attempt(_):
        import requests
        return requests.post(stack.url("/login"), auth=("target@example.com", "wrong password"))
    statuses = [r.status_code for r in eventlet.GreenPool(20).imap(attempt, range(20))]
    judged = statuses.count(401)
    assert 1 <= judged <= limit, statuses
    assert set(statuses) <= {401, 429, 503}, statuses
    assert stack.login("target@example.com", PASSWORD).status_code == 429  # locked out


# --- the same on auth alone, on SQLite and PostgreSQL -------------------------------------------
@pytest.fixture
def auth_alone(runner_factory, rabbit_config, auth_db_uri, tmp_path):
    config = config_defaults()
    config.update(rabbit_config)
    config.update({"DB_URIS": {"auth:Base": auth_db_uri}, "JWT_SECRET": JWT_SECRET,
                   "LOGIN_MAX_FAILURES": 3, "HEARTBEAT_DIR": str(tmp_path), "max_workers": 10,
                   "HASH_CONCURRENCY": 8})
    runner_factory(config, AuthService).start()
    return config


def test_twenty_concurrent_wrong_passwords_over_rpc(auth_alone):
    with ServiceRpcProxy("auth", auth_alone, timeout=30) as auth:
        auth.create_user("ivy@example.com", PASSWORD)

    def attempt(_):
        with ServiceRpcProxy("auth", auth_alone, timeout=30) as auth:
            try:
                auth.login("ivy@example.com", "wrong password")
            except InvalidCredentials:
                return "judged"
            except TooManyAttempts:
                return "locked"
            except Busy:
                return "busy"
    outcomes = list(eventlet.GreenPool(20).imap(attempt, range(20)))
    assert 1 <= outcomes.count("judged") <= 3, outcomes
    assert outcomes.count("judged") + outcomes.count("locked") + outcomes.count("busy") == 20
