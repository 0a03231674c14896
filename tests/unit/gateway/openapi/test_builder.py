"""The OpenAPI document: every @http route of the gateway is in it, with the errors of the one table."""
import inspect
import json
import os
import re

import openapi_spec_validator
import pytest
from nameko.web.handlers import HttpRequestHandler

from devtools.stack import ROOT
from services.auth.exceptions import InvalidInput
from services.auth.schemas import clean_email
from services.common.options import ConversionOptions
from services.gateway import account_schemas, exceptions, schemas, static
from services.gateway.openapi import builder, operations as ops_table
from services.gateway.entrypoints import LIVEZ, http
from services.gateway.service import GatewayService


def routes_of(service_cls):
    """(HTTP method, OpenAPI path) of every @http entrypoint, read straight from nameko's registry on
    the class and its bases (independently of builder.http_entrypoints)."""
    found = set()
    for klass in inspect.getmro(service_cls):
        for member in vars(klass).values():
            for entrypoint in getattr(member, "nameko_entrypoints", ()):
                if isinstance(entrypoint, HttpRequestHandler):
                    path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", entrypoint.url)
                    found.add((entrypoint.method.lower(), path))
    return found


@pytest.fixture(scope="module")
def document():
    return builder.document(GatewayService)


def operations(document):
    return {(method, path): spec for path, methods in document["paths"].items()
            for method, spec in methods.items()}


def test_every_route_is_documented(document):
    routes = routes_of(GatewayService)
    assert len(routes) >= 10
    documented = set(operations(document))
    assert routes - documented == set()
    # and nothing documented that the gateway does not answer (/livez: the WSGI app itself)
    assert documented - routes == {("get", LIVEZ)}


def test_an_undocumented_route_fails_loudly():
    class Extended(GatewayService):
        @http("DELETE", "/jobs/<string:job_id>")
        def delete_job_unknown_to_api(self, request, job_id):
            pass

    with pytest.raises(builder.Undocumented, match="delete_job_unknown_to_api"):
        builder.document(Extended)


def test_an_authenticated_route_without_a_scope_fails_loudly(monkeypatch):
    class Extended(GatewayService):
        @http("GET", "/jobs/<string:job_id>/more")
        def unscoped(self, request, job_id):
            pass

    monkeypatch.setitem(ops_table.OPERATIONS, "unscoped", ops_table.Operation(
        "More", {200: ops_table.Reply("More.")}, security=ops_table.USER))
    with pytest.raises(builder.Undocumented, match="unscoped: its Operation names no scope"):
        builder.document(Extended)


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    openapi_spec_validator.validate(json.loads(json.dumps(document)))  # the official meta-schema
    text = json.dumps(document)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert refs and refs <= set(document["components"]["schemas"])
    schemes = document["components"]["securitySchemes"]
    for spec in operations(document).values():
        assert spec["responses"] and spec["summary"]
        for requirement in spec["security"]:
            assert set(requirement) <= set(schemes)
    ids = [spec["operationId"] for spec in operations(document).values()]
    assert len(ids) == len(set(ids))


def error_codes(spec, status):
    return spec[builder.ERROR_CODES][str(status)]


def response(document, spec, status):
    """An operation's response, a shared one (#/components/responses) resolved."""
    found = spec["responses"][str(status)]
    if "$ref" in found:
        return document["components"]["responses"][found["$ref"].rsplit("/", 1)[-1]]
    return found


def test_every_error_is_from_the_table(document):
    table = {(status, code) for _, status, code in exceptions.ERRORS}
    table |= {(status, code) for status, code in exceptions.HTTP_CODES.items()}
    for (method, path), spec in operations(document).items():
        errors = [status for status in spec["responses"] if int(status) >= 400]
        assert sorted(spec[builder.ERROR_CODES]) == errors, (method, path)
        for status in errors:
            for code in error_codes(spec, status):
                assert (int(status), code) in table, (method, path, status, code)
                assert "`%s`" % code in spec["responses"][status]["description"]


def test_one_error_schema_in_shared_responses(document):
    """Every error answer is a shared response whose body is the one `Error` schema (a generated
    client gets one error model, not one per operation and status)."""
    shared = document["components"]["responses"]
    error = {"$ref": "#/components/schemas/Error"}
    assert shared and all(r["content"]["application/json"]["schema"] == error for r in shared.values())
    for (method, path), spec in operations(document).items():
        for status, answer in spec["responses"].items():
            if int(status) < 400:
                continue
            if "$ref" in answer:
                assert answer["$ref"].rsplit("/", 1)[-1] in shared
            else:  # /healthz's 503: its own body, or an error
                assert (method, path, status) == ("get", "/healthz", "503")
                assert error in answer["content"]["application/json"]["schema"]["anyOf"]
    assert "allOf" not in json.dumps(document)


