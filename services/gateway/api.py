"""The HTTP API described once: request and response models (pydantic v2) and one operation per
@http entrypoint of the gateway, from which the OpenAPI 3.1 document at GET /openapi.json is built.

- The gateway validates requests with these same models (`parse`); constraints come from the rules
  they restate (auth's email pattern and password bounds, the job id pattern).
- Error responses come from the one error table in exceptions.py: an operation lists the exception
  classes it can raise, and each becomes its status, `error` code and headers in the document.
- Operations are keyed by the name of their entrypoint method; method and path are read from the
  @http decorator itself. A route without an entry here makes `document()` raise `Undocumented`
  (tests/unit/test_openapi.py), so a new route cannot go undocumented.
"""
import functools
import inspect
import mimetypes
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

from nameko.web.handlers import HttpRequestHandler
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema
from werkzeug.exceptions import NotFound as NotFoundPage
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from services.auth.exceptions import Busy as AuthBusy
from services.auth.exceptions import InvalidCredentials, InvalidInput, InvalidToken, TooManyAttempts
from services.auth.schemas import ATOM, LABEL
from services.common import constants as c
from services.common.options import ConversionOptions, InvalidOption
from services.gateway import exceptions as errors
from services.gateway import tus
from services.gateway.schemas import JOB_ID_RE
from services.gateway.caller import COOKIE_NAME
from services.gateway.static import WEB_DIR

JSON = "application/json"
TITLE = "mp3svc"
VERSION = "1.0.0"
BEARER, BASIC, COOKIE = "bearerAuth", "basicAuth", "cookieAuth"
SECURITY_SCHEMES = {
    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
             "description": "The token from POST /login: `Authorization: Bearer <token>`."},
    BASIC: {"type": "http", "scheme": "basic", "description": "Email and password."},
    COOKIE: {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME,
             "description": "The web page's HttpOnly cookie from POST /session; a state-changing request "
                            "it authenticates must come from the page itself (403 `csrf` otherwise)."},
}


# --- the page for a person (GET /docs) ------------------------------------------------------------
DOCS_DIR = Path(__file__).with_name("apidocs")
DOCS_PAGE = "index.html"
# file name -> path: only these files are served, whatever the URL says
DOCS_ASSETS = {path.name: path for folder in (DOCS_DIR, DOCS_DIR / "vendor")
               for path in sorted(folder.iterdir()) if path.is_file()}
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")
READ_BLOCK = 64 * 1024


def docs_mimetype(name):
    return mimetypes.guess_type(name)[0] or "text/plain"


# media types of the web page's files, as werkzeug's send_from_directory gives them
WEB_MEDIA = tuple(sorted({mimetypes.guess_type(name)[0] or "application/octet-stream"
                          for _, _, names in os.walk(WEB_DIR) for name in names}))


class Undocumented(Exception):
    """An @http entrypoint of the service has no operation in OPERATIONS."""


# --- models -------------------------------------------------------------------------------------
class Model(BaseModel):
    model_config = ConfigDict(strict=True)  # no coercion: a number is not an email address


JobId = Annotated[str, Field(pattern=JOB_ID_RE.pattern, description="32 hexadecimal characters.")]
FileId = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{24}$",
                              description="The MP3's id (`fid`): 24 hexadecimal characters.")]
Timestamp = Annotated[str, Field(description="ISO 8601, UTC (`2026-01-31T12:00:00.000Z`).")]


class Error(Model):
    """Every error the API answers with."""
    error: str = Field(description="A stable snake_case code for programs.")
    message: str = Field(description="A sentence for a person.")


class Health(Model):
    status: Literal["ok"]


class Unhealthy(Error):
    status: Literal["unavailable"]
    failing: list[Literal["auth", "broker", "mongodb"]] = Field(description="The parts not answering.")


