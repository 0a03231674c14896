"""Conversion options (contract: "Conversion options"): one pydantic model is the whole spec.

The gateway validates what a client sent with `parse_options` (form fields or tus Upload-Metadata,
all strings) and stores the normalised dict on the job; the converter reads it back with
`ConversionOptions.model_validate(job_options)`, which applies the same rules and the defaults.
"""
import re
import unicodedata
from typing import Annotated, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, \
    model_validator
from pydantic_core import PydanticCustomError

BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # kbit/s, MPEG-1 layer III
SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what MP3 can carry
MAX_TEXT = 256
MAX_AUDIO_TRACK = 99
AUTO, NONE = "auto", "none"

# C0/C1 controls (CR, LF, TAB, NUL, ...) and the bidirectional overrides/isolates/marks that can make
# a title display as something else (U+202A..E, U+2066..9, U+200E/F, U+061C).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SECONDS = re.compile(r"^\d{1,7}(\.\d{1,3})?$")
_CLOCK = re.compile(r"^(?:(\d{1,3}):)?([0-5]?\d):([0-5]\d)(\.\d{1,3})?$")


def clean_text(value, limit=MAX_TEXT):
    """Text from an untrusted source made harmless for a tag, a log line or a subject: NFC, control
    and bidi-override characters removed, whitespace collapsed, at most `limit` characters."""
    text = unicodedata.normalize("NFC", str(value)[:limit * 4])
    text = _UNSAFE.sub(" ", text)
    return " ".join(text.split())[:limit].strip()


class InvalidOption(Exception):
    """A bad option value; args[0] is a sentence for the client naming the field."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


def parse_time(value):
    """Seconds (float, to the millisecond) from `12.5`, `MM:SS[.mmm]` or `HH:MM:SS[.mmm]`."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        if not 0 <= value < 10 ** 7:
            raise ValueError(value)
        return round(float(value), 3)
    text = str(value).strip()
    if _SECONDS.match(text):
        return round(float(text), 3)
    match = _CLOCK.match(text)
    if not match:
        raise ValueError(value)
    hours, minutes, seconds, fraction = match.groups()
    return round(int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + float(fraction or 0), 3)


def _one_of(allowed):
    def check(value):
        if value not in allowed:
            raise ValueError(value)
        return value
    return check


def _time(value):
    try:
        return parse_time(value)
    except ValueError:
        raise PydanticCustomError("time", "not a time") from None


def _cover(value):
    text = str(value).strip().lower()
    if text in (AUTO, NONE):
        return text
    return _time(value)


def _text(value):
    if not isinstance(value, str):
        raise PydanticCustomError("text", "not text")
    if len(value) > MAX_TEXT:
        raise PydanticCustomError("too_long", "too long")
    return clean_text(value)


def _int(value):
    """Integers only as digits ("2", not "2.0", " 2" or "+2")."""
    if isinstance(value, str) and not re.fullmatch(r"\d{1,6}", value):
        raise PydanticCustomError("int", "not an integer")
    return value


Bitrate = Annotated[int, BeforeValidator(_int), AfterValidator(_one_of(BITRATES)),
                    Field(json_schema_extra={"enum": list(BITRATES)})]
SampleRate = Annotated[int, BeforeValidator(_int), AfterValidator(_one_of(SAMPLE_RATES)),
                       Field(json_schema_extra={"enum": list(SAMPLE_RATES)})]
Seconds = Annotated[float, BeforeValidator(_time)]
Text = Annotated[str, BeforeValidator(_text)]

# what each option accepts, for the error sentence and the OpenAPI description (written once)
EXPECTED = {
    "quality": "an integer from 0 (best) to 9 (smallest)",
    "bitrate": "one of %s (kbit/s)" % ", ".join(map(str, BITRATES)),
    "sample_rate": "one of %s (Hz)" % ", ".join(map(str, SAMPLE_RATES)),
    "channels": "1 (mono) or 2 (stereo)",
    "start": "a time as seconds (12.5) or [HH:]MM:SS[.mmm]",
    "end": "a time as seconds (12.5) or [HH:]MM:SS[.mmm], after start",
    "audio_track": "an integer from 0 to %d (the audio streams of the upload, counted from 0)"
                   % MAX_AUDIO_TRACK,
    "normalize": "true or false",
    "tags": "true or false",
    "title": "text of at most %d characters" % MAX_TEXT,
    "artist": "text of at most %d characters" % MAX_TEXT,
    "album": "text of at most %d characters" % MAX_TEXT,
    "cover": "auto, none, or a time in the video as seconds or [HH:]MM:SS[.mmm]",
}


