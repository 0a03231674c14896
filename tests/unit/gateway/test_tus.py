"""tus 1.0.0 header helpers: metadata, lengths, offsets, content type, response headers."""
import base64
import datetime
import email.utils
import io

import pytest
from tusclient.client import TusClient
from tusclient.uploader.baseuploader import BaseUploader

from services.gateway import tus


def b64(text):
    return base64.b64encode(text.encode()).decode()


# --- Upload-Metadata ----------------------------------------------------------------------------
def test_metadata_decodes_base64_values_to_text():
    header = "filename %s,title %s,normalize %s" % (b64("clip.mp4"), b64("Äpfel – live"), b64("true"))
    assert tus.parse_metadata(header) == {
        "filename": "clip.mp4", "title": "Äpfel – live", "normalize": "true"}


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_metadata_is_an_empty_dict(header):
    assert tus.parse_metadata(header) == {}


def test_a_value_may_be_empty_with_or_without_the_space():
    assert tus.parse_metadata("is_confidential,filename %s,x " % b64("a")) == {
        "is_confidential": "", "filename": "a", "x": ""}


def test_spaces_around_pairs_are_tolerated():
    assert tus.parse_metadata(" a %s , b %s " % (b64("1"), b64("2"))) == {"a": "1", "b": "2"}


def test_what_a_real_tus_client_sends_round_trips():
    uploader = BaseUploader(file_stream=io.BytesIO(b"x"), client=TusClient("http://x/uploads"),
                            metadata={"filename": "vidéo.mkv", "bitrate": "192"})
    header = ",".join(uploader.encode_metadata())
    assert tus.parse_metadata(header) == {"filename": "vidéo.mkv", "bitrate": "192"}


def test_encode_metadata_is_the_inverse():
    meta = {"filename": "a b,c.mp4", "title": "日本語", "tags": "false", "empty": ""}
    assert tus.parse_metadata(tus.encode_metadata(meta)) == meta


@pytest.mark.parametrize("header, words", [
    ("a %s,a %s" % (b64("1"), b64("2")), "twice"),
    ("filename not-base64!", "base64"),
    ("filename %s" % base64.b64encode(b"\xff\xfe").decode(), "UTF-8"),
    ("filename Y2xpcA", "base64"),                       # missing padding
    ("filename %s extra" % b64("x"), "pairs"),
    ("a %s,,b %s" % (b64("x"), b64("y")), "pairs"),     # an empty pair
    (",", "pairs"),
    ("k\x01ey %s" % b64("x"), "pairs"),                  # control character in the key
    ("ké %s" % b64("x"), "pairs"),                       # non-ASCII key
])
def test_malformed_metadata_is_refused_with_a_sentence(header, words):
    with pytest.raises(tus.InvalidHeader) as err:
        tus.parse_metadata(header)
    assert words in str(err.value)


def test_metadata_size_and_key_count_are_bounded():
    big = "title " + b64("x" * 3100)
    assert len(big) > tus.MAX_METADATA_BYTES
    with pytest.raises(tus.InvalidHeader, match="longer than 4096 bytes"):
        tus.parse_metadata(big)
    just_fits = "title " + b64("x" * 3000)
    assert len(tus.parse_metadata(just_fits)["title"]) == 3000
    many = ",".join("k%d %s" % (i, b64("v")) for i in range(tus.MAX_METADATA_KEYS + 1))
    with pytest.raises(tus.InvalidHeader, match="more than 32 keys"):
        tus.parse_metadata(many)
    assert len(tus.parse_metadata(many.rsplit(",", 1)[0])) == tus.MAX_METADATA_KEYS


# --- Upload-Length / Upload-Offset / Content-Type / Tus-Resumable -------------------------------
def test_length_is_a_whole_number_within_the_limit():
    assert tus.parse_length("1048576", 10 ** 9) == 1048576
    assert tus.parse_length("0", 10) == 0
    assert tus.parse_length(" 10 ", 10) == 10
    with pytest.raises(tus.TooLarge, match="11 bytes, over the limit of 10 bytes"):
        tus.parse_length("11", 10)


@pytest.mark.parametrize("value", [None, "", "-1", "+5", "1e6", "12.0", "0x10", "1 2", "١٢", "9" * 20])
def test_malformed_length_is_refused(value):
    with pytest.raises(tus.InvalidHeader, match="Upload-Length"):
        tus.parse_length(value, 10 ** 30)