# auth's mailbox rule (services/auth/schemas.py EMAIL_RE) from the same pieces, as a JSON Schema pattern
# (anchored, no named groups); auth still checks the local part's 64 characters
EMAIL_PATTERN = r"^%s(?:\.%s)*@%s(?:\.%s)+$" % (ATOM, ATOM, LABEL, LABEL)


class User(Model):
    email: str


class Token(Model):
    token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds the token stays valid.")


def _form_fields(schema):
    """A multipart field is present or absent, never null: drop the `null` branch of optional ones."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            options.remove({"type": "null"})
            if len(options) == 1:
                prop.update(prop.pop("anyOf")[0])
    # any other field is refused (400 `invalid_option`). Rules between fields (bitrate not with quality,
    # end after start) are in the descriptions: schemathesis 4.32 fails on `not` beside a binary field
    schema["additionalProperties"] = False


class UploadForm(ConversionOptions):
    """The multipart form of POST /upload: the file, and the conversion options as optional fields
    (validated by services/common/options.py's model, of which this is the schema)."""
    model_config = ConfigDict(json_schema_extra=_form_fields)
    file: bytes = Field(min_length=1, description="The video (or audio) to convert; its name is kept.")


class UploadAccepted(Model):
    job_id: JobId
    status: Literal[c.QUEUED]


class Job(Model):
    job_id: JobId
    status: Literal[c.QUEUED, c.CONVERTING, c.DONE, c.FAILED]
    filename: str
    mp3_id: Optional[FileId] = Field(description="Set when the job is done.")
    error: Optional[str] = Field(description="Why the job failed, for a person.")
    created_at: Optional[Timestamp]
    updated_at: Optional[Timestamp]
    progress: float = Field(ge=0, le=1, description="0.0 to 1.0, live while converting; 1.0 when done.")
    options: Optional[ConversionOptions] = Field(description="The conversion options used (those set).")
    duration: Optional[float] = Field(description="Seconds of the MP3, when done.")
    size: Optional[int] = Field(description="Bytes of the MP3, when done.")
    expires_at: Optional[Timestamp] = Field(description="When a finished job and its MP3 are deleted.")


class JobList(Model):
    jobs: list[Job] = Field(description="The caller's jobs, newest first.")


class JobPath(Model):
    job_id: JobId


class DownloadQuery(Model):
    fid: Annotated[str, Field(pattern=r"^([0-9a-fA-F]{24}|[0-9a-f]{32})$",
                              description="The MP3's id from the email, or the job id.")]


class DownloadHeaders(Model):
    Range: Optional[str] = Field(None, description="One byte range (`bytes=0-1023`).")
    If_None_Match: Optional[str] = Field(None, alias="If-None-Match",
                                         description="The ETag of a copy already held.")


class SessionBody(Model):
    """The body of POST /session (not checked here: auth answers 401 for anything that is not an
    account's email and password)."""
    email: str
    password: str


class Session(Model):
    email: str
    expires_in: int = Field(description="Seconds the cookie stays valid.")


class WebPath(Model):
    path: str = Field(description="A file of the web page.")


# --- tus 1.0.0 (services/gateway/routes/resumable.py) ---
Digits = Annotated[str, Field(pattern=r"^[0-9]{1,19}$")]


class TusVersion(Model):
    Tus_Resumable: Literal[tus.TUS_RESUMABLE] = Field(
        alias="Tus-Resumable", description="The protocol version (412 otherwise).")


class TusCreate(TusVersion):
    Upload_Length: Digits = Field(alias="Upload-Length", description="Bytes of the whole file.")
    Upload_Metadata: Optional[str] = Field(
        None, alias="Upload-Metadata",
        description="`key base64value` pairs, comma-separated: `filename`, and any conversion option "
                    "(the fields of POST /upload); a bad option gets 400 `invalid_option`.")


class TusPatch(TusVersion):
    Upload_Offset: Digits = Field(alias="Upload-Offset",
                                  description="Bytes the server holds (from HEAD); 409 otherwise.")


class UploadPath(Model):
    upload_id: JobId


class AssetPath(Model):
    asset: Literal[tuple(DOCS_ASSETS)] = Field(description="A file of the documentation page.")


def parse(model, data, error=InvalidInput):
    """`data` validated by `model`; any problem raises `error` (400) naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(problem(exc)) from None


def problem(exc):
    """One sentence for a person from a pydantic ValidationError (its first problem)."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return "The field '%s' is missing." % where
    if first["type"] == "string_pattern_mismatch":
        return "The field '%s' is not valid." % where
    return "The field '%s' is not valid: %s." % (where, first["msg"][:1].lower() + first["msg"][1:])


# --- operations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """A successful response: a JSON model, or other media types (`schema` for the body)."""
    description: str
    model: Optional[type] = None
    media: Optional[str | tuple] = JSON
    schema: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    summary: str
    replies: dict                      # status -> Reply
    errors: tuple = ()                 # exception classes (exceptions.ERRORS) or werkzeug HTTPExceptions
    security: tuple = (BEARER,)        # SECURITY_SCHEMES names, any one suffices; () for public
    body: Optional[type] = None        # JSON request body model
    form: Optional[type] = None        # multipart/form-data request body model
    raw: Optional[str] = None          # media type of a raw request body (tus PATCH)
    challenge: bool = True             # whether a 401 carries WWW-Authenticate
    path: Optional[type] = None        # path parameters model
    query: Optional[type] = None       # query parameters model
    headers: Optional[type] = None     # request header parameters model
    tag: str = "jobs"
    description: str = ""


# errors any operation may give: the worker pool full, or the process restarting
ALWAYS = (errors.Busy,)
# errors of every operation that checks a Bearer token or the page's cookie (auth answers the check)
TOKEN = (errors.Unauthorized, InvalidToken, errors.AuthUnavailable)
USER = (BEARER, COOKIE)
# a state-changing request authenticated by the cookie must come from the page itself
CSRF = (errors.CsrfRejected,)
# every tus request but OPTIONS names the protocol version
TUS = (tus.UnsupportedVersion,)
JSON_BODY = (errors.BadRequest, errors.TooLarge, errors.UnsupportedMediaType)
STORAGE = (errors.StorageUnavailable,)

TEXT_HEADERS = {"Content-Disposition": "`attachment` with the upload's name, extension `.mp3`.",
                "ETag": "The MP3's id.", "Content-Length": "Bytes in the body."}

# One entry per @http entrypoint, keyed by its method name. For a new route: its models above, then an
# Operation here with the exception classes it can raise (the codes and statuses come from
# exceptions.ERRORS; a new error class goes into that table first).
OPERATIONS = {
    # GET /livez is answered by the WSGI app itself (entrypoints.LIVEZ), not by an entrypoint
    "livez": Operation(
        "Liveness: the process serves HTTP", {200: Reply("Alive.", Health)}, security=(), tag="health",
        description="Says nothing of the dependencies; answered without a worker."),
    "healthz": Operation(
        "Readiness: auth, the broker and MongoDB answer",
        {200: Reply("Every part answers.", Health),
         503: Reply("A part is not answering; `failing` names it.", Unhealthy)},
        security=(), tag="health"),
    "upload": Operation(
        "Upload a video to convert, with conversion options",
        {202: Reply("Stored and queued.", UploadAccepted)},
        form=UploadForm, security=USER,
        errors=TOKEN + STORAGE + CSRF + (
            errors.BadRequest, errors.NoFile, errors.EmptyFile, errors.TooManyFiles, InvalidOption,
            errors.QuotaExceeded, errors.UploadExpired, errors.TooLarge, errors.UnsupportedMediaType,
            errors.TooManyJobs, errors.BrokerUnavailable),
        description="Streamed into storage as it arrives; over `MAX_UPLOAD_BYTES` gets 413, over the "
                    "user's quota 403 `quota_exceeded`, over `USER_MAX_ACTIVE_JOBS` 429 `too_many_jobs`. "
                    "A field that is not an option, or a bad value, gets 400 `invalid_option` naming it. "
                    "A file that is not media with an audio stream fails the job later, with the reason."),
    "list_jobs_http": Operation(
        "The caller's jobs, newest first", {200: Reply("The jobs.", JobList)}, security=USER,
        errors=TOKEN + STORAGE),
    "get_job": Operation(
        "One job", {200: Reply("The job.", Job)}, path=JobPath, security=USER,
        errors=TOKEN + STORAGE + (errors.InvalidId, errors.NotFound),
        description="404 for unknown ids and for other users' jobs."),
    "delete_job": Operation(
        "Delete a job, its MP3 and its video", {204: Reply("Deleted.", media=None)}, path=JobPath,
        security=USER, errors=TOKEN + STORAGE + CSRF + (errors.InvalidId, errors.NotFound),
        description="A conversion in progress stops. 404 for unknown ids and for other users' jobs."),
    "download": Operation(
        "Download an MP3", {
            200: Reply("The MP3, streamed.", media="audio/mpeg", headers=TEXT_HEADERS,
                       schema={"type": "string", "contentMediaType": "audio/mpeg"}),
            206: Reply("The requested byte range.", media="audio/mpeg",
                       schema={"type": "string", "contentMediaType": "audio/mpeg"},
                       headers={"Content-Range": "The range sent."}),
            304: Reply("Not modified (If-None-Match).", media=None)},
        query=DownloadQuery, headers=DownloadHeaders, security=USER,
        errors=TOKEN + STORAGE + (errors.InvalidId, errors.NotFound, errors.NotReady,
                                  RequestedRangeNotSatisfiable),
        description="`fid` is the MP3 id from the email; a job id works too (409 `not_ready` until its "
                    "MP3 exists). 404 for unknown ids and for other users' files."),
    # --- resumable uploads: tus 1.0.0 (services/gateway/routes/resumable.py) ---
    "tus_options": Operation(
        "What the tus server supports", {204: Reply("Advertised in the headers.", media=None, headers={
            "Tus-Version": "Versions spoken.", "Tus-Extension": "`%s`." % tus.TUS_EXTENSION,
            "Tus-Max-Size": "`MAX_UPLOAD_BYTES`."})},
        security=(), tag="resumable uploads"),
    "tus_create": Operation(
        "Start a resumable upload",
        {201: Reply("Created: PATCH the bytes to `Location`.", media=None, headers={
            "Location": "`/uploads/<job_id>`: the upload id is the job id.",
            "Upload-Expires": "When the unfinished upload is removed (`UPLOAD_TIMEOUT`)."})},
        headers=TusCreate, security=USER, tag="resumable uploads",
        errors=TOKEN + STORAGE + CSRF + TUS + (tus.InvalidHeader, tus.TooLarge, errors.EmptyFile,
                                               InvalidOption, errors.QuotaExceeded, errors.TooManyJobs),
        description="The same token, limits, quotas and errors as POST /upload."),
    "tus_head": Operation(
        "How many bytes of an upload the server holds",
        {200: Reply("The offset.", media=None, headers={
            "Upload-Offset": "Bytes held.", "Upload-Length": "Bytes of the whole file.",
            "Upload-Expires": "When the unfinished upload is removed."})},
        path=UploadPath, headers=TusVersion, security=USER, tag="resumable uploads",
        errors=TOKEN + STORAGE + TUS + (errors.InvalidId, errors.NotFound),
        description="404 for unknown, expired or other users' uploads."),
    "tus_patch": Operation(
        "Append bytes at Upload-Offset",
        {204: Reply("Stored; the last byte queues the job (GET /jobs/<id>).", media=None, headers={
            "Upload-Offset": "Bytes held now.", "Upload-Expires": "When the unfinished upload is removed."})},
        path=UploadPath, headers=TusPatch, raw=tus.OFFSET_CONTENT_TYPE, security=USER,
        tag="resumable uploads",
        errors=TOKEN + STORAGE + CSRF + TUS + (
            tus.InvalidHeader, tus.WrongContentType, tus.OffsetMismatch, tus.TooLarge, errors.InvalidId,
            errors.NotFound, errors.BadRequest, errors.UploadExpired, errors.QuotaExceeded,
            errors.BrokerUnavailable)),
    "tus_terminate": Operation(
        "Abandon an unfinished upload", {204: Reply("Removed.", media=None)},
        path=UploadPath, headers=TusVersion, security=USER, tag="resumable uploads",
        errors=TOKEN + STORAGE + CSRF + TUS + (errors.InvalidId, errors.NotFound, errors.UploadFinished)),
    # --- the web page (services/gateway/routes/pages.py, sessions.py) ---
    "web_index": Operation(
        "The web page", {200: Reply("An HTML page.", media="text/html", schema={"type": "string"}),
                         304: Reply("Not modified.", media=None)},
        security=(), tag="web page"),
    "web_static": Operation(
        "A file of the web page", {200: Reply("The file.", media=WEB_MEDIA, schema={"type": "string"}),
                                   304: Reply("Not modified.", media=None)},
        path=WebPath, errors=(NotFoundPage,), security=(), tag="web page"),
    "web_session": Operation(
        "Who is logged in", {200: Reply("The account.", User)}, security=USER, tag="web page",
        errors=TOKEN),
    "web_login": Operation(
        "Log in the web page: the token goes into an HttpOnly cookie",
        {200: Reply("Logged in; `Set-Cookie` carries the token.", Session,
                    headers={"Set-Cookie": "`%s`, HttpOnly, SameSite=Strict." % COOKIE_NAME})},
        body=SessionBody, security=(), tag="web page", challenge=False,
        errors=JSON_BODY + CSRF + (InvalidInput, InvalidCredentials, TooManyAttempts, errors.RateLimited,
                                   errors.AuthUnavailable, AuthBusy),
        description="Limited per client address as POST /login; 401 has no Basic challenge."),
    "web_logout": Operation(
        "Log out the web page: the cookie's token ends and the cookie is cleared",
        {204: Reply("Logged out.", media=None)}, security=(), tag="web page",
        errors=CSRF + (errors.AuthUnavailable,)),
    # --- this document ---
    "openapi": Operation(
        "This document (OpenAPI 3.1)", {200: Reply("The document.", schema={"type": "object"})},
        security=(), tag="documentation"),
    "docs": Operation(
        "The document for a person (Swagger UI)",
        {200: Reply("An HTML page.", media="text/html", schema={"type": "string"}),
         304: Reply("Not modified.", media=None)},
        security=(), tag="documentation"),
    "docs_asset": Operation(
        "A file of the documentation page",
        {200: Reply("The file.", media=tuple(sorted({docs_mimetype(name) for name in DOCS_ASSETS})),
                    schema={"type": "string"}),
         304: Reply("Not modified.", media=None)},
        path=AssetPath, errors=(errors.NotFound,), security=(), tag="documentation"),
}
LIVEZ_PATH = "/livez"


# --- the document -------------------------------------------------------------------------------
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
    routes = [("livez", "GET", LIVEZ_PATH)] + http_entrypoints(service_cls)
    missing = sorted({name for name, _, _ in routes} - set(OPERATIONS))
    if missing:
        raise Undocumented("no entry in services/gateway/api.py OPERATIONS for: %s" % ", ".join(missing))
    refs, schemas = _components()
    paths = {}
    for name, method, rule in routes:
        paths.setdefault(openapi_path(rule), {})[method.lower()] = _operation(name, OPERATIONS[name], refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Video to MP3 conversion. Every error is JSON "
                                "`{\"error\": \"<snake_case_code>\", \"message\": \"<sentence>\"}`; "
                                "besides those listed per operation, any unknown path gets 404 "
                                "`not_found` and any other method 405 `method_not_allowed`."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
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


def _operation(name, operation, refs):
    spec = {"operationId": name, "summary": operation.summary, "tags": [operation.tag]}
    if operation.description:
        spec["description"] = operation.description
    spec["security"] = [{name: []} for name in operation.security]
    parameters = []
    for where, model in (("path", operation.path), ("query", operation.query),
                         ("header", operation.headers)):
        if model is not None:
            parameters += _parameters(where, model)
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
            operation.raw: {"schema": {"type": "string", "contentMediaType": operation.raw}}}}
    responses = {}
    for status, reply in operation.replies.items():
        response = {"description": reply.description}
        if reply.media:
            schema = refs[(reply.model, "serialization")] if reply.model else reply.schema
            medias = reply.media if isinstance(reply.media, tuple) else (reply.media,)
            response["content"] = {media: {"schema": schema} for media in medias}
        if reply.headers:
            response["headers"] = {key: {"description": text, "schema": {"type": "string"}}
                                   for key, text in reply.headers.items()}
        responses[str(status)] = response
    for status, response in _errors(ALWAYS + tuple(operation.errors), refs, operation.challenge).items():
        if status in responses:  # a documented body for that status too (503 of /healthz)
            ok = responses[status]
            schemas = [ok["content"][JSON]["schema"], response["content"][JSON]["schema"]]
            ok["content"][JSON]["schema"] = {"anyOf": schemas}
            ok["description"] += " Or: " + response["description"]
            ok.setdefault("headers", {}).update(
                {key: dict(value, required=False) for key, value in response.get("headers", {}).items()})
        else:
            responses[status] = response
    spec["responses"] = dict(sorted(responses.items()))
    return spec


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
        parameter = {"name": key, "in": where, "required": where == "path" or key in required,
                     "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _errors(exc_types, refs, challenge=True):
    """status -> response object for these exception classes (codes, headers)."""
    by_status = {}
    for exc_type in exc_types:
        status, code = error_status(exc_type)
        codes, types = by_status.setdefault(str(status), ([], []))
        if code not in codes:
            codes.append(code)
        types.append(exc_type)
    responses = {}
    for status, (codes, types) in sorted(by_status.items()):
        schema = {"allOf": [refs[(Error, "serialization")],
                            {"properties": {"error": {"enum": codes}}}]}
        response = {"description": "Error: " + ", ".join("`%s`" % code for code in codes) + ".",
                    "content": {JSON: {"schema": schema}}}
        headers = {}
        if status == "401" and challenge:
            headers["WWW-Authenticate"] = {"description": "The scheme to authenticate with.",
                                           "required": True, "schema": {"type": "string"}}
        throttled = [getattr(t, "retry_after", None) is not None for t in types]  # as describe() does
        if any(throttled):
            headers["Retry-After"] = {"description": "Seconds to wait before trying again.",
                                      "required": all(throttled),
                                      "schema": {"type": "string", "pattern": "^[0-9]+$"}}
        if headers:
            response["headers"] = headers
        responses[status] = response
    return responses


# --- GET /docs ---------------------------------------------------------------------------------
def docs_file(request, name):
    """One file of the documentation page, streamed, with an ETag; 404 `not_found` for any other."""
    path = DOCS_ASSETS[parse(AssetPath, {"asset": name}, errors.NotFound).asset]
    mimetype = docs_mimetype(name)
    stat = path.stat()
    response = Response(wrap_file(request.environ, path.open("rb"), READ_BLOCK), mimetype=mimetype,
                        direct_passthrough=True)
    response.content_length = stat.st_size
    response.set_etag("%x-%x" % (int(stat.st_mtime), stat.st_size))
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if mimetype == "text/html":
        response.headers["Content-Security-Policy"] = DOCS_CSP
    return response.make_conditional(request)


# the accounts' routes are described beside their models, which build on the names above; that
# module adds its operations to OPERATIONS (whichever of the two is imported first)
from services.gateway import api_accounts  # noqa: E402,F401
