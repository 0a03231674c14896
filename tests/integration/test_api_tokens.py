"""Personal API tokens (issue 21) against the services as real `nameko run` processes, real HTTP,
RabbitMQ and the users database: made with a login token or the page's cookie only, used within
their scopes on EVERY route of the gateway (the scope table, read from /openapi.json and checked
against the routes the gateway serves), revoked at once, refused once expired, and ended by a
password change and by disabling the account."""
import datetime

import requests
import sqlalchemy
from nameko.standalone.rpc import ServiceRpcProxy

from services.common import scopes
from services.gateway.openapi.builder import http_entrypoints, openapi_path
from services.gateway.openapi.operations import API_TOKEN, BEARER
from services.gateway.service import GatewayService
from tests.integration.accounts import PASSWORD, bearer, verified_token
from tests.integration.test_accounts import site  # noqa: F401  (the fixture)

NEW_PASSWORD = "a brand new passphrase"
# valid-looking values for path parameters: the scope is checked before they are looked up
PATH_VALUES = {"job_id": "0" * 32, "upload_id": "0" * 32, "token_id": "0" * 16,
               "webhook_id": "0" * 32, "asset": "index.html", "path": "app.js"}


def url(stack, path):
    return stack.base + path


def make(stack, token, name, scope_list, days=None, **kwargs):
    body = {"name": name, "scopes": list(scope_list)}
    if days is not None:
        body["expires_in_days"] = days
    return requests.post(url(stack, "/tokens"), json=body, headers=bearer(token), timeout=30,
                         **kwargs)


def tokens_of(stack, token):
    response = requests.get(url(stack, "/tokens"), headers=bearer(token), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["tokens"]


def jobs_status(stack, token):
    return requests.get(url(stack, "/jobs"), headers=bearer(token), timeout=30).status_code


def test_create_use_list_revoke(site):  # noqa: F811 (the fixture)
    login = verified_token(site, "script@example.com")
    made = make(site, login, "nightly", [scopes.JOBS_READ], 30)
    assert made.status_code == 201, made.text
    created = made.json()
    assert set(created) == {"id", "name", "scopes", "token", "created_at", "expires_at"}
    assert created["scopes"] == [scopes.JOBS_READ] and created["token"].startswith("mp3_")
    assert made.headers["Cache-Control"] == "no-store"
    [listed] = tokens_of(site, login)
    assert "token" not in listed and listed["last_used_at"] is None
    assert created["token"] not in requests.get(url(site, "/tokens"), headers=bearer(login),
                                                timeout=30).text

    api = bearer(created["token"])
    assert requests.get(url(site, "/jobs"), headers=api, timeout=30).json() == {"jobs": []}
    [listed] = tokens_of(site, login)
    used = datetime.datetime.fromisoformat(listed["last_used_at"].rstrip("Z"))
    assert abs((datetime.datetime.utcnow() - used).total_seconds()) < 30

    # outside its scopes
    refused = requests.post(url(site, "/upload"), headers=api, timeout=30,
                            files={"file": ("a.mp4", b"not a video")})
    assert (refused.status_code, refused.json()["error"]) == (403, "insufficient_scope")

    revoked = requests.delete(url(site, "/tokens/" + created["id"]), headers=bearer(login),
                              timeout=30)
    assert revoked.status_code == 204
    after = requests.get(url(site, "/jobs"), headers=api, timeout=30)
    assert (after.status_code, after.json()["error"]) == (401, "invalid_token")
    assert tokens_of(site, login) == []
    again = requests.delete(url(site, "/tokens/" + created["id"]), headers=bearer(login),
                            timeout=30)
    assert (again.status_code, again.json()["error"]) == (404, "not_found")
    # another user's token id is as unknown
    other = verified_token(site, "other@example.com")
    theirs = make(site, other, "theirs", [scopes.JOBS_READ]).json()
    foreign = requests.delete(url(site, "/tokens/" + theirs["id"]), headers=bearer(login),
                              timeout=30)
    assert foreign.status_code == 404
    assert jobs_status(site, theirs["token"]) == 200


def test_an_expired_token_is_refused(site):  # noqa: F811
    login = verified_token(site, "expiring@example.com")
    made = make(site, login, "short", [scopes.JOBS_READ], 1).json()
    assert jobs_status(site, made["token"]) == 200
    # a day later, as auth's database sees it
    engine = sqlalchemy.create_engine(site.env["AUTH_DB_URI"])
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("UPDATE api_tokens SET expires_at = :past WHERE id = :id"),
                         {"past": datetime.datetime.utcnow() - datetime.timedelta(seconds=1),
                          "id": made["id"]})
    finally:
        engine.dispose()
    response = requests.get(url(site, "/jobs"), headers=bearer(made["token"]), timeout=30)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    assert "expired" in response.json()["message"]


