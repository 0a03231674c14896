"""The API's models for its description: responses, parameters and forms (pydantic v2). Request
bodies the gateway validates at runtime live in services/gateway/schemas.py."""
import functools
from typing import Annotated, Literal, Optional

from pydantic import ConfigDict, Field, create_model

from services.common import constants as c
from services.common.options import ConversionOptions
from services.gateway import tus
from services.gateway.schemas import JOB_ID_RE, Model
from services.gateway.static import DOCS

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


# --- webhooks (services/gateway/routes/webhooks.py) ---
WebhookId = Annotated[str, Field(pattern=JOB_ID_RE.pattern, description="32 hexadecimal characters.")]
WebhookEvent = Literal[c.WEBHOOK_EVENTS]


class Webhook(Model):
    id: WebhookId
    url: str
    events: list[WebhookEvent]
    created_at: Timestamp


class WebhookCreated(Webhook):
    secret: str = Field(description="Shown once: the key of the deliveries' `Mp3svc-Signature` "
                                    "(HMAC-SHA256 of `<t>.<raw body>`).")


class WebhookList(Model):
    webhooks: list[Webhook] = Field(description="The caller's webhooks, oldest first.")


class WebhookPath(Model):
    webhook_id: WebhookId


class DeliveryAttempt(Model):
    at: Timestamp
    status: Optional[int] = Field(description="The receiver's HTTP status; null when it gave none.")
    result: Literal["delivered", "failed", "timeout"]
    error: Optional[str] = Field(description="Why it failed, for a person.")
    ms: int = Field(description="Milliseconds the attempt took.")


class Delivery(Model):
    id: str = Field(description="The `Mp3svc-Delivery` header: the same on every attempt.")
    event: WebhookEvent
    job_id: JobId
    created_at: Timestamp
    status: Literal[c.DELIVERY_PENDING, c.DELIVERY_SENDING, c.DELIVERY_DELIVERED, c.DELIVERY_FAILED] = \
        Field(description="`failed`: given up after `WEBHOOK_RETRY_HOURS`.")
    attempts: int = Field(description="Attempts so far.")
    next_attempt_at: Optional[Timestamp] = Field(description="When pending: the next attempt.")
    log: list[DeliveryAttempt] = Field(description="The attempts, oldest first (the latest 30).")


class DeliveryList(Model):
    deliveries: list[Delivery] = Field(description="The webhook's latest deliveries, newest first.")


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


@functools.lru_cache(maxsize=None)
def asset_path():
    """The path parameter of GET /docs/<asset>: one of the files served (read when first asked)."""
    return create_model("AssetPath", __base__=Model, asset=(
        Literal[tuple(sorted(DOCS.names()))], Field(description="A file of the documentation page.")))
