"""Accounts people own (issue 16), against the services as real `nameko run` processes, real HTTP,
RabbitMQ, the users database and a real SMTP sink (aiosmtpd): email verification, the notice to
the owner of a taken address, password reset and change, logout, account deletion, and the attacks
the issue names (address enumeration by status and timing, tokens outliving their account or a
logout, lockouts by strangers, cross-site registrations)."""
import statistics
import time

import pytest
import requests

from tests.conftest import JWT_SECRET
from tests.helpers import MailSink
from tests.integration.accounts import (
    LINK_RE, PASSWORD, bearer, link_in, login, mails_to, new_link, post, token_of,
    verified_token, wait_mail)
from tests.integration.processes import ProcessStack

NEW_PASSWORD = "a brand new passphrase"


def start(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink, services, **env):
    settings = {"AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri, "MONGO_DB": mongo_db,
                "JWT_SECRET": JWT_SECRET, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": mail_sink.port,
                "EMAIL_VERIFICATION": "true", "AUTH_RPC_TIMEOUT": 20,
                "REGISTER_RATE": "1000/minute", "LOGIN_RATE": "1000/minute"}
    settings.update(env)
    stack = ProcessStack(tmp_path, settings).start(*services)
    try:
        stack.healthy()
    except BaseException:
        stack.stop()
        raise
    stack.mail = mail_sink
    return stack


@pytest.fixture
def site(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink):
    stack = start(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink,
                  ("auth", "gateway", "notification"))
    yield stack
    stack.stop()


# --- verification ------------------------------------------------------------------------------------
def test_register_confirm_by_email_then_log_in(site):
    email = "new@example.com"
    answer = post(site, "/register", {"email": email, "password": PASSWORD})
    expected = {"email": email, "status": "verification_sent"}
    assert (answer.status_code, answer.json()) == (202, expected)
    wrong = login(site, email, "not the password")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_credentials")
    unverified = login(site, email, PASSWORD)  # only after the right password
    assert (unverified.status_code, unverified.json()["error"]) == (403, "email_unverified")

    [mail] = wait_mail(site.mail, email)
    assert "Confirm" in mail["Subject"]
    link = link_in(mail, "verify")
    assert link.startswith(site.base + "/verify?token=")
    page = requests.get(link, timeout=30)  # the web page the link opens
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    confirmed = post(site, "/verify", {"token": token_of(link)})
    assert (confirmed.status_code, confirmed.json()) == (200, {"email": email, "verified": True})
    assert login(site, email, PASSWORD).status_code == 200
    again = post(site, "/verify", {"token": token_of(link)})  # once
    assert (again.status_code, again.json()["error"]) == (400, "invalid_token")


def test_resend_replaces_the_link(site):
    email = "late@example.com"
    post(site, "/register", {"email": email, "password": PASSWORD})
    first = link_in(wait_mail(site.mail, email)[0], "verify")
    for address in (email, "nobody@example.com"):
        response = post(site, "/verify/resend", {"email": address})
        assert (response.status_code, response.json()) == (
            202, {"email": address, "status": "verification_sent"})
    second = new_link(site.mail, email, "verify", [first])
    assert post(site, "/verify", {"token": token_of(first)}).status_code == 400
    assert post(site, "/verify", {"token": token_of(second)}).status_code == 200
    assert mails_to(site.mail, "nobody@example.com") == []


def test_taken_address_same_answer_a_daily_notice_and_nothing_changes(site):
    email = "owner@example.com"
    token = verified_token(site, email)
    answers = [post(site, "/register", {"email": email, "password": "attacker's password %d" % i})
               for i in range(3)]
    assert {(a.status_code, a.text) for a in answers} == {
        (202, '{"email": "owner@example.com", "status": "verification_sent"}')}
    [notice] = wait_mail(site.mail, email, subject="Someone tried to register")
    assert "already has an account" in MailSink.text_of(notice)
    assert LINK_RE.search(MailSink.text_of(notice)) is None
    assert requests.get(site.base + "/jobs", headers=bearer(token), timeout=30).status_code == 200
    assert login(site, email, "attacker's password 0").status_code == 401
    # no further notice (at most one a day): a reset email asked for after them arrives alone
    post(site, "/password/forgot", {"email": email})
    mails = wait_mail(site.mail, email, 3)
    assert sorted(m["Subject"] for m in mails) == [
        "Choose a new mp3svc password", "Confirm your email address for mp3svc",
        "Someone tried to register your address at mp3svc"]


