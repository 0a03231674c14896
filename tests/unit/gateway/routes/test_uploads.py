"""routes/uploads.py and intake.py on a worker (nameko's worker_factory): POST /upload's one path,
admit -> store -> queue -> dispatch, with its stores mocked."""
import json

import pytest
from bson import ObjectId

from services.common import constants as c
from services.gateway.exceptions import NoFile, QuotaExceeded, UploadExpired
from services.gateway.store.uploads import Admission
from tests.unit.gateway.worker import JOB_ID, OWNER, gateway, job, request

ADMISSION = Admission(JOB_ID, OWNER, ObjectId(), reserved=0, quota=10 ** 9)


class Video:
    """What UploadStore.open_file gives: the file part's bytes go here."""

    def __init__(self):
        self.data, self.committed_as, self.aborted = b"", None, False

    def write(self, data):
        self.data += data

    @property
    def size(self):
        return len(self.data)

    def commit(self, filename):
        self.committed_as = filename

    def abort(self):
        self.aborted = True


def form(*parts):
    out = b""
    for name, content, filename in parts:
        disposition = 'form-data; name="%s"' % name + ('; filename="%s"' % filename if filename else "")
        out += b"--B\r\nContent-Disposition: %s\r\n\r\n%s\r\n" % (disposition.encode(), content)
    return out + b"--B--\r\n"


def post(worker, body):
    return worker.upload(request("POST", "/upload", body=body,
                                 content_type="multipart/form-data; boundary=B"))


@pytest.fixture
def worker():
    worker = gateway()
    worker.store.uploads.admit.return_value = ADMISSION
    worker.video = Video()
    worker.store.uploads.open_file.return_value = worker.video
    worker.store.uploads.queue.return_value = job(video_id=ADMISSION.video_id)
    return worker


def test_an_upload_is_admitted_stored_queued_and_dispatched(worker):
    sent = form(("bitrate", b"192", None), ("file", b"v" * 1000, "dir/Clip.mp4"))
    response = post(worker, sent)
    assert response.status_code == 202
    assert json.loads(response.get_data()) == {"job_id": JOB_ID, "status": c.QUEUED}
    settings = worker.settings
    worker.store.uploads.admit.assert_called_once_with(
        OWNER, len(sent), settings.USER_QUOTA_BYTES, settings.USER_MAX_ACTIVE_JOBS,
        settings.STORAGE_LIMIT_BYTES)
    assert (worker.video.data, worker.video.committed_as) == (b"v" * 1000, "Clip.mp4")
    _, size = worker.store.uploads.queue.call_args.args
    assert size == 1000 and worker.store.uploads.queue.call_args.kwargs["filename"] == "Clip.mp4"
    assert worker.store.uploads.queue.call_args.kwargs["options"]["bitrate"] == 192
    event, payload = worker.dispatch.call_args.args
    assert (event, payload["job_id"], payload["video_id"]) == (c.VIDEO_UPLOADED, JOB_ID,
                                                               str(ADMISSION.video_id))


def test_a_dispatch_failure_still_answers_202_the_job_stays_queued(worker):
    """The job is queued with due_at: the converter's sweeper dispatches it again (intake.py)."""
    worker.dispatch.side_effect = OSError("broker away")
    assert post(worker, form(("file", b"v", "a.mp4"))).status_code == 202
    worker.store.uploads.discard.assert_not_called()


def test_a_bad_upload_leaves_nothing_behind(worker):
    with pytest.raises(NoFile):
        post(worker, form(("title", b"t", None)))
    assert worker.video.aborted
    worker.store.uploads.discard.assert_called_once_with(JOB_ID)
    worker.store.uploads.queue.assert_not_called()
    worker.dispatch.assert_not_called()


def test_an_upload_over_quota_or_swept_meanwhile_is_refused(worker):
    worker.store.uploads.admit.side_effect = QuotaExceeded("over")
    with pytest.raises(QuotaExceeded):
        post(worker, form(("file", b"v", "a.mp4")))
    worker.store.uploads.open_file.assert_not_called()
    worker.store.uploads.admit.side_effect = None
    worker.store.uploads.queue.return_value = None  # swept as abandoned while streaming
    with pytest.raises(UploadExpired):
        post(worker, form(("file", b"v", "a.mp4")))
    worker.store.uploads.discard.assert_called_with(JOB_ID, video_id=ADMISSION.video_id)
    worker.dispatch.assert_not_called()
