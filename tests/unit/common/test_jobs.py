"""What a job holds against its owner's quota, when it expires, and which addresses are accounts."""
import datetime

import pytest
from bson import ObjectId

from services.auth.exceptions import InvalidInput
from services.auth.schemas import clean_email, lookup_email
from services.common.jobs import Job


def job(**fields):
    doc = {"_id": "a" * 32, "owner": "me@example.com", "filename": "clip.mp4", "status": "queued"}
    doc.update(fields)
    return Job.from_doc(doc)


@pytest.mark.parametrize("fields, held", [
    ({"status": "uploading", "reserved": 5000}, 5000),          # announced, still streaming
    ({"status": "uploading"}, 0),                               # chunked: nothing announced
    ({"status": "uploading", "reserved": 5000, "size": 10}, 10),
    ({"status": "queued", "video_id": ObjectId(), "size": 700}, 700),
    ({"status": "converting", "video_id": ObjectId(), "size": 700}, 700),
    ({"status": "done", "video_id": None, "size": 700, "mp3_id": ObjectId(), "mp3_size": 90}, 90),
    ({"status": "failed", "video_id": None, "size": 700}, 0),   # the upload's fault: video gone
    ({"status": "failed", "video_id": ObjectId(), "size": 700}, 700),  # gave up: kept, counted
])
def test_stored_bytes(fields, held):
    assert job(**fields).stored_bytes == held


def test_expires_at_only_once_finished():
    finished = datetime.datetime(2026, 1, 1, 12, 0, 0)
    assert job(status="done", finished_at=finished).expires_at(168) == datetime.datetime(
        2026, 1, 8, 12, 0, 0)
    assert job(status="failed", finished_at="2026-01-01 12:00:00.000000").expires_at(0.5) == \
        datetime.datetime(2026, 1, 1, 12, 30, 0)
    assert job(status="queued", finished_at=finished).expires_at(1) is None  # requeued
    assert job(status="done").expires_at(1) is None


@pytest.mark.parametrize("email", [
    "a,b,c,x@example.test", '"Eve" <eve@example.com>', "Eve <eve@example.com>", '"a b"@example.com',
    "a b@example.com", "a@b@example.com", "eve@example.com,", "eve@localhost", "eve@example..com",
    ".eve@example.com", "eve..x@example.com", "eve@-x.com", "eve@x-.com", "eve\n@example.com",
    "x" * 65 + "@example.com", "a@" + "d" * 250 + ".com", "\u00e9@example.com", None, 42])
def test_clean_email_takes_one_plain_mailbox(email):
    with pytest.raises(InvalidInput):
        clean_email(email)


@pytest.mark.parametrize("email, stored", [
    ("Alice@Example.COM", "Alice@example.com"), (" o'neil+tag@example.co.uk ",
                                                 "o'neil+tag@example.co.uk"),
    ("first.last@sub.example.com", "first.last@sub.example.com"), ("x" * 64 + "@e.io",
                                                                   "x" * 64 + "@e.io")])
def test_clean_email_plain_mailboxes(email, stored):
    assert clean_email(email) == stored


@pytest.mark.parametrize("value", [{"$ne": None}, ["a@b.c"], None, 1, "", "no-at-sign",
                                   "a@b.c\x00", "x" * 300 + "@b.c"])
def test_lookup_email_refuses_what_is_not_an_address(value):
    with pytest.raises(InvalidInput):
        lookup_email(value)


def test_lookup_email_finds_accounts_older_than_the_mailbox_rule():
    assert lookup_email("a,b,c,x@Example.TEST") == "a,b,c,x@example.test"
