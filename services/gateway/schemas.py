"""What the gateway sends and accepts: job documents, file names, ids, and the request models it
validates JSON bodies with (pydantic v2; the OpenAPI document, services/gateway/openapi/, shows them)."""
import re
import unicodedata
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from services.auth.exceptions import InvalidInput
from services.auth.schemas import ATOM, LABEL, MAX_EMAIL, PASSWORD_MAX, PASSWORD_MIN
from services.common import constants as c
from services.common.jobs import job_to_json  # noqa: F401 (the JSON of a job, shared with webhooks)
from services.common.options import FIELDS, InvalidOption, parse_options
# (notification checks a webhook's URL itself: 400 invalid_url)
from services.notification.targets import MAX_URL

MAX_FILENAME = 255
JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u0080-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def options_from(fields, ignore):
    """The conversion options among a client's fields (form fields, tus metadata), validated and
    normalised; a field that is neither an option nor in `ignore` is refused (a typo would
    otherwise be silently dropped)."""
    for name in fields:
        if name not in FIELDS and name not in ignore:
            raise InvalidOption(name, "'%s' is not an option; the options are: %s."
                                % (name[:64], ", ".join(FIELDS)))
    return parse_options(fields)


def clean_filename(raw):
    """A name safe to store and to show: no directories, no control or bidi characters, NFC,
    at most 255 characters with the extension kept."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("", name).strip().strip(".")
    if not name:
        return "upload"
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[:MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME]
    return name


def content_disposition(filename):
    """attachment with an ASCII fallback and RFC 5987 `filename*` for anything else."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r'[^A-Za-z0-9._\- ()\[\]]', "_", ascii_name).strip()
    stem, dot, ext = ascii_name.rpartition(".")
    if not stem.strip("._ "):  # nothing readable left of the name (e.g. all non-Latin)
        ascii_name = "audio." + (ext if dot and ext else "mp3")
    value = 'attachment; filename="%s"' % ascii_name
    if ascii_name != filename:
        value += "; filename*=UTF-8''%s" % quote(filename, safe="")
    return value


def is_job_id(value):
    return isinstance(value, str) and JOB_ID_RE.fullmatch(value) is not None


def archive_names(filenames):
    """The names of files in one archive: each as given, a repeat numbered before its extension
    (`clip.mp3`, `clip (2).mp3`), case aside (unpacked on a case-insensitive disk they would clash)."""
    taken, names = set(), []
    for filename in filenames:
        stem, dot, ext = filename.rpartition(".")
        if not dot or not stem:
            stem, dot, ext = filename, "", ""
        name, n = filename, 1
        while name.casefold() in taken:
            n += 1
            name = "%s (%d)%s%s" % (stem, n, dot, ext)
        taken.add(name.casefold())
        names.append(name)
    return names


# --- request models ---------------------------------------------------------------------------
class Model(BaseModel):
    model_config = ConfigDict(strict=True)  # no coercion: a number is not an email address


# auth's mailbox rule (services/auth/schemas.py EMAIL_RE) from the same pieces, as a JSON Schema pattern
# (anchored, no named groups); auth still checks the local part's 64 characters
EMAIL_PATTERN = r"^%s(?:\.%s)*@%s(?:\.%s)+$" % (ATOM, ATOM, LABEL, LABEL)


class RegisterBody(Model):
    """The body of POST /register. Blanks around the address are ignored; auth checks it again."""
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_EMAIL,
                                            pattern=EMAIL_PATTERN)] = Field(
        description="One plain mailbox, `local@domain`.")
    password: Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]


ARCHIVE_MAX_JOBS = 100


class ArchiveBody(Model):
    """The body of POST /jobs/archive."""
    job_ids: list[Annotated[str, StringConstraints(pattern=JOB_ID_RE.pattern)]] = Field(
        min_length=1, max_length=ARCHIVE_MAX_JOBS, json_schema_extra={"uniqueItems": True},
        description="Ids of the caller's finished jobs (1 to %d, each once); the archive holds "
                    "their MP3s in this order." % ARCHIVE_MAX_JOBS)

    @field_validator("job_ids")
    @classmethod
    def each_once(cls, ids):
        if len(set(ids)) < len(ids):
            raise PydanticCustomError("unique_items", "a job is named more than once")
        return ids


class WebhookBody(Model):
    """The body of POST /webhooks."""
    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL)] = Field(
        description="Where the deliveries are POSTed: http:// or https://, reaching a public address.")
    events: Annotated[list[Literal[c.WEBHOOK_EVENTS]], Field(min_length=1, max_length=8)] = Field(
        description="The events to deliver: `%s` (a job's MP3 is ready), `%s` (its conversion "
                    "failed)." % c.WEBHOOK_EVENTS)


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
