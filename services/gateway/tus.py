"""tus 1.0.0 protocol helpers (core, creation, termination, expiration): header parsing and building.

Pure functions, no I/O and no nameko: the gateway's routes call them and map the exceptions below to
HTTP answers (each exception's args[0] is the sentence for a person).
Protocol: https://tus.io/protocols/resumable-upload
"""
import base64
import binascii
import datetime
import re
from email.utils import format_datetime

TUS_RESUMABLE = "1.0.0"
TUS_VERSION = "1.0.0"
TUS_EXTENSION = "creation,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

MAX_METADATA_BYTES = 4096
MAX_METADATA_KEYS = 32

_DIGITS = re.compile(r"[0-9]{1,19}")
_KEY = re.compile(r"[!-+\--~]+")  # printable ASCII without space and comma


class TusError(Exception):
    """A request that breaks the tus protocol; args[0] is the sentence for a person."""


class InvalidHeader(TusError):
    """A tus header is missing or malformed (400)."""


class UnsupportedVersion(TusError):
    """Tus-Resumable names a protocol version this server does not speak (412, with Tus-Version)."""


class WrongContentType(TusError):
    """A PATCH whose body is not application/offset+octet-stream (415)."""


class OffsetMismatch(TusError):
    """Upload-Offset differs from the bytes the server holds (409)."""


class TooLarge(TusError):
    """Upload-Length over the maximum, or a PATCH that runs past Upload-Length (413)."""


def check_resumable(value):
    """Every request but OPTIONS must carry `Tus-Resumable: 1.0.0`."""
    if value is None:
        raise UnsupportedVersion("The Tus-Resumable header is missing; this server speaks tus %s."
                                 % TUS_VERSION)
    if value.strip() != TUS_RESUMABLE:
        raise UnsupportedVersion("Tus-Resumable %r is not supported; this server speaks tus %s."
                                 % (value[:32], TUS_VERSION))


def _non_negative(name, value):
    if value is None:
        raise InvalidHeader("The %s header is missing." % name)
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        raise InvalidHeader("The %s header must be a non-negative whole number of bytes." % name)
    return int(value)


def parse_length(value, max_size):
    """Upload-Length of a creation request, at most max_size bytes."""
    length = _non_negative("Upload-Length", value)
    if length > max_size:
        raise TooLarge("The upload is %d bytes, over the limit of %d bytes." % (length, max_size))
    return length


def parse_offset(value, expected):
    """Upload-Offset of a PATCH; it must equal the bytes the server already holds."""
    offset = _non_negative("Upload-Offset", value)
    if offset != expected:
        raise OffsetMismatch("Upload-Offset is %d but the server holds %d bytes of this upload; "
                             "ask with HEAD and continue from there." % (offset, expected))
    return offset


def check_content_type(value):
    """A PATCH body must be application/offset+octet-stream (parameters ignored)."""
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if media_type != OFFSET_CONTENT_TYPE:
        raise WrongContentType("A PATCH body must have Content-Type %s." % OFFSET_CONTENT_TYPE)


def check_chunk(offset, content_length, length):
    """A PATCH of content_length bytes (None when unknown) at offset must not run past length."""
    if content_length is not None and offset + content_length > length:
        raise TooLarge("This PATCH would end at byte %d, past the upload's length of %d bytes."
                       % (offset + content_length, length))


def parse_metadata(value):
    """Upload-Metadata (`key base64value,key2 base64value2`, a value may be empty) -> {str: str}.
    Keys are unique printable ASCII without spaces or commas; values UTF-8 text."""
    if value is None or not value.strip():
        return {}
    if len(value.encode("utf-8", "replace")) > MAX_METADATA_BYTES:
        raise InvalidHeader("Upload-Metadata is longer than %d bytes." % MAX_METADATA_BYTES)
    pairs = value.split(",")
    if len(pairs) > MAX_METADATA_KEYS:
        raise InvalidHeader("Upload-Metadata has more than %d keys." % MAX_METADATA_KEYS)
    result = {}
    for pair in pairs:
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not _KEY.fullmatch(parts[0]):
            raise InvalidHeader("Upload-Metadata must be comma-separated `key base64value` pairs "
                                "with keys of printable ASCII.")
        key = parts[0]
        if key in result:
            raise InvalidHeader("Upload-Metadata names the key %r twice." % key)
        try:
            result[key] = base64.b64decode(parts[1] if len(parts) == 2 else "", validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidHeader("The Upload-Metadata value of %r is not base64-encoded UTF-8 text." % key)
    return result


def encode_metadata(metadata):
    """{str: str} -> an Upload-Metadata header value (the inverse of parse_metadata)."""
    return ",".join("%s %s" % (key, base64.b64encode(str(value).encode("utf-8")).decode("ascii"))
                    for key, value in metadata.items())


def http_date(when):
    """RFC 7231 IMF-fixdate (`Wed, 25 Nov 2026 16:00:00 GMT`) of a datetime (naive means UTC) or epoch."""
    if isinstance(when, (int, float)):
        when = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return format_datetime(when.astimezone(datetime.timezone.utc), usegmt=True)


def options_headers(max_size):
    """Answer to `OPTIONS /uploads` (204)."""
    return {"Tus-Resumable": TUS_RESUMABLE, "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSION, "Tus-Max-Size": str(max_size)}


def response_headers(offset=None, length=None, expires=None, location=None, metadata=None):
    """Headers of a tus answer: creation (location, expires), HEAD (offset, length, expires,
    metadata; never cached), PATCH (offset, expires). Error answers carry just Tus-Resumable."""
    headers = {"Tus-Resumable": TUS_RESUMABLE}
    if location is not None:
        headers["Location"] = location
    if offset is not None:
        headers["Upload-Offset"] = str(offset)
    if length is not None:
        headers["Upload-Length"] = str(length)
        headers["Cache-Control"] = "no-store"
    if expires is not None:
        headers["Upload-Expires"] = http_date(expires)
    if metadata:
        headers["Upload-Metadata"] = encode_metadata(metadata)
    return headers


def version_headers():
    """Extra headers of a 412 answer to an unsupported Tus-Resumable."""
    return {"Tus-Version": TUS_VERSION}
