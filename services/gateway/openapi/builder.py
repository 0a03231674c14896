"""The OpenAPI 3.1 document at GET /openapi.json, built from the operations table and the models
when first asked for (nothing is read at import).

A route without an entry in OPERATIONS makes `document()` raise `Undocumented`
(tests/unit/gateway/openapi/test_builder.py), so a new route cannot go undocumented.

Shaped so that generated clients stay small and complete (tests/integration/test_generated_client.py,
openapi-python-client): every error answer is one shared response of #/components/responses (one per
status and headers) whose body is the one `Error` schema; the codes an operation can answer with are
in its response's description and, for programs, in the operation's `x-error-codes` (status -> codes).
Header parameters are plain strings (a fixed value is a one-value `enum`, never `const`), and binary
bodies are `format: binary` strings.
"""
import functools
import http
import inspect
import re

from nameko.web.handlers import HttpRequestHandler
from pydantic.json_schema import models_json_schema

from services.gateway import exceptions as errors
from services.gateway.entrypoints import LIVEZ
from services.gateway.openapi.models import Error
from services.common.scopes import LOGIN_ONLY
from services.gateway.openapi.operations import (
    ALWAYS, API_TOKEN, BEARER, JSON, OPERATIONS, SECURITY_SCHEMES, UNDECLARED, binary)

TITLE = "mp3svc"
VERSION = "1.0.0"
ERROR_CODES = "x-error-codes"


LOGIN_ONLY_NOTE = "With a login token or the cookie only: an API token gets 403 `insufficient_scope`."


class Undocumented(Exception):
    """An @http entrypoint of the service has no operation in OPERATIONS, or an authenticated one
    names no scope."""


def http_entrypoints(service_cls):
    """(method name, HTTP method, werkzeug rule) of every @http entrypoint, base classes included."""
    found = []
    for name, member in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(member, "nameko_entrypoints", ()):
            if isinstance(entrypoint, HttpRequestHandler):
                for method in entrypoint.method.split(","):
                    found.append((name, method.strip().upper(), entrypoint.url))
    return sorted(found, key=lambda item: (item[2], item[1]))


def openapi_path(rule):
    """`/jobs/<string:job_id>` -> `/jobs/{job_id}`."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def error_status(exc_type):
    """(status, code) of an exception class, from the one table in exceptions.py."""
    for known, status, code in errors.ERRORS:
        if issubclass(exc_type, known):
            return status, code
    status = exc_type.code
    return status, errors.HTTP_CODES.get(status) or ("bad_request" if status < 500 else "internal_error")


@functools.lru_cache(maxsize=None)
def document(service_cls):
    """The OpenAPI 3.1 document of `service_cls`'s HTTP API (a dict, built once)."""
    routes = [("livez", "GET", LIVEZ)] + http_entrypoints(service_cls)
    missing = sorted({name for name, _, _ in routes} - set(OPERATIONS))
    if missing:
        raise Undocumented("no entry in services/gateway/openapi/operations.py OPERATIONS for: %s"
                           % ", ".join(missing))
    refs, schemas = _components()
    shared = {}  # #/components/responses, filled as the operations use them
    paths = {}
    for name, method, rule in routes:
        paths.setdefault(openapi_path(rule), {})[method.lower()] = _operation(
            name, OPERATIONS[name], refs, shared)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Video to MP3 conversion. Every error is JSON "
                                "`{\"error\": \"<snake_case_code>\", \"message\": \"<sentence>\"}`; "
                                "besides those listed per operation, any unknown path gets 404 "
                                "`not_found` and any other method 405 `method_not_allowed`."},
        "paths": paths,
        "components": {"schemas": schemas, "responses": dict(sorted(shared.items())),
                       "securitySchemes": SECURITY_SCHEMES},
    }


def _components():
    """JSON schemas of every model, as #/components/schemas; request models in validation mode."""
    models = {(Error, "serialization")}
    for operation in OPERATIONS.values():
        models.update((reply.model, "serialization") for reply in operation.replies.values() if reply.model)
        models.update((model, "validation") for model in (operation.body, operation.form) if model)
    refs, top = models_json_schema(sorted(models, key=lambda item: (item[0].__name__, item[1])),
                                   ref_template="#/components/schemas/{model}")
    return refs, top.get("$defs", {})


