"""store/uploads.py's types: a resumable upload's state from its record, and the quota-held file."""
import datetime

import pytest
from bson import Binary, ObjectId

from services.common import constants as c
from services.gateway.exceptions import QuotaExceeded
from services.gateway.store.uploads import Admission, QuotaFile, Resumable


def test_a_resumable_upload_from_its_record_with_a_string_date():
    video = ObjectId()
    doc = {"_id": "j", "owner": "o", "filename": "a.mp4", "status": c.UPLOADING, "video_id": video,
           "upload_length": 10, "upload_offset": 4, "upload_tail": Binary(b"abcd"),
           "updated_at": "2026-11-25 10:55:37.291000", "upload_open": True}  # (a $set date: nx-27017)
    upload = Resumable.from_doc(doc)
    assert (upload.offset, upload.length, upload.tail, upload.uploading) == (4, 10, b"abcd", True)
    assert not upload.streaming
    streaming = Resumable.from_doc(dict(doc, status=c.CONVERTING))  # queued at its first chunk
    assert streaming.uploading and streaming.streaming
    assert upload.updated_at == datetime.datetime(2026, 11, 25, 10, 55, 37, 291000)
    moved = upload.moved_to(10, c.QUEUED)
    assert (moved.offset, moved.uploading) == (10, False) and moved.updated_at > upload.updated_at
    assert Resumable.from_doc(dict(doc, upload_tail=None)).tail == b""
    assert Resumable.from_doc(None) is None


class Upload:
    size = 0

    def write(self, data):
        self.size += len(data)


def test_the_block_that_would_go_over_quota_is_refused_before_it_is_written():
    grants = []

    def grow(admission, granted, needed):   # the store: room for 10 bytes in all
        grants.append((granted, needed))
        if needed > 10:
            raise QuotaExceeded("over your storage quota of %d bytes" % admission.quota)
        return needed

    video = QuotaFile(Upload(), Admission("j", "o", ObjectId(), reserved=4, quota=100), grow)
    video.write(b"x" * 3)          # within what the record reserves: no check
    assert grants == []
    video.write(b"x" * 3)          # past it: reserved first
    assert grants == [(4, 6)]
    with pytest.raises(QuotaExceeded, match="100 bytes"):
        video.write(b"x" * 5)
    assert video.size == 6 and grants[-1] == (6, 11)