def _field(**kwargs):
    return Field(None, **kwargs)


class ConversionOptions(BaseModel):
    """The options of one conversion. Unset fields are None and mean "the default"."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    quality: Optional[Annotated[int, Field(ge=0, le=9), BeforeValidator(_int)]] = _field(
        description="LAME VBR quality: " + EXPECTED["quality"] + "; default MP3_QUALITY")
    bitrate: Optional[Bitrate] = _field(
        description="constant bitrate instead of VBR: " + EXPECTED["bitrate"] + "; not with quality")
    sample_rate: Optional[SampleRate] = _field(
        description="output sample rate: " + EXPECTED["sample_rate"] + "; default the source's")
    channels: Optional[Annotated[int, Field(ge=1, le=2), BeforeValidator(_int)]] = _field(
        description=EXPECTED["channels"] + "; default the source's, at most 2")
    start: Optional[Seconds] = _field(description="trim start: " + EXPECTED["start"])
    end: Optional[Seconds] = _field(description="trim end: " + EXPECTED["end"])
    audio_track: Optional[Annotated[int, Field(ge=0, le=MAX_AUDIO_TRACK), BeforeValidator(_int)]] = _field(
        description=EXPECTED["audio_track"] + "; default 0")
    normalize: Optional[bool] = _field(
        description="EBU R128 loudness normalisation to -16 LUFS integrated; default false")
    tags: Optional[bool] = _field(
        description="ID3v2 tags, chapters and cover from the upload; default true")
    title: Optional[Text] = _field(description="title tag override: " + EXPECTED["title"])
    artist: Optional[Text] = _field(description="artist tag override: " + EXPECTED["artist"])
    album: Optional[Text] = _field(description="album tag override: " + EXPECTED["album"])
    cover: Optional[Annotated[Union[float, str], BeforeValidator(_cover)]] = _field(
        description="cover picture: " + EXPECTED["cover"] + "; default auto")

    @model_validator(mode="after")
    def _consistent(self):
        if self.bitrate is not None and self.quality is not None:
            raise PydanticCustomError("invalid_option", "Option 'bitrate' cannot be used together with "
                                      "'quality': choose a constant bitrate or a VBR quality.",
                                      {"field": "bitrate"})
        if self.end is not None and self.end <= (self.start or 0):
            raise PydanticCustomError("invalid_option", "Option 'end' must be after 'start'.",
                                      {"field": "end"})
        return self

    # -- effective values ------------------------------------------------------------------------
    @property
    def with_tags(self):
        return self.tags is not False

    @property
    def track(self):
        return self.audio_track or 0

    @property
    def reencode(self):
        """True when an option changes the audio itself (so an MP3 stream cannot be copied)."""
        return any(getattr(self, name) is not None for name in (
            "quality", "bitrate", "sample_rate", "channels", "start", "end")) or bool(self.normalize)


FIELDS = tuple(ConversionOptions.model_fields)


def parse_options(fields):
    """Validated, normalised options from string fields (multipart form fields or tus metadata).

    Keys that are not options (filename, ...) are ignored, and so are empty values (an untouched
    form control). Returns only the options set, JSON-serialisable; raises InvalidOption."""
    given = {key: value for key, value in fields.items()
             if key in FIELDS and value is not None and str(value).strip() != ""}
    try:
        options = ConversionOptions.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = (error.get("ctx") or {}).get("field") or (error["loc"] or ("options",))[0]
        if error["type"] == "invalid_option":
            raise InvalidOption(field, error["msg"]) from None
        raise InvalidOption(field, "Option '%s' must be %s." % (field, EXPECTED[field])) from None
    return options.model_dump(mode="json", exclude_none=True)
