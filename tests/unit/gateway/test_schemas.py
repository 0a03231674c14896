"""What the gateway shows and accepts: file names, Content-Disposition, job JSON, ids, error table."""
import datetime
import unicodedata
from urllib.parse import unquote

import pytest
from bson import ObjectId
from kombu.exceptions import OperationalError as KombuOperationalError
from nameko.exceptions import UnknownService
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from werkzeug import exceptions as http_errors

from services.auth import exceptions as auth_errors
from services.gateway import exceptions as gw
from services.gateway.schemas import (
    MAX_FILENAME, ArchiveBody, archive_names, clean_filename, content_disposition, is_job_id,
    job_to_json, parse)
from services.common.jobs import Job
from services.common.options import InvalidOption
from services.converter.store import mp3_filename


# --- clean_filename ---------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("clip.mp4", "clip.mp4"),
    ("holiday clip.mp4", "holiday clip.mp4"),
    ("videos/2024/clip.mp4", "clip.mp4"),
    ("/etc/passwd", "passwd"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\Videos\\clip.mp4", "clip.mp4"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("mixed/dirs\\clip.mp4", "clip.mp4"),
])
def test_clean_filename_drops_directories(raw, expected):
    assert clean_filename(raw) == expected


@pytest.mark.parametrize("raw", [
    "clip\r\n.mp4", "cl\rip.mp4", "clip\n.mp4", "c\x00lip.mp4", "cl\tip.mp4", "clip\x1b[31m.mp4",
    "clip\x7f.mp4", "clip\u0085.mp4", "clip\u2028.mp4", "clip\u200b.mp4", "\ufeffclip.mp4",
])
def test_clean_filename_removes_control_and_invisible_characters(raw):
    cleaned = clean_filename(raw)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in cleaned)
    assert cleaned.replace("[31m", "") == "clip.mp4"


@pytest.mark.parametrize("override", ["\u202e", "\u202d", "\u202a", "\u202b", "\u202c",
                                      "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f"])
def test_clean_filename_removes_bidi_overrides(override):
    # "invoice<RLO>4pm.exe" displays as "invoiceexe.mp4" in a bidi-aware client
    cleaned = clean_filename("invoice%s4pm.exe" % override)
    assert cleaned == "invoice4pm.exe"


def test_clean_filename_shortens_long_names_keeping_the_extension():
    cleaned = clean_filename("a" * 300 + ".mp4")
    assert len(cleaned) == MAX_FILENAME == 255
    assert cleaned.endswith(".mp4")
    assert cleaned[:-4] == "a" * 251


def test_clean_filename_shortens_long_non_ascii_names_by_characters():
    cleaned = clean_filename("\u00e9" * 400 + ".webm")
    assert len(cleaned) == 255 and cleaned.endswith(".webm")


def test_clean_filename_long_name_without_usable_extension_is_cut():
    assert clean_filename("b" * 300) == "b" * 255
    weird_ext = "c" * 100 + "." + "d" * 250  # an "extension" longer than 16 is not kept whole
    assert len(clean_filename(weird_ext)) == 255


def test_clean_filename_keeps_a_name_of_exactly_the_limit():
    name = "e" * 251 + ".mp4"
    assert clean_filename(name) == name


@pytest.mark.parametrize("raw", ["", None, ".", "..", "...", " . ", "/", "dir/", "\\", "\r\n",
                                 "\u202e", "   "])
def test_clean_filename_of_nothing_is_upload(raw):
    assert clean_filename(raw) == "upload"


def test_clean_filename_strips_leading_dots_and_spaces():
    assert clean_filename("  ..hidden.mp4  ") == "hidden.mp4"


def test_clean_filename_normalises_to_nfc():
    decomposed = "Cafe\u0301 cre\u0300me.mp4"
    cleaned = clean_filename(decomposed)
    assert cleaned == "Caf\u00e9 cr\u00e8me.mp4"
    assert unicodedata.is_normalized("NFC", cleaned)
    assert clean_filename(cleaned) == cleaned  # idempotent


def test_clean_filename_keeps_ordinary_unicode():
    assert clean_filename("日本語の動画.mp4") == "日本語の動画.mp4"
    assert clean_filename("Ölçü 📹.mov") == "Ölçü 📹.mov"


# --- content_disposition ----------------------------------------------------------------------
def _params(header):
    kind, *rest = [part.strip() for part in header.split(";")]
    params = {}
    for part in rest:
        key, _, value = part.partition("=")
        params[key.strip()] = value
    return kind, params


