"""The conversion options (contract: "Conversion options"): every invalid value is an InvalidOption
naming its field; valid forms normalise to JSON-serialisable values; the model re-reads them."""
import json

import pytest

from services.common.options import BITRATES, MAX_TEXT, SAMPLE_RATES, ConversionOptions, InvalidOption, \
    clean_text, parse_options, parse_time


@pytest.mark.parametrize("fields, expected", [
    ({}, {}),
    ({"quality": "0"}, {"quality": 0}),
    ({"quality": "9"}, {"quality": 9}),
    ({"bitrate": "320"}, {"bitrate": 320}),
    ({"sample_rate": "8000", "channels": "1"}, {"sample_rate": 8000, "channels": 1}),
    ({"channels": "2"}, {"channels": 2}),
    ({"start": "12.5"}, {"start": 12.5}),
    ({"start": "0", "end": "1"}, {"start": 0.0, "end": 1.0}),
    ({"start": "01:02", "end": "1:02:03.5"}, {"start": 62.0, "end": 3723.5}),
    ({"start": "00:00:01.250", "end": "00:02.5"}, {"start": 1.25, "end": 2.5}),
    ({"end": "0.001"}, {"end": 0.001}),
    ({"audio_track": "3"}, {"audio_track": 3}),
    ({"normalize": "true", "tags": "false"}, {"normalize": True, "tags": False}),
    ({"normalize": "false", "tags": "true"}, {"normalize": False, "tags": True}),
    ({"title": "Título ✓", "artist": "x" * MAX_TEXT, "album": "A"},
     {"title": "Título ✓", "artist": "x" * MAX_TEXT, "album": "A"}),
    ({"cover": "auto"}, {"cover": "auto"}),
    ({"cover": "none"}, {"cover": "none"}),
    ({"cover": "NONE"}, {"cover": "none"}),
    ({"cover": "12"}, {"cover": 12.0}),
    ({"cover": "00:01:30"}, {"cover": 90.0}),
    # not options (the form's file name, tus' filename) and empty controls are ignored
    ({"filename": "clip.mp4", "file": "x", "quality": "", "bitrate": "  "}, {}),
])
def test_valid_forms_normalise(fields, expected):
    options = parse_options(fields)
    assert options == expected
    assert json.loads(json.dumps(options)) == options
    as_text = {key: str(value).lower() if isinstance(value, bool) else str(value)
               for key, value in options.items()}
    assert parse_options(as_text) == options  # idempotent


@pytest.mark.parametrize("value", [str(b) for b in BITRATES])
def test_every_contract_bitrate(value):
    assert parse_options({"bitrate": value}) == {"bitrate": int(value)}


@pytest.mark.parametrize("value", [str(r) for r in SAMPLE_RATES])
def test_every_contract_sample_rate(value):
    assert parse_options({"sample_rate": value}) == {"sample_rate": int(value)}


@pytest.mark.parametrize("fields, field", [
    ({"quality": "10"}, "quality"),
    ({"quality": "-1"}, "quality"),
    ({"quality": "2.0"}, "quality"),
    ({"quality": "two"}, "quality"),
    ({"quality": "+2"}, "quality"),
    ({"bitrate": "129"}, "bitrate"),
    ({"bitrate": "128k"}, "bitrate"),
    ({"bitrate": "0"}, "bitrate"),
    ({"bitrate": "128", "quality": "2"}, "bitrate"),
    ({"sample_rate": "44101"}, "sample_rate"),
    ({"sample_rate": "96000"}, "sample_rate"),
    ({"channels": "0"}, "channels"),
    ({"channels": "3"}, "channels"),
    ({"channels": "stereo"}, "channels"),
    ({"start": "-1"}, "start"),
    ({"start": "1:60"}, "start"),
    ({"start": "61:00:00:00"}, "start"),
    ({"start": "12.5s"}, "start"),
    ({"start": "nan"}, "start"),
    ({"start": "inf"}, "start"),
    ({"start": "1e3"}, "start"),
    ({"start": "0.0001"}, "start"),
    ({"end": "abc"}, "end"),
    ({"end": "0"}, "end"),
    ({"start": "5", "end": "5"}, "end"),
    ({"start": "00:10", "end": "9.999"}, "end"),
    ({"audio_track": "-1"}, "audio_track"),
    ({"audio_track": "100"}, "audio_track"),
    ({"audio_track": "first"}, "audio_track"),
    ({"normalize": "maybe"}, "normalize"),
    ({"tags": "2"}, "tags"),
    ({"title": "x" * (MAX_TEXT + 1)}, "title"),
    ({"artist": "x" * 100_000}, "artist"),
    ({"album": "y" * (MAX_TEXT + 1)}, "album"),
    ({"cover": "middle"}, "cover"),
    ({"cover": "-3"}, "cover"),
])
def test_invalid_values_name_the_field(fields, field):
    with pytest.raises(InvalidOption) as info:
        parse_options(fields)
    assert info.value.field == field
    sentence = info.value.args[0]
    assert len(info.value.args) == 1 and "'%s'" % field in sentence and sentence.endswith(".")
    assert "pydantic" not in sentence and "\n" not in sentence


def test_bitrate_with_quality_says_why():
    with pytest.raises(InvalidOption) as info:
        parse_options({"quality": "4", "bitrate": "192"})
    assert "together with 'quality'" in info.value.args[0]


def test_text_is_cleaned_of_controls_and_bidi_overrides():
    options = parse_options({"title": "a\r\nb\tc\x00d\u202eevil\u2066e", "artist": "  spaced   out "})
    assert options == {"title": "a b c d evil e", "artist": "spaced out"}


def test_clean_text_caps_and_strips():
    assert clean_text("x" * 100_000) == "x" * MAX_TEXT
    assert clean_text("\x1b[31mred\x1b[0m\x85", 20) == "[31mred [0m"
    assert clean_text("abc def", 5) == "abc d"
    assert clean_text("e\u0301") == "\u00e9"  # NFC
    assert clean_text(12) == "12"


@pytest.mark.parametrize("text, seconds", [
    ("0", 0.0), ("7", 7.0), ("12.5", 12.5), ("0.05", 0.05), ("1:05", 65.0), ("01:05.250", 65.25),
    ("1:00:00", 3600.0), ("10:00:00.5", 36000.5), (3.25, 3.25), (4, 4.0),
])
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


def test_the_model_reads_back_stored_options_with_the_same_rules():
    stored = parse_options({"bitrate": "128", "start": "0:01", "end": "3", "tags": "false", "cover": "2"})
    options = ConversionOptions.model_validate(stored)
    assert (options.bitrate, options.start, options.end, options.cover) == (128, 1.0, 3.0, 2.0)
    assert options.with_tags is False and options.reencode is True and options.track == 0
    defaults = ConversionOptions.model_validate({})
    assert defaults.with_tags is True and defaults.reencode is False and defaults.cover is None
    for title_only in ({"title": "x"}, {"cover": "none"}, {"tags": "false"}, {"audio_track": "1"}):
        assert ConversionOptions.model_validate(parse_options(title_only)).reencode is False


def test_openapi_schema_lists_the_allowed_values():
    schema = ConversionOptions.model_json_schema()["properties"]
    assert schema["bitrate"]["anyOf"][0]["enum"] == list(BITRATES)
    assert schema["sample_rate"]["anyOf"][0]["enum"] == list(SAMPLE_RATES)
    assert (schema["quality"]["anyOf"][0]["minimum"], schema["quality"]["anyOf"][0]["maximum"]) == (0, 9)
    assert all(prop.get("description") for prop in schema.values())
