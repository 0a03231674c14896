"""The API described once: one `Operation` per @http entrypoint of the gateway (keyed by its method
name; method and path are read from the @http decorator itself), with the models of
services/gateway/openapi/models.py and the exception classes each can raise (their statuses and codes
come from the one error table, services/gateway/exceptions.py)."""
from dataclasses import dataclass, field
from typing import Callable, Optional

from werkzeug.exceptions import NotFound as NotFoundPage
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from services.auth.exceptions import Busy as AuthBusy
from services.auth.exceptions import InvalidCredentials, InvalidInput, InvalidToken, TooManyAttempts
from services.common import scopes
from services.common.options import InvalidOption
from services.common.scopes import JOBS_READ, JOBS_WRITE, LOGIN_ONLY, WEBHOOKS
from services.gateway import exceptions as errors
from services.gateway import tus
from services.gateway.caller import COOKIE_NAME
from services.gateway.schemas import ARCHIVE_MAX_JOBS, ArchiveBody
from services.gateway.openapi.models import (
    DeliveryList, DownloadHeaders, DownloadQuery, Health, Job, JobList, JobPath, Session, SessionBody,
    TusCreate, TusPatch, TusVersion, Unhealthy, UploadAccepted, UploadForm, UploadPath, User,
    WebhookCreated, WebhookList, WebhookPath, WebPath, asset_path)
from services.gateway.schemas import WebhookBody
from services.notification.exceptions import InvalidUrl, InvalidWebhook, UnknownWebhook
from services.gateway.static import DOCS, WEB

JSON = "application/json"
MP3 = "audio/mpeg"
ZIP = "application/zip"
BEARER, BASIC, COOKIE, API_TOKEN = "bearerAuth", "basicAuth", "cookieAuth", "apiTokenAuth"
SECURITY_SCHEMES = {
    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
             "description": "The login token from POST /login: `Authorization: Bearer <token>`; "
                            "every operation that lists this scheme."},
    API_TOKEN: {"type": "http", "scheme": "bearer",
                "description": "A personal API token from POST /tokens (`mp3_...`): "
                               "`Authorization: Bearer <token>`, only where an operation lists this "
                               "scheme with one of the token's scopes (`%s`); 403 "
                               "`insufficient_scope` elsewhere. Never for account changes or "
                               "minting tokens." % "`, `".join(scopes.ALL)},
    BASIC: {"type": "http", "scheme": "basic", "description": "Email and password."},
    COOKIE: {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME,
             "description": "The web page's HttpOnly cookie from POST /session; a state-changing request "
                            "it authenticates must come from the page itself (403 `csrf` otherwise)."},
}


UNDECLARED = "undeclared"  # an authenticated Operation without its scope: builder.document() refuses it


def binary(media):
    """The schema of a body of bytes of `media` type (generated clients read and send it as a file)."""
    return {"type": "string", "format": "binary", "contentMediaType": media}


@dataclass(frozen=True)
class Reply:
    """A successful response: a JSON model, or other media types (`schema` for the body)."""
    description: str
    model: Optional[type] = None
    media: Optional[str | tuple | Callable] = JSON  # a callable: read when the document is built
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
    path: Optional[type | Callable] = None  # path parameters model (a function: made when built)
    query: Optional[type] = None       # query parameters model
    headers: Optional[type] = None     # request header parameters model
    tag: str = "jobs"
    description: str = ""
    # what an API token needs for an authenticated operation: a scope of services/common/scopes.py,
    # or LOGIN_ONLY (a login token or the cookie only); the route's `_user(request, scope)` names
    # the same (tests/integration/test_api_tokens.py checks every route against this)
    scope: object = UNDECLARED