def test_content_disposition_ascii_name_is_plain():
    header = content_disposition("clip.mp3")
    assert header == 'attachment; filename="clip.mp3"'


def test_content_disposition_keeps_spaces_and_brackets():
    assert content_disposition("my clip (1) [hd].mp3") == \
        'attachment; filename="my clip (1) [hd].mp3"'


@pytest.mark.parametrize("name, fallback", [
    ("caf\u00e9.mp3", "cafe.mp3"),
    ("\u00d6l\u00e7\u00fc.mp3", "Olcu.mp3"),
    ("na\u00efve r\u00e9sum\u00e9.mp3", "naive resume.mp3"),
])
def test_content_disposition_non_ascii_gets_filename_star_and_ascii_fallback(name, fallback):
    kind, params = _params(content_disposition(name))
    assert kind == "attachment"
    assert params["filename"] == '"%s"' % fallback
    star = params["filename*"]
    assert star.startswith("UTF-8''")
    assert unquote(star[len("UTF-8''"):], encoding="utf-8") == name
    assert all(ord(ch) < 128 for ch in content_disposition(name))


@pytest.mark.parametrize("name", ['say "hi".mp3', "a\\b.mp3", "a;b.mp3", 'x";evil=1.mp3'])
def test_content_disposition_quotes_cannot_break_out(name):
    header = content_disposition(name)
    kind, params = _params(header)
    fallback = params["filename"]
    assert fallback.startswith('"') and fallback.endswith('"')
    assert '"' not in fallback[1:-1] and "\\" not in fallback[1:-1]
    assert set(params) == {"filename", "filename*"}
    assert unquote(params["filename*"][len("UTF-8''"):]) == name


def test_content_disposition_header_has_no_line_breaks():
    header = content_disposition("a\r\nSet-Cookie: x=1.mp3")
    assert "\r" not in header and "\n" not in header


def test_content_disposition_fallback_for_a_name_with_no_ascii_at_all():
    header = content_disposition("\u65e5\u672c\u8a9e")
    kind, params = _params(header)
    assert params["filename"] == '"audio.mp3"'
    assert unquote(params["filename*"][len("UTF-8''"):]) == "\u65e5\u672c\u8a9e"


def test_content_disposition_fallback_keeps_a_stem_for_non_ascii_stems():
    kind, params = _params(content_disposition("\u65e5\u672c.mp3"))
    fallback = params["filename"].strip('"')
    assert not fallback.startswith("."), fallback


# --- job_to_json, is_job_id -------------------------------------------------------------------
def _job(**fields):
    doc = {"_id": "a" * 32, "owner": "me@example.com", "filename": "clip.mp4", "status": "queued",
           "video_id": ObjectId(), "mp3_id": None, "error": None, "attempts": 0,
           "lease_owner": "host-1-abc", "created_at": datetime.datetime(2024, 5, 1, 12, 0, 0),
           "updated_at": datetime.datetime(2024, 5, 1, 12, 0, 1, 250000)}
    doc.update(fields)
    return Job.from_doc(doc)


RETENTION = 168


def test_job_to_json_has_exactly_the_contract_fields():
    body = job_to_json(_job(), RETENTION)
    assert body == {
        "job_id": "a" * 32, "status": "queued", "filename": "clip.mp4", "mp3_id": None,
        "error": None, "created_at": "2024-05-01T12:00:00.000Z",
        "updated_at": "2024-05-01T12:00:01.250Z", "progress": 0.0, "options": {},
        "duration": None, "size": None, "expires_at": None}


def test_job_to_json_expires_retention_hours_after_it_finished():
    finished = datetime.datetime(2024, 5, 1, 13, 0, 0)
    done = _job(status="done", mp3_id=ObjectId(), finished_at=finished, duration=3.5,
                mp3_size=1234, size=99999, progress=1.0)
    body = job_to_json(done, 1.5)
    assert body["expires_at"] == "2024-05-01T14:30:00.000Z"
    assert (body["progress"], body["duration"], body["size"]) == (1.0, 3.5, 1234)
    assert job_to_json(done, RETENTION)["expires_at"] == "2024-05-08T13:00:00.000Z"
    failed = _job(status="failed", finished_at="2024-05-01 13:00:00.000000", error="x")
    assert job_to_json(failed, 0.0005)["expires_at"] == "2024-05-01T13:00:01.800Z"
    assert job_to_json(_job(status="converting", finished_at=finished), 1)["expires_at"] is None