def test_new_and_taken_addresses_look_the_same_in_status_body_and_time(site):
    """The attack: read which addresses have accounts off POST /register. Measured: 10 of each,
    interleaved; the means must be within a factor of 2 of each other."""
    taken = ["taken%d@example.com" % i for i in range(10)]
    for email in taken:
        post(site, "/register", {"email": email, "password": PASSWORD})
    times = {"new": [], "taken": []}
    bodies = {"new": set(), "taken": set()}
    for i in range(10):
        for kind, email in (("new", "fresh%d@example.com" % i), ("taken", taken[i])):
            began = time.perf_counter()
            response = post(site, "/register", {"email": email, "password": PASSWORD})
            times[kind].append(time.perf_counter() - began)
            bodies[kind].add((response.status_code, response.text.replace(email, "E")))
    assert bodies["new"] == bodies["taken"] == {
        (202, '{"email": "E", "status": "verification_sent"}')}
    new, old = statistics.mean(times["new"]), statistics.mean(times["taken"])
    print("register mean seconds: new %.4f, taken %.4f (ratio %.2f)" % (new, old, new / old))
    assert 0.5 < new / old < 2.0


# --- reset, change, logout, delete ----------------------------------------------------------------
def test_forgot_then_reset_by_email(site):
    email = "forgetful@example.com"
    old_token = verified_token(site, email)
    answers = [post(site, "/password/forgot", {"email": address})
               for address in (email, "nobody@example.com")]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].text.replace(email, "E") == answers[1].text.replace("nobody@example.com", "E")
    link = link_in(wait_mail(site.mail, email, subject="new mp3svc password")[0], "reset")
    assert link.startswith(site.base + "/reset?token=")
    assert requests.get(link, timeout=30).status_code == 200
    weak = post(site, "/password/reset", {"token": token_of(link), "password": "password1"})
    assert (weak.status_code, weak.json()["error"]) == (400, "weak_password")
    done = post(site, "/password/reset", {"token": token_of(link), "password": NEW_PASSWORD})
    assert done.status_code == 204
    reused = post(site, "/password/reset", {"token": token_of(link), "password": NEW_PASSWORD})
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_token")
    assert requests.get(site.base + "/jobs", headers=bearer(old_token), timeout=30).status_code == 401
    assert login(site, email, PASSWORD).status_code == 401
    assert login(site, email, NEW_PASSWORD).status_code == 200
    assert mails_to(site.mail, "nobody@example.com") == []


def test_change_password_and_logout_end_tokens_at_once(site):
    email = "careful@example.com"
    first = verified_token(site, email)
    second = login(site, email, PASSWORD).json()["token"]
    url = site.base + "/account/password"
    wrong = requests.put(url, json={"current_password": "nope nope", "new_password": NEW_PASSWORD},
                         headers=bearer(first), timeout=30)
    assert (wrong.status_code, wrong.json()["error"]) == (403, "wrong_password")
    changed = requests.put(url, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                           headers=bearer(first), timeout=30)
    assert changed.status_code == 200 and changed.headers["Cache-Control"] == "no-store"
    fresh = changed.json()["token"]
    for old in (first, second):
        assert requests.get(site.base + "/jobs", headers=bearer(old), timeout=30).status_code == 401
    assert requests.get(site.base + "/jobs", headers=bearer(fresh), timeout=30).status_code == 200

    # logout: that token stops at once (no waiting for its expiry), another one lives on
    other = login(site, email, NEW_PASSWORD).json()["token"]
    assert post(site, "/logout", headers=bearer(fresh)).status_code == 204
    after = requests.get(site.base + "/jobs", headers=bearer(fresh), timeout=30)
    assert (after.status_code, after.json()["error"]) == (401, "invalid_token")
    assert requests.get(site.base + "/jobs", headers=bearer(other), timeout=30).status_code == 200


def test_cookie_logout_revokes_the_token_itself(site):
    email = "cookie@example.com"
    verified_token(site, email)
    browser = requests.Session()
    assert browser.post(site.base + "/session", json={"email": email, "password": PASSWORD},
                        timeout=30).status_code == 200
    token = browser.cookies.get("mp3svc_token")
    assert browser.delete(site.base + "/session", headers={"Origin": site.base},
                          timeout=30).status_code == 204
    # even a copy of the cookie taken before the logout no longer works
    stolen = requests.get(site.base + "/jobs", cookies={"mp3svc_token": token}, timeout=30)
    assert stolen.status_code == 401


def test_delete_account_then_the_same_address_again(site):
    email = "leaving@example.com"
    token = verified_token(site, email)
    url = site.base + "/account"
    wrong = requests.delete(url, json={"password": "not it at all"}, headers=bearer(token),
                            timeout=30)
    assert (wrong.status_code, wrong.json()["error"]) == (403, "wrong_password")
    tus = requests.post(site.base + "/uploads", headers=dict(bearer(token), **{
        "Tus-Resumable": "1.0.0", "Upload-Length": "100"}), timeout=30)
    assert tus.status_code == 201
    assert len(requests.get(site.base + "/jobs", headers=bearer(token), timeout=30).json()[
        "jobs"]) <= 1
    assert requests.delete(url, json={"password": PASSWORD}, headers=bearer(token),
                           timeout=30).status_code == 204
    assert requests.get(site.base + "/jobs", headers=bearer(token), timeout=30).status_code == 401
    assert login(site, email, PASSWORD).status_code == 401
    # the address registers again: a new account, and the old token never comes back
    fresh = verified_token(site, email)
    assert requests.get(site.base + "/jobs", headers=bearer(fresh), timeout=30).json() == {"jobs": []}
    old = requests.get(site.base + "/jobs", headers=bearer(token), timeout=30)
    assert (old.status_code, old.json()["error"]) == (401, "invalid_token")