# errors any operation may give: the worker pool full, or the process restarting; a request that did
# not arrive within REQUEST_TIMEOUT
ALWAYS = (errors.Busy, errors.RequestTimedOut)
# errors of every operation that checks a Bearer token or the page's cookie (auth answers the check)
TOKEN = (errors.Unauthorized, InvalidToken, errors.AuthUnavailable)
USER = (BEARER, COOKIE)
# a state-changing request authenticated by the cookie must come from the page itself
CSRF = (errors.CsrfRejected,)
# every tus request but OPTIONS names the protocol version
TUS = (tus.UnsupportedVersion,)
JSON_BODY = (errors.BadRequest, errors.TooLarge, errors.UnsupportedMediaType)
STORAGE = (errors.StorageUnavailable,)
# the webhook routes ask the notification service
NOTIFY = (errors.NotificationUnavailable,)

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
        form=UploadForm, security=USER, scope=JOBS_WRITE,
        errors=TOKEN + STORAGE + CSRF + (
            errors.BadRequest, errors.NoFile, errors.EmptyFile, errors.TooManyFiles, InvalidOption,
            errors.QuotaExceeded, errors.UploadExpired, errors.UploadTooSlow, errors.TooLarge,
            errors.UnsupportedMediaType, errors.TooManyJobs, errors.BrokerUnavailable, errors.StorageFull),
        description="Streamed into storage as it arrives; over `MAX_UPLOAD_BYTES` gets 413, over the "
                    "user's quota 403 `quota_exceeded` (with every upload of theirs in progress, "
                    "with or without Content-Length), over `STORAGE_LIMIT_BYTES` for the whole store "
                    "507 `storage_full`, over `USER_MAX_ACTIVE_JOBS` 429 `too_many_jobs`. "
                    "A field that is not an option, or a bad value, gets 400 `invalid_option` naming it. "
                    "A file that is not media with an audio stream fails the job later, with the reason."),
    "list_jobs_http": Operation(
        "The caller's jobs, newest first", {200: Reply("The jobs.", JobList)}, security=USER, scope=JOBS_READ,
        errors=TOKEN + STORAGE),
    "get_job": Operation(
        "One job", {200: Reply("The job.", Job)}, path=JobPath, security=USER, scope=JOBS_READ,
        errors=TOKEN + STORAGE + (errors.InvalidId, errors.NotFound),
        description="404 for unknown ids and for other users' jobs."),
    "delete_job": Operation(
        "Delete a job, its MP3 and its video", {204: Reply("Deleted.", media=None)}, path=JobPath,
        security=USER, scope=JOBS_WRITE, errors=TOKEN + STORAGE + CSRF + (errors.InvalidId, errors.NotFound),
        description="A conversion in progress stops. 404 for unknown ids and for other users' jobs."),
    "download": Operation(
        "Download an MP3", {
            200: Reply("The MP3, streamed.", media=MP3, headers=TEXT_HEADERS, schema=binary(MP3)),
            206: Reply("The requested byte range.", media=MP3, schema=binary(MP3),
                       headers={"Content-Range": "The range sent."}),
            304: Reply("Not modified (If-None-Match).", media=None)},
        query=DownloadQuery, headers=DownloadHeaders, security=USER, scope=JOBS_READ,
        errors=TOKEN + STORAGE + (errors.InvalidId, errors.NotFound, errors.NotReady,
                                  RequestedRangeNotSatisfiable),
        description="`fid` is the MP3 id from the email; a job id works too (409 `not_ready` until its "
                    "MP3 exists). 404 for unknown ids and for other users' files."),
    "archive": Operation(
        "Download the MP3s of several finished jobs as one ZIP",
        {200: Reply("The ZIP, streamed as it is built.", media=ZIP, schema=binary(ZIP), headers={
            "Content-Disposition": "`attachment; filename=\"mp3svc-<date>.zip\"`.",
            "Content-Length": "Bytes in the body."})},
        body=ArchiveBody, security=USER, scope=JOBS_READ,
        errors=TOKEN + STORAGE + CSRF + JSON_BODY + (InvalidInput, errors.NotFound, errors.NotReady),
        description="One MP3 per job (1 to %d of the caller's finished jobs, each once), stored "
                    "uncompressed under the name GET /download gives it, a repeat numbered (`clip.mp3`, "
                    "`clip (2).mp3`); ZIP64 when it needs to be. Every id is checked before anything is "
                    "sent: 404 for an unknown id or another user's job, 409 `not_ready` for one not "
                    "done." % ARCHIVE_MAX_JOBS),
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
        headers=TusCreate, security=USER, scope=JOBS_WRITE, tag="resumable uploads",
        errors=TOKEN + STORAGE + CSRF + TUS + (tus.InvalidHeader, tus.TooLarge, errors.EmptyFile,
                                               InvalidOption, errors.QuotaExceeded, errors.TooManyJobs,
                                               errors.StorageFull),
        description="The same token, limits, quotas and errors as POST /upload."),
    "tus_head": Operation(
        "How many bytes of an upload the server holds",
        {200: Reply("The offset.", media=None, headers={
            "Upload-Offset": "Bytes held.", "Upload-Length": "Bytes of the whole file.",
            "Upload-Expires": "When the unfinished upload is removed."})},
        path=UploadPath, headers=TusVersion, security=USER, scope=JOBS_WRITE, tag="resumable uploads",
        errors=TOKEN + STORAGE + TUS + (errors.InvalidId, errors.NotFound),
        description="404 for unknown, expired or other users' uploads."),
    "tus_patch": Operation(
        "Append bytes at Upload-Offset",
        {204: Reply("Stored; the last byte queues the job (GET /jobs/<id>).", media=None, headers={
            "Upload-Offset": "Bytes held now.", "Upload-Expires": "When the unfinished upload is removed."})},
        path=UploadPath, headers=TusPatch, raw=tus.OFFSET_CONTENT_TYPE, security=USER, scope=JOBS_WRITE,
        tag="resumable uploads",
        errors=TOKEN + STORAGE + CSRF + TUS + (
            tus.InvalidHeader, tus.WrongContentType, tus.OffsetMismatch, tus.TooLarge, errors.InvalidId,
            errors.NotFound, errors.BadRequest, errors.UploadExpired, errors.UploadTooSlow,
            errors.QuotaExceeded, errors.BrokerUnavailable)),
    "tus_terminate": Operation(
        "Abandon an unfinished upload", {204: Reply("Removed.", media=None)},
        path=UploadPath, headers=TusVersion, security=USER, scope=JOBS_WRITE, tag="resumable uploads",
        errors=TOKEN + STORAGE + CSRF + TUS + (errors.InvalidId, errors.NotFound, errors.UploadFinished)),
    # --- webhooks (services/gateway/routes/webhooks.py; the notification service posts them) ---
    "create_webhook": Operation(
        "Register a webhook for job.finished and/or job.failed",
        {201: Reply("Registered; the secret is shown this once.", WebhookCreated)},
        body=WebhookBody, security=USER, scope=WEBHOOKS, tag="webhooks",
        errors=TOKEN + CSRF + JSON_BODY + NOTIFY + (InvalidInput, InvalidUrl, InvalidWebhook),
        description="Each delivery is a POST of JSON `{event, created_at, job}` (`job` as GET "
                    "/jobs/<id> shows it) with `Mp3svc-Event`, `Mp3svc-Delivery` (the same id on every "
                    "retry) and `Mp3svc-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                    "\"<t>.<raw body>\" with the secret>`. A 2xx ends it; anything else, a redirect, "
                    "or no answer within `WEBHOOK_TIMEOUT` is retried with backoff for "
                    "`WEBHOOK_RETRY_HOURS`. 400 `invalid_url` unless the URL is http(s) and its host "
                    "reaches public addresses only (checked again on every delivery), unless "
                    "`WEBHOOK_ALLOW_PRIVATE`. At most 20 per account (400 `invalid_input`)."),
    "list_webhooks": Operation(
        "The caller's webhooks (without their secrets)", {200: Reply("The webhooks.", WebhookList)},
        security=USER, scope=WEBHOOKS, tag="webhooks", errors=TOKEN + NOTIFY),
    "delete_webhook": Operation(
        "Delete a webhook and its deliveries", {204: Reply("Deleted.", media=None)}, path=WebhookPath,
        security=USER, scope=WEBHOOKS, tag="webhooks",
        errors=TOKEN + CSRF + NOTIFY + (errors.InvalidId, UnknownWebhook),
        description="404 for unknown ids and for other users' webhooks."),
    "webhook_deliveries": Operation(
        "A webhook's latest deliveries, with the log of their attempts",
        {200: Reply("The deliveries.", DeliveryList)}, path=WebhookPath, security=USER,
        scope=WEBHOOKS, tag="webhooks", errors=TOKEN + NOTIFY + (errors.InvalidId, UnknownWebhook),
        description="404 for unknown ids and for other users' webhooks."),
    # --- the web page (services/gateway/routes/pages.py, sessions.py) ---
    "web_index": Operation(
        "The web page", {200: Reply("An HTML page.", media="text/html", schema={"type": "string"}),
                         304: Reply("Not modified.", media=None)},
        security=(), tag="web page"),
    "web_static": Operation(
        "A file of the web page", {200: Reply("The file.", media=WEB.media_types, schema={"type": "string"}),
                                   304: Reply("Not modified.", media=None)},
        path=WebPath, errors=(NotFoundPage,), security=(), tag="web page"),
    "web_session": Operation(
        "Who is logged in", {200: Reply("The account.", User)}, security=USER, scope=LOGIN_ONLY,
        tag="web page", errors=TOKEN),
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
        {200: Reply("The file.", media=DOCS.media_types,
                    schema={"type": "string"}),
         304: Reply("Not modified.", media=None)},
        path=asset_path, errors=(NotFoundPage,), security=(), tag="documentation"),
}

# the accounts' and API tokens' routes are described in openapi/accounts.py and tokens.py, which add
# them to OPERATIONS
from services.gateway.openapi import accounts  # noqa: E402,F401
from services.gateway.openapi import tokens  # noqa: E402,F401