def test_offset_must_match_what_the_server_holds():
    assert tus.parse_offset("4096", 4096) == 4096
    with pytest.raises(tus.OffsetMismatch, match="Upload-Offset is 0 but the server holds 4096 bytes"):
        tus.parse_offset("0", 4096)
    with pytest.raises(tus.InvalidHeader, match="Upload-Offset header is missing"):
        tus.parse_offset(None, 0)
    with pytest.raises(tus.InvalidHeader, match="Upload-Offset"):
        tus.parse_offset("-1", 0)


@pytest.mark.parametrize("value", ["application/offset+octet-stream", "Application/Offset+Octet-Stream",
                                   "application/offset+octet-stream; charset=binary"])
def test_patch_content_type_accepted(value):
    tus.check_content_type(value)


@pytest.mark.parametrize("value", [None, "", "application/octet-stream", "multipart/form-data; boundary=x"])
def test_patch_content_type_refused(value):
    with pytest.raises(tus.WrongContentType, match="application/offset\\+octet-stream"):
        tus.check_content_type(value)


def test_chunk_may_not_run_past_the_length():
    tus.check_chunk(90, 10, 100)
    tus.check_chunk(90, None, 100)
    with pytest.raises(tus.TooLarge, match="end at byte 101, past the upload's length of 100"):
        tus.check_chunk(90, 11, 100)


def test_tus_resumable_must_be_1_0_0():
    tus.check_resumable("1.0.0")
    for value in (None, "0.2.2", "1.0", ""):
        with pytest.raises(tus.UnsupportedVersion, match="speaks tus 1.0.0"):
            tus.check_resumable(value)
    assert tus.version_headers() == {"Tus-Version": "1.0.0"}


def test_every_error_is_a_tus_error_with_a_sentence():
    for exc_type in (tus.InvalidHeader, tus.UnsupportedVersion, tus.WrongContentType, tus.OffsetMismatch,
                     tus.TooLarge):
        assert issubclass(exc_type, tus.TusError)
    with pytest.raises(tus.TusError) as err:
        tus.parse_length("x", 1)
    assert str(err.value).endswith(".")


# --- response headers -----------------------------------------------------------------------------
def test_options_advertises_version_extensions_and_max_size():
    assert tus.options_headers(1073741824) == {
        "Tus-Resumable": "1.0.0", "Tus-Version": "1.0.0",
        "Tus-Extension": "creation,termination,expiration", "Tus-Max-Size": "1073741824"}


def test_upload_expires_is_an_rfc7231_date_in_gmt():
    aware = datetime.datetime(2026, 11, 25, 18, 30, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    naive_utc = datetime.datetime(2026, 11, 25, 16, 30, 5)
    assert tus.http_date(aware) == "Wed, 25 Nov 2026 16:30:05 GMT"
    assert tus.http_date(naive_utc) == "Wed, 25 Nov 2026 16:30:05 GMT"
    assert tus.http_date(naive_utc.replace(tzinfo=datetime.timezone.utc).timestamp()) == \
        "Wed, 25 Nov 2026 16:30:05 GMT"
    assert email.utils.parsedate_to_datetime(tus.http_date(aware)) == aware


def test_creation_head_and_patch_headers():
    expires = datetime.datetime(2026, 11, 25, 22, 0, 0)
    created = tus.response_headers(location="/uploads/ab12", expires=expires)
    assert created == {"Tus-Resumable": "1.0.0", "Location": "/uploads/ab12",
                       "Upload-Expires": "Wed, 25 Nov 2026 22:00:00 GMT"}
    head = tus.response_headers(offset=5, length=10, expires=expires, metadata={"filename": "a.mp4"})
    assert head["Upload-Offset"] == "5" and head["Upload-Length"] == "10"
    assert head["Cache-Control"] == "no-store"
    assert tus.parse_metadata(head["Upload-Metadata"]) == {"filename": "a.mp4"}
    patched = tus.response_headers(offset=0, expires=expires)
    assert patched == {"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                       "Upload-Expires": "Wed, 25 Nov 2026 22:00:00 GMT"}
    assert tus.response_headers() == {"Tus-Resumable": "1.0.0"}