def test_generator_friendly_parameters_and_bodies(document):
    """No `const` parameter (openapi-python-client refuses a Literal header); binary bodies are files."""
    ops = operations(document)
    assert not [p for spec in ops.values() for p in spec.get("parameters", ()) if "const" in p["schema"]]
    patch = ops[("patch", "/uploads/{upload_id}")]
    version = [p for p in patch["parameters"] if p["name"] == "Tus-Resumable"]
    assert version[0]["schema"] == {"type": "string", "enum": ["1.0.0"], "default": "1.0.0"}
    assert patch["requestBody"]["content"]["application/offset+octet-stream"]["schema"]["format"] == "binary"
    for status in ("200", "206"):
        assert ops[("get", "/download")]["responses"][status]["content"]["audio/mpeg"]["schema"] == {
            "type": "string", "format": "binary", "contentMediaType": "audio/mpeg"}
    archive = ops[("post", "/jobs/archive")]
    assert archive["responses"]["200"]["content"]["application/zip"]["schema"]["format"] == "binary"
    assert {"400", "404", "409"} <= set(archive[builder.ERROR_CODES])


@pytest.mark.parametrize("method, path, status, code", [
    ("post", "/register", 400, "invalid_input"),
    ("post", "/register", 400, "bad_request"),
    ("post", "/register", 400, "weak_password"),
    ("post", "/register", 415, "unsupported_media_type"),
    ("post", "/login", 403, "email_unverified"),
    ("post", "/verify", 400, "invalid_token"),
    ("post", "/password/reset", 400, "invalid_token"),
    ("put", "/account/password", 403, "wrong_password"),
    ("delete", "/account", 403, "wrong_password"),
    ("post", "/logout", 401, "invalid_token"),
    ("post", "/register", 413, "too_large"),
    ("post", "/register", 429, "rate_limited"),
    ("post", "/login", 401, "invalid_credentials"),
    ("post", "/login", 429, "too_many_attempts"),
    ("post", "/upload", 401, "invalid_token"),
    ("post", "/upload", 413, "too_large"),
    ("post", "/upload", 400, "invalid_option"),
    ("post", "/upload", 403, "quota_exceeded"),
    ("post", "/upload", 507, "storage_full"),
    ("post", "/uploads", 507, "storage_full"),
    ("post", "/upload", 429, "too_many_jobs"),
    ("post", "/session", 403, "csrf"),
    ("patch", "/uploads/{upload_id}", 409, "offset_mismatch"),
    ("patch", "/uploads/{upload_id}", 412, "unsupported_version"),
    ("patch", "/uploads/{upload_id}", 415, "unsupported_media_type"),
    ("post", "/uploads", 429, "too_many_jobs"),
    ("delete", "/uploads/{upload_id}", 409, "upload_finished"),
    ("get", "/jobs/{job_id}", 404, "not_found"),
    ("get", "/jobs/{job_id}", 400, "invalid_id"),
    ("get", "/download", 409, "not_ready"),
    ("get", "/download", 416, "range_not_satisfiable"),
    ("get", "/healthz", 503, "busy"),
    ("get", "/jobs", 503, "auth_unavailable"),
    ("post", "/tokens", 409, "too_many_tokens"),
    ("post", "/tokens", 400, "invalid_input"),
    ("delete", "/tokens/{token_id}", 404, "not_found"),
    ("delete", "/tokens/{token_id}", 400, "invalid_id"),
    ("delete", "/tokens/{token_id}", 403, "csrf"),
])
def test_errors_per_route(document, method, path, status, code):
    assert code in error_codes(operations(document)[(method, path)], status)


def test_error_headers(document):
    ops = operations(document)
    assert response(document, ops[("get", "/jobs")], 401)["headers"]["WWW-Authenticate"]["required"]
    assert response(document, ops[("post", "/login")], 429)["headers"]["Retry-After"]["required"]
    # 503 auth_unavailable carries no Retry-After, busy does
    assert not response(document, ops[("get", "/jobs")], 503)["headers"]["Retry-After"]["required"]
    assert response(document, ops[("get", "/openapi.json")], 503)["headers"]["Retry-After"]["required"]