def test_job_to_json_done_and_failed():
    mp3_id = ObjectId()
    done = job_to_json(_job(status="done", mp3_id=mp3_id), RETENTION)
    assert done["mp3_id"] == str(mp3_id) and isinstance(done["mp3_id"], str)
    failed = job_to_json(_job(status="failed", error="The file is not media."), RETENTION)
    assert failed["status"] == "failed" and failed["error"] == "The file is not media."
    assert failed["mp3_id"] is None


def test_job_to_json_never_leaks_internal_fields():
    body = job_to_json(_job(), RETENTION)
    for internal in ("owner", "video_id", "lease_owner", "attempts", "_id"):
        assert internal not in body


def test_job_to_json_accepts_string_dates_and_missing_dates():
    body = job_to_json(_job(created_at="2024-05-01T12:00:00.000", updated_at=None), RETENTION)
    assert body["created_at"] == "2024-05-01T12:00:00.000Z"
    assert body["updated_at"] is None


def test_job_to_json_dates_have_one_format_whatever_the_server_returns():
    body = job_to_json(_job(updated_at="2024-05-01 12:00:01.250000"), RETENTION)
    assert body["updated_at"] == "2024-05-01T12:00:01.250Z"


@pytest.mark.parametrize("value", ["0123456789abcdef0123456789abcdef", "f" * 32])
def test_is_job_id_accepts_uuid4_hex(value):
    assert is_job_id(value)


@pytest.mark.parametrize("value", [
    "", None, "a" * 31, "a" * 33, "A" * 32, "g" * 32, "0123456789abcdef-0123456789abcdef",
    "12345678-1234-1234-1234-123456789abc", "../" + "a" * 29, str(ObjectId("6b151e0b4127974372c67fd9"))])
def test_is_job_id_rejects_other_strings(value):
    assert not is_job_id(value)


def test_is_job_id_rejects_a_trailing_newline():
    assert not is_job_id("a" * 32 + "\n")


# --- mp3_filename -----------------------------------------------------------------------------
@pytest.mark.parametrize("source, expected", [
    ("clip.mp4", "clip.mp3"),
    ("holiday clip.MOV", "holiday clip.mp3"),
    ("archive.tar.mkv", "archive.tar.mp3"),
    ("clip", "clip.mp3"),
    (".bashrc", ".bashrc.mp3"),
    (".hidden.mp4", ".hidden.mp3"),
    ("song.mp3", "song.mp3"),
    ("caf\u00e9.webm", "caf\u00e9.mp3"),
    ("", "audio.mp3"),
])
def test_mp3_filename(source, expected):
    assert mp3_filename(source) == expected


# --- describe -------------------------------------------------------------------------------
def _instance(exc_type):
    if exc_type is UnknownService:
        return UnknownService("auth")
    if exc_type in (auth_errors.TooManyAttempts, gw.TooManyJobs, auth_errors.Busy) \
            or issubclass(exc_type, gw.Throttled):
        return exc_type("A sentence for a person.", 42)
    if exc_type is InvalidOption:
        return exc_type("bitrate", "A sentence for a person.")
    return exc_type("A sentence for a person.")


@pytest.mark.parametrize("exc_type, status, code", gw.ERRORS,
                         ids=[row[2] + "-" + row[0].__name__ for row in gw.ERRORS])
def test_describe_every_error_row(exc_type, status, code):
    got_status, got_code, message, headers = gw.describe(_instance(exc_type))
    assert (got_status, got_code) == (status, code)
    assert isinstance(message, str) and message
    if status >= 500:
        assert message == gw.MESSAGES[code]  # no internals for a 5xx
    else:
        assert message == "A sentence for a person."
    if exc_type in (auth_errors.TooManyAttempts, gw.TooManyJobs, auth_errors.Busy):
        assert headers["Retry-After"] == "42"
    if status == 401:
        assert headers["WWW-Authenticate"].endswith('realm="mp3svc"')
    if status == 429 or code == "busy":
        assert headers == {"Retry-After": "42"}


def test_describe_status_codes_are_the_contract_ones():
    by_code = {code: status for _, status, code in gw.ERRORS}
    assert by_code["user_exists"] == 409
    assert by_code["invalid_credentials"] == 401
    assert by_code["too_large"] == 413
    assert by_code["not_found"] == 404
    assert by_code["invalid_id"] == 400
    assert by_code["invalid_input"] == 400
    assert all(400 <= status < 600 for status in by_code.values())