def _operation(name, operation, refs, shared):
    spec = {"operationId": name, "summary": operation.summary, "tags": [operation.tag]}
    if operation.description:
        spec["description"] = operation.description
    spec["security"] = security(name, operation)
    if BEARER in operation.security and operation.scope is LOGIN_ONLY:
        spec["description"] = (spec.get("description", "") + " " + LOGIN_ONLY_NOTE).strip()
    parameters = []
    for where, model in (("path", operation.path), ("query", operation.query),
                         ("header", operation.headers)):
        if model is not None:
            parameters += _parameters(where, model if isinstance(model, type) else model())
    if parameters:
        spec["parameters"] = parameters
    if operation.body is not None:
        spec["requestBody"] = {"required": True, "content": {
            JSON: {"schema": refs[(operation.body, "validation")]}}}
    if operation.form is not None:
        spec["requestBody"] = {"required": True, "content": {
            "multipart/form-data": {"schema": refs[(operation.form, "validation")]}}}
    if operation.raw is not None:
        spec["requestBody"] = {"required": True, "content": {
            operation.raw: {"schema": binary(operation.raw)}}}
    responses = {}
    for status, reply in operation.replies.items():
        response = {"description": reply.description}
        if reply.media:
            schema = refs[(reply.model, "serialization")] if reply.model else reply.schema
            media = reply.media() if callable(reply.media) else reply.media
            medias = media if isinstance(media, tuple) else (media,)
            response["content"] = {media: {"schema": schema} for media in medias}
        if reply.headers:
            response["headers"] = {key: {"description": text, "schema": {"type": "string"}}
                                   for key, text in reply.headers.items()}
        responses[str(status)] = response
    error = refs[(Error, "serialization")]
    codes = {}
    scoped = (errors.InsufficientScope,) if BEARER in operation.security else ()
    for status, (status_codes, headers) in _errors(ALWAYS + tuple(operation.errors) + scoped,
                                                   operation.challenge).items():
        codes[status] = status_codes
        description = "Error: " + ", ".join("`%s`" % code for code in status_codes) + "."
        if status in responses:  # a documented body for that status too (503 of /healthz)
            ok = responses[status]
            ok["content"][JSON]["schema"] = {"anyOf": [ok["content"][JSON]["schema"], error]}
            ok["description"] += " Or: " + description
            ok.setdefault("headers", {}).update(
                {key: dict(value, required=False) for key, value in headers.items()})
        else:
            responses[status] = {"$ref": "#/components/responses/" + _shared(shared, status, headers, error),
                                 "description": description}
    spec["responses"] = dict(sorted(responses.items()))
    spec[ERROR_CODES] = codes
    return spec


def security(name, operation):
    """The operation's security requirements, any one of which suffices: a login token where it
    lists Bearer, an API token holding the operation's scope beside it (none for LOGIN_ONLY)."""
    if BEARER in operation.security and operation.scope is UNDECLARED:
        raise Undocumented("%s: its Operation names no scope (services/common/scopes.py, or "
                           "LOGIN_ONLY) in services/gateway/openapi/operations.py" % name)
    requirements = []
    for scheme in operation.security:
        requirements.append({scheme: []})
        if scheme == BEARER and operation.scope is not LOGIN_ONLY:
            requirements.append({API_TOKEN: [operation.scope]})
    return requirements


def _parameters(where, model):
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    parameters = []
    for key, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        prop.pop("default", None)
        if "anyOf" in prop:  # Optional[str]: a parameter present is a string
            prop = next(option for option in prop["anyOf"] if option.get("type") != "null")
        if "const" in prop:  # a fixed value: generators take a one-value enum anywhere, not const;
            prop["enum"] = [prop.pop("const")]  # the default lets a generated client leave it out
            prop["default"] = prop["enum"][0]
        parameter = {"name": key, "in": where, "required": where == "path" or key in required,
                     "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _errors(exc_types, challenge=True):
    """status -> (codes, headers) of these exception classes."""
    by_status = {}
    for exc_type in exc_types:
        status, code = error_status(exc_type)
        codes, types = by_status.setdefault(str(status), ([], []))
        if code not in codes:
            codes.append(code)
        types.append(exc_type)
    answers = {}
    for status, (codes, types) in sorted(by_status.items()):
        headers = {}
        if status == "401" and challenge:
            headers["WWW-Authenticate"] = {"description": "The scheme to authenticate with.",
                                           "required": True, "schema": {"type": "string"}}
        throttled = [getattr(t, "retry_after", None) is not None for t in types]  # as describe() does
        if any(throttled):
            headers["Retry-After"] = {"description": "Seconds to wait before trying again.",
                                      "required": all(throttled),
                                      "schema": {"type": "string", "pattern": "^[0-9]+$"}}
        answers[status] = (codes, headers)
    return answers


def _shared(shared, status, headers, error):
    """The name in #/components/responses of the error answer with this status and headers, added
    to `shared` when new: the status's name (`NotFound`), and for a variant of its headers what
    sets it apart (`UnauthorizedNoWWWAuthenticate`, `ServiceUnavailableMaybeRetryAfter`)."""
    phrase = http.HTTPStatus(int(status)).phrase
    name = re.sub(r"[^A-Za-z0-9]", "", phrase.title().replace("-", " "))
    usual = USUAL_HEADERS.get(status, ())
    for header in usual:
        if header not in headers:
            name += "No" + header.replace("-", "")
    for header, spec in sorted(headers.items()):
        if not spec["required"]:
            name += "Maybe" + header.replace("-", "")
    response = {"description": "%s: an error (`Error`)." % phrase,
                "content": {JSON: {"schema": error}}}
    if headers:
        response["headers"] = headers
    if shared.setdefault(name, response) != response:
        raise AssertionError("two different shared responses named %s" % name)
    return name


# the headers an error answer of that status usually carries (required)
USUAL_HEADERS = {"401": ("WWW-Authenticate",), "429": ("Retry-After",), "503": ("Retry-After",)}