def test_an_api_token_never_mints_tokens_or_changes_the_account(site):  # noqa: F811
    email = "careful@example.com"
    login = verified_token(site, email)
    everything = make(site, login, "all", scopes.ALL).json()["token"]
    api = bearer(everything)
    attempts = [
        ("POST", "/tokens", {"name": "more", "scopes": [scopes.JOBS_READ]}),
        ("GET", "/tokens", None),
        ("DELETE", "/tokens/" + "0" * 16, None),
        ("PUT", "/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        ("DELETE", "/account", {"password": PASSWORD}),
        # decided: POST /logout is an account verb too; an API token is revoked with DELETE /tokens/<id>
        ("POST", "/logout", None),
        ("GET", "/session", None),
    ]
    for method, path, body in attempts:
        response = requests.request(method, url(site, path), json=body, headers=api, timeout=30)
        assert (response.status_code, response.json()["error"]) == (403, "insufficient_scope"), path
    # nothing changed: the password, the account and the token itself
    assert requests.post(url(site, "/login"), auth=(email, PASSWORD), timeout=30).status_code == 200
    assert jobs_status(site, everything) == 200
    assert len(tokens_of(site, login)) == 1


def test_the_cookie_makes_tokens_from_the_page_only(site):  # noqa: F811
    email = "page@example.com"
    verified_token(site, email)
    browser = requests.Session()
    assert browser.post(url(site, "/session"), json={"email": email, "password": PASSWORD},
                        headers={"Origin": site.base}, timeout=30).status_code == 200
    body = {"name": "from the page", "scopes": [scopes.JOBS_WRITE]}
    foreign = browser.post(url(site, "/tokens"), json=body, timeout=30,
                           headers={"Origin": "https://evil.example"})
    assert (foreign.status_code, foreign.json()["error"]) == (403, "csrf")
    no_origin = browser.post(url(site, "/tokens"), json=body, timeout=30)
    assert (no_origin.status_code, no_origin.json()["error"]) == (403, "csrf")
    own = browser.post(url(site, "/tokens"), json=body, headers={"Origin": site.base}, timeout=30)
    assert own.status_code == 201, own.text
    token_id = own.json()["id"]
    foreign = browser.delete(url(site, "/tokens/" + token_id), timeout=30,
                             headers={"Origin": "https://evil.example"})
    assert (foreign.status_code, foreign.json()["error"]) == (403, "csrf")
    assert browser.get(url(site, "/tokens"), timeout=30).json()["tokens"][0]["id"] == token_id
    assert browser.delete(url(site, "/tokens/" + token_id), headers={"Origin": site.base},
                          timeout=30).status_code == 204


def test_a_password_change_ends_every_api_token(site):  # noqa: F811
    login = verified_token(site, "changer@example.com")
    api_token = make(site, login, "ci", [scopes.JOBS_READ]).json()["token"]
    assert jobs_status(site, api_token) == 200
    changed = requests.put(url(site, "/account/password"), headers=bearer(login), timeout=30,
                           json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200
    assert jobs_status(site, api_token) == 401
    assert tokens_of(site, changed.json()["token"]) == []


def test_disabling_the_account_ends_every_api_token(site, rabbit_config):  # noqa: F811
    email = "disabled@example.com"
    login = verified_token(site, email)
    api_token = make(site, login, "ci", [scopes.JOBS_READ]).json()["token"]
    assert jobs_status(site, api_token) == 200
    with ServiceRpcProxy("auth", {"AMQP_URI": rabbit_config["AMQP_URI"]}, timeout=30) as auth:
        auth.disable_user(email)
        assert jobs_status(site, api_token) == 401
        auth.enable_user(email)
    assert jobs_status(site, api_token) == 401   # enabling brings none back


# --- the scope table: every route of the gateway, with a token of each single scope ---------------
def required_scope(operation):
    """The scope the document says an API token needs: a scope, LOGIN_ONLY, or "public"."""
    security = operation["security"]
    if {BEARER: []} not in security:
        return "public"
    needed = [requirement[API_TOKEN] for requirement in security if API_TOKEN in requirement]
    return needed[0][0] if needed else scopes.LOGIN_ONLY


def fill(path):
    for name, value in PATH_VALUES.items():
        path = path.replace("{%s}" % name, value)
    assert "{" not in path, "a new path parameter: give it a value in PATH_VALUES (%s)" % path
    return path


def test_scope_table_covers_every_route(site):  # noqa: F811
    document = requests.get(url(site, "/openapi.json"), timeout=30).json()
    operations = {(method.upper(), path): operation
                  for path, methods in document["paths"].items()
                  for method, operation in methods.items()}
    # the document and the gateway's routes are the same set (a new route cannot hide from this)
    served = {(method, openapi_path(rule)) for _, method, rule in http_entrypoints(GatewayService)}
    assert served == set(operations) - {("GET", "/livez")}
    table = {key: required_scope(operation) for key, operation in operations.items()}
    assert table[("GET", "/jobs")] == scopes.JOBS_READ
    assert table[("POST", "/upload")] == scopes.JOBS_WRITE
    assert table[("POST", "/tokens")] is scopes.LOGIN_ONLY
    assert table[("PUT", "/account/password")] is scopes.LOGIN_ONLY
    assert set(table.values()) <= {"public", scopes.LOGIN_ONLY, *scopes.ALL}

    login = verified_token(site, "table@example.com")
    single = {scope: make(site, login, scope, [scope]).json()["token"] for scope in scopes.ALL}
    seen = []
    for (method, path), needed in sorted(table.items()):
        # a request as the document describes it, the protocol's headers included (tus checks
        # its version and PATCH's media type before anything else), with an empty body
        media = next(iter(operations[(method, path)].get("requestBody", {}).get("content", {})),
                     None)
        headers = {"Tus-Resumable": "1.0.0"}
        if media and media != "multipart/form-data":
            headers["Content-Type"] = media
        for scope, token in single.items():
            response = requests.request(
                method, url(site, fill(path)), timeout=30, headers=dict(bearer(token), **headers),
                data=b"{}" if media == "application/json" else b"")
            refused = response.status_code == 403 and (
                method == "HEAD" or response.json().get("error") == "insufficient_scope")
            allowed = needed == "public" or needed == scope
            assert refused is not allowed, (method, path, scope, response.status_code,
                                            response.text[:200])
            assert response.status_code < 500, (method, path, scope, response.text[:200])
            seen.append((method, path, scope, response.status_code))
    assert len(seen) == len(table) * len(scopes.ALL)
    # the tokens are all still there: nothing in the table revoked or changed anything
    assert len(tokens_of(site, login)) == len(scopes.ALL)
    print("\n".join("%-7s %-28s %-11s %d" % row for row in seen))