def test_describe_login_failures_ask_for_basic_tokens_for_bearer():
    assert gw.describe(auth_errors.InvalidCredentials("x"))[3]["WWW-Authenticate"] == \
        'Basic realm="mp3svc"'
    assert gw.describe(auth_errors.InvalidToken("x"))[3]["WWW-Authenticate"] == \
        'Bearer realm="mp3svc"'
    assert gw.describe(gw.Unauthorized("x"))[3]["WWW-Authenticate"] == 'Bearer realm="mp3svc"'


def test_describe_too_many_attempts_without_retry_after_defaults():
    status, code, _, headers = gw.describe(auth_errors.TooManyAttempts("slow down"))
    assert (status, code) == (429, "too_many_attempts")
    assert int(headers["Retry-After"]) > 0


def test_describe_without_a_message_uses_the_code_in_words():
    assert gw.describe(gw.NotFound())[2] == "not found"


@pytest.mark.parametrize("exc, code", [
    (ServerSelectionTimeoutError("127.0.0.1:27017: [Errno 111] Connection refused"),
     "storage_unavailable"),
    (PyMongoError("secret internals"), "storage_unavailable"),
    (KombuOperationalError("[Errno 111] Connection refused"), "broker_unavailable"),
    (ConnectionRefusedError(111, "Connection refused"), "broker_unavailable"),
    (UnknownService("auth"), "auth_unavailable"),
])
def test_describe_infrastructure_failures_are_503_without_internals(exc, code):
    status, got, message, _ = gw.describe(exc)
    assert (status, got) == (503, code)
    assert "refused" not in message and "internals" not in message


@pytest.mark.parametrize("exc, status, code", [
    (http_errors.NotFound(), 404, "not_found"),
    (http_errors.MethodNotAllowed(valid_methods=["GET"]), 405, "method_not_allowed"),
    (http_errors.RequestEntityTooLarge(), 413, "too_large"),
    (http_errors.RequestedRangeNotSatisfiable(length=10), 416, "range_not_satisfiable"),
    (http_errors.BadRequest(), 400, "bad_request"),
    (http_errors.Conflict(), 409, "conflict"),
    (http_errors.InternalServerError(), 500, "internal_error"),
])
def test_describe_werkzeug_http_exceptions(exc, status, code):
    got_status, got_code, message, headers = gw.describe(exc)
    assert (got_status, got_code) == (status, code)
    assert message == exc.description
    assert not any(key.lower() == "content-type" for key in headers)


def test_describe_werkzeug_keeps_protocol_headers():
    assert gw.describe(http_errors.MethodNotAllowed(valid_methods=["GET", "HEAD"]))[3] == \
        {"Allow": "GET, HEAD"}
    assert gw.describe(http_errors.RequestedRangeNotSatisfiable(length=10))[3] == \
        {"Content-Range": "bytes */10"}


@pytest.mark.parametrize("exc", [KeyError("password"), ValueError("x"), RuntimeError("boom"),
                                 ZeroDivisionError()])
def test_describe_anything_else_is_a_500_without_details(exc):
    assert gw.describe(exc) == (500, "internal_error", gw.MESSAGES["internal_error"], {})


# --- archives ---------------------------------------------------------------------------------
def test_archive_names_number_repeats_before_the_extension():
    assert archive_names(["clip.mp3", "talk.mp3", "clip.mp3", "Clip.mp3", "clip (2).mp3", "notes"]) == [
        "clip.mp3", "talk.mp3", "clip (2).mp3", "Clip (3).mp3", "clip (2) (2).mp3", "notes"]
    assert archive_names(["a", "a", ".mp3", ".mp3"]) == ["a", "a (2)", ".mp3", ".mp3 (2)"]


@pytest.mark.parametrize("body, problem", [
    ({}, "'job_ids' is missing"),
    ({"job_ids": []}, "'job_ids' is not valid"),
    ({"job_ids": "a" * 32}, "'job_ids' is not valid"),
    ({"job_ids": ["a" * 32, "nope"]}, "'job_ids.1' is not valid"),
    ({"job_ids": ["A" * 32]}, "'job_ids.0' is not valid"),
    ({"job_ids": [7]}, "'job_ids.0' is not valid"),
    ({"job_ids": ["%032x" % n for n in range(101)]}, "'job_ids' is not valid"),
    ({"job_ids": ["a" * 32, "b" * 32, "a" * 32]}, "'job_ids' is not valid: a job is named more than once"),
])
def test_archive_body_is_refused(body, problem):
    with pytest.raises(auth_errors.InvalidInput, match=problem):
        parse(ArchiveBody, body)


def test_archive_body_keeps_the_order():
    ids = ["%032x" % n for n in range(100, 0, -1)]
    assert parse(ArchiveBody, {"job_ids": ids}).job_ids == ids
