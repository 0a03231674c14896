"""routes/resumable.py and intake.py's tus part on a worker (nameko's worker_factory), stores mocked."""
import base64
import datetime

import pytest
from bson import ObjectId

from services.common import constants as c
from services.common.utils import utcnow
from services.gateway import tus
from services.gateway.exceptions import NotFound, UploadFinished
from services.gateway.store.uploads import Resumable
from tests.unit.gateway.worker import JOB_ID, OWNER, gateway, job, request

LENGTH = 3000
TUS = {"Tus-Resumable": tus.TUS_RESUMABLE}


def upload(offset=0, status=c.UPLOADING):
    return Resumable(JOB_ID, OWNER, "a.mp4", status, ObjectId(), LENGTH, offset, utcnow(),
                     open=status == c.UPLOADING)


class Appender:
    """A ChunkAppender of 1000-byte chunks."""

    def __init__(self, offset):
        self.offset, self.stored, self.tail = offset, offset - offset % 1000, b""

    def write(self, data):
        self.offset += len(data)
        full = self.offset - self.offset % 1000
        stored, self.stored = full > self.stored, full
        return stored


def patch(worker, offset, data):
    return worker.tus_patch(request("PATCH", "/uploads/" + JOB_ID, body=data, headers=dict(
        TUS, **{"Upload-Offset": str(offset), "Content-Type": tus.OFFSET_CONTENT_TYPE,
                "Content-Length": str(len(data))})), JOB_ID)


@pytest.fixture
def worker():
    worker = gateway()
    worker.store.uploads.claim.return_value = "claim"
    worker.store.uploads.appender.side_effect = lambda found: Appender(found.offset)
    worker.store.uploads.save_offset.return_value = True
    return worker


def test_create_admits_with_the_length_and_options():
    worker = gateway()
    worker.store.uploads.admit.return_value.job_id = JOB_ID
    metadata = "filename %s,bitrate %s" % (base64.b64encode(b"My clip.mp4").decode(),
                                           base64.b64encode(b"192").decode())
    response = worker.tus_create(request("POST", "/uploads", headers=dict(
        TUS, **{"Upload-Length": str(LENGTH), "Upload-Metadata": metadata})))
    assert (response.status_code, response.headers["Location"]) == (201, "/uploads/" + JOB_ID)
    args, fields = worker.store.uploads.admit.call_args
    assert args[:2] == (OWNER, LENGTH)
    assert (fields["filename"], fields["upload_length"], fields["options"]["bitrate"]) == \
        ("My clip.mp4", LENGTH, 192)


def test_a_patch_records_its_offset_and_answers_it(worker):
    worker.store.uploads.find.return_value = upload()
    response = patch(worker, 0, b"v" * 1500)
    assert (response.status_code, response.headers["Upload-Offset"]) == (204, "1500")
    assert "Upload-Expires" in response.headers
    saved = [call.args[2:4] for call in worker.store.uploads.save_offset.call_args_list]
    assert saved == [(0, 1000), (1000, 1500)]  # at the stored chunk, then with the tail
    worker.dispatch.assert_not_called()


def test_the_last_patch_queues_and_dispatches_once(worker):
    worker.store.uploads.find.return_value = upload(offset=2000)
    worker.store.uploads.finish.return_value = job()
    worker.dispatch.side_effect = OSError("broker away")  # the sweeper dispatches it later
    response = patch(worker, 2000, b"v" * 1000)
    assert (response.status_code, response.headers["Upload-Offset"]) == (204, str(LENGTH))
    assert "Upload-Expires" not in response.headers
    assert worker.dispatch.call_count == 1


def test_a_repeated_last_patch_changes_nothing(worker):
    worker.store.uploads.find.return_value = upload(offset=LENGTH, status=c.QUEUED)
    response = patch(worker, LENGTH, b"")
    assert (response.status_code, response.headers["Upload-Offset"]) == (204, str(LENGTH))
    worker.store.uploads.claim.assert_not_called()


def test_a_patch_that_lost_its_upload(worker):
    worker.store.uploads.find.side_effect = [upload(), upload(), None]  # deleted while it was sent
    worker.store.uploads.save_offset.return_value = False
    with pytest.raises(NotFound):
        patch(worker, 0, b"v" * 1500)
    worker.store.uploads.drop_video.assert_called_once()
    # the stored tail is loaded only once this PATCH holds the writer's claim, released at the end
    names = [call[0] for call in worker.store.uploads.mock_calls]
    assert names.index("claim") < names.index("find", names.index("claim"))
    assert worker.store.uploads.find.call_args_list[0].args[2:] == (False,)   # no tail before
    assert worker.store.uploads.find.call_args_list[1].kwargs == {"tail": True}
    worker.store.uploads.release.assert_called_once()
    worker.store.uploads.find.side_effect = None
    worker.store.uploads.find.return_value = upload()
    worker.store.uploads.claim.return_value = None  # another PATCH moved it on
    with pytest.raises(tus.OffsetMismatch):
        patch(worker, 0, b"v")


def test_head_and_terminate(worker):
    found = upload(offset=1200)
    worker.store.uploads.find.return_value = found
    head = worker.tus_head(request("HEAD", headers=TUS), JOB_ID)
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == ("1200", str(LENGTH))
    expires = found.updated_at + datetime.timedelta(seconds=worker.settings.UPLOAD_TIMEOUT)
    assert head.headers["Upload-Expires"] == tus.http_date(expires)
    assert worker.tus_terminate(request("DELETE", headers=TUS), JOB_ID).status_code == 204
    worker.store.uploads.find.return_value = upload(offset=LENGTH, status=c.QUEUED)
    with pytest.raises(UploadFinished):
        worker.tus_terminate(request("DELETE", headers=TUS), JOB_ID)