def test_security(document):
    ops = operations(document)
    assert ops[("post", "/login")]["security"] == [{ops_table.BASIC: []}]
    # a login token, an API token with the scope, or the web page's cookie
    assert ops[("get", "/jobs")]["security"] == [
        {ops_table.BEARER: []}, {ops_table.API_TOKEN: ["jobs:read"]}, {ops_table.COOKIE: []}]
    assert ops[("delete", "/jobs/{job_id}")]["security"][1] == {ops_table.API_TOKEN: ["jobs:write"]}
    # account changes and tokens: never an API token
    for login_only in (("post", "/tokens"), ("get", "/tokens"), ("delete", "/tokens/{token_id}"),
                       ("put", "/account/password"), ("delete", "/account"), ("post", "/logout"),
                       ("get", "/session")):
        assert ops[login_only]["security"] == [{ops_table.BEARER: []}, {ops_table.COOKIE: []}]
        assert "API token gets 403" in ops[login_only]["description"]
    # every authenticated operation may answer 403 insufficient_scope
    for (method, path), spec in ops.items():
        if {ops_table.BEARER: []} in spec["security"]:
            assert "insufficient_scope" in error_codes(spec, 403), (method, path)
    assert "csrf" in error_codes(ops[("delete", "/jobs/{job_id}")], 403)
    assert "WWW-Authenticate" not in response(document, ops[("post", "/session")], 401).get("headers", {})
    for public in (("get", "/healthz"), ("post", "/register"), ("get", "/openapi.json"), ("get", "/docs"),
                   ("get", "/")):
        assert ops[public]["security"] == []


def test_upload_form_and_job_schema(document):
    schemas = document["components"]["schemas"]
    upload = operations(document)[("post", "/upload")]["requestBody"]["content"]["multipart/form-data"]
    form = schemas[upload["schema"]["$ref"].rsplit("/", 1)[-1]]
    assert form["properties"]["file"]["format"] == "binary" and form["required"] == ["file"]
    job = schemas["Job"]
    assert job["properties"]["job_id"]["pattern"] == "^[0-9a-f]{32}$"
    assert set(job["properties"]["status"]["enum"]) == {"queued", "converting", "done", "failed"}
    assert {"progress", "options", "duration", "size", "expires_at"} <= set(job["required"])
    # the conversion options are fields of the form, from their one model; never null there
    assert set(ConversionOptions.model_fields) < set(form["properties"])
    assert form["properties"]["bitrate"]["enum"][-1] == 320
    assert not [name for name, prop in form["properties"].items()
                if {"type": "null"} in prop.get("anyOf", ()) or "default" in prop]
    assert form["additionalProperties"] is False


@pytest.mark.parametrize("body, field", [
    ({"password": "long enough pw"}, "email"),
    ({"email": "a@example.com"}, "password"),
    ({"email": 5, "password": "long enough pw"}, "email"),
    ({"email": "not-an-email", "password": "long enough pw"}, "email"),
    ({"email": "a@b@example.com", "password": "long enough pw"}, "email"),
    ({"email": "a@example.com", "password": 12345678}, "password"),
])
def test_register_body_rejects(body, field):
    with pytest.raises(InvalidInput, match="'%s'" % field):
        account_schemas.parse(account_schemas.RegisterBody, body)


@pytest.mark.parametrize("email", ["a@example.com", "first.last+tag@mail.example.co.uk", "x@a-b.io",
                                   "a@b@example.com", "a b@example.com", "<a@example.com>", "a@example",
                                   "a,b@example.com", "a..b@example.com", "\"a\"@example.com"])
def test_email_pattern_is_auths_rule(email):
    """The documented pattern accepts exactly what auth's clean_email accepts."""
    try:
        clean_email(email)
        accepted = True
    except InvalidInput:
        accepted = False
    assert (re.search(schemas.EMAIL_PATTERN, email) is not None) == accepted


def test_register_body_accepts_what_auth_accepts():
    form = account_schemas.parse(account_schemas.RegisterBody,
                                 {"email": " twice@Example.COM ", "password": "p" * 1024, "x": 1})
    assert (form.email, len(form.password)) == ("twice@Example.COM", 1024)


def test_docs_assets_are_local_files():
    page = open(os.path.join(static.DOCS_DIR, static.DOCS_PAGE)).read()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert [link for link in links if link.startswith("/docs/")]
    for link in links:
        assert link.startswith("/"), link  # no CDN
        if link.startswith("/docs/"):
            assert link[len("/docs/"):] in static.DOCS.names()
    assert {"LICENSE", "swagger-ui-bundle.js", "swagger-ui.css"} <= set(static.DOCS.names())
    setup = open(os.path.join(static.DOCS_DIR, "docs.js")).read()
    assert "validatorUrl: null" in setup and "http" not in setup.replace("/openapi.json", "")


IMPORT_PROBE = """
import sys
touched = []
def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], str) \\
            and ("apidocs" in args[0] or "/gateway/web" in args[0]):
        touched.append((event, args[0]))
sys.addaudithook(hook)
import services.gateway.service
print(touched)
"""


def test_no_static_file_is_read_at_import():
    """The document and the static-file server read their files when asked, not at import."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