# --- guessing -------------------------------------------------------------------------------------
@pytest.fixture
def proxied(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink):
    """Behind a trusted proxy (127.0.0.1), so X-Forwarded-For names the client address."""
    stack = start(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink,
                  ("auth", "gateway", "notification"), TRUSTED_PROXIES="127.0.0.1")
    yield stack
    stack.stop()


def test_guesses_from_other_addresses_never_lock_the_owner_out(proxied):
    email = "target@example.com"
    verified_token(proxied, email)
    assert login(proxied, email, PASSWORD, client="192.0.2.10").status_code == 200
    for attacker in range(8):
        client = "198.51.100.%d" % attacker
        codes = [login(proxied, email, "guess %d" % i, client=client).status_code
                 for i in range(7)]
        assert codes == [401] * 5 + [429] * 2, codes
    # the owner, at their own address and at one never used before, is let in
    assert login(proxied, email, PASSWORD, client="192.0.2.10").status_code == 200
    assert login(proxied, email, PASSWORD, client="203.0.113.77").status_code == 200
    # while a locked-out guesser, even with the right password, is not
    locked = login(proxied, email, PASSWORD, client="198.51.100.0")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


# --- the edge -------------------------------------------------------------------------------------
def test_json_routes_refuse_other_content_types(site):
    """A third-party page can POST a form or text/plain to /register without a CORS preflight;
    those content types get 415 and create nothing."""
    body = '{"email": "csrf@example.com", "password": "%s"}' % PASSWORD
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = requests.post(site.base + "/register", data=body, timeout=30,
                                 headers={"Content-Type": content_type})
        assert (response.status_code, response.json()["error"]) == (415, "unsupported_media_type")
    for path in ("/verify", "/verify/resend", "/password/forgot", "/password/reset", "/session"):
        response = requests.post(site.base + path, data="{}", timeout=30,
                                 headers={"Content-Type": "text/plain"})
        assert response.status_code == 415, path
    # nothing was registered: a registration sent after them is the only one mailed
    post(site, "/register", {"email": "marker@example.com", "password": PASSWORD})
    wait_mail(site.mail, "marker@example.com")
    assert mails_to(site.mail, "csrf@example.com") == []


def test_headers(site):
    token = verified_token(site, "headers@example.com")
    for path in ("/livez", "/healthz", "/", "/nowhere", "/openapi.json"):
        response = requests.get(site.base + path, timeout=30)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    for path in ("/jobs", "/session"):
        response = requests.get(site.base + path, headers=bearer(token), timeout=30)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_host_prefixed_cookie_behind_https(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink):
    stack = start(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink, ("auth", "gateway"),
                  PUBLIC_URL="https://mp3.example.org", EMAIL_VERIFICATION="false")
    try:
        post(stack, "/register", {"email": "tls@example.com", "password": PASSWORD})
        response = post(stack, "/session", {"email": "tls@example.com", "password": PASSWORD})
        assert response.status_code == 200
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-mp3svc_token=")
        assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
        token = cookie.split(";", 1)[0].split("=", 1)[1]
        mine = requests.get(stack.base + "/session", cookies={"__Host-mp3svc_token": token},
                            timeout=30)
        assert mine.status_code == 200
        plain = requests.get(stack.base + "/session", cookies={"mp3svc_token": token}, timeout=30)
        assert plain.status_code == 401  # the unprefixed name is not read behind https
    finally:
        stack.stop()


def test_upload_rate_per_account(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink):
    stack = start(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink, ("auth", "gateway"),
                  UPLOAD_RATE="2/hour", EMAIL_VERIFICATION="false", USER_MAX_ACTIVE_JOBS=10)
    try:
        post(stack, "/register", {"email": "busy@example.com", "password": PASSWORD})
        token = login(stack, "busy@example.com", PASSWORD).json()["token"]
        tus = dict(bearer(token), **{"Tus-Resumable": "1.0.0", "Upload-Length": "100"})
        codes = [requests.post(stack.base + "/uploads", headers=tus, timeout=30).status_code
                 for _ in range(2)]
        assert codes == [201, 201]
        for attempt in (lambda: requests.post(stack.base + "/uploads", headers=tus, timeout=30),
                        lambda: requests.post(stack.base + "/upload", headers=bearer(token),
                                              files={"file": ("a.mp4", b"x")}, timeout=30)):
            response = attempt()
            assert (response.status_code, response.json()["error"]) == (429, "rate_limited")
            assert int(response.headers["Retry-After"]) > 0
        # another account has its own budget
        post(stack, "/register", {"email": "calm@example.com", "password": PASSWORD})
        other = login(stack, "calm@example.com", PASSWORD).json()["token"]
        assert requests.post(stack.base + "/uploads", timeout=30, headers=dict(
            tus, Authorization="Bearer %s" % other)).status_code == 201
    finally:
        stack.stop()
