"""routes/jobs.py on a worker (nameko's worker_factory): reads, delete and download of one's own jobs."""
import io
import json
import zipfile

import pytest
from bson import ObjectId

from services.common import constants as c
from services.gateway.exceptions import InvalidId, NotFound, NotReady
from tests.unit.gateway.worker import JOB_ID, OWNER, gateway, job, request


def test_jobs_are_listed_as_the_contract_says():
    worker = gateway()
    worker.store.jobs.for_owner.return_value = [job()]
    listed = json.loads(worker.list_jobs_http(request(path="/jobs")).get_data())["jobs"]
    assert [(j["job_id"], j["status"], j["progress"]) for j in listed] == [(JOB_ID, c.QUEUED, 0.0)]


def test_another_users_job_is_not_found_and_a_bad_id_is_400():
    worker = gateway()
    worker.store.jobs.get.return_value = job(owner="other@example.com")
    with pytest.raises(NotFound):
        worker.get_job(request(), JOB_ID)
    with pytest.raises(InvalidId):
        worker.get_job(request(), "not-an-id")


def test_delete_removes_through_the_store():
    worker = gateway()
    worker.store.jobs.get.return_value = job()
    assert worker.delete_job(request("DELETE"), JOB_ID).status_code == 204
    worker.store.jobs.delete.assert_called_once_with(JOB_ID, job().owner)
    worker.store.jobs.delete.return_value = False  # gone meanwhile
    with pytest.raises(NotFound):
        worker.delete_job(request("DELETE"), JOB_ID)


def test_download_by_job_id_waits_for_the_mp3():
    worker = gateway()
    worker.store.jobs.get.return_value = job(status=c.CONVERTING)
    with pytest.raises(NotReady):
        worker.download(request(path="/download", query_string={"fid": JOB_ID}))
    with pytest.raises(InvalidId):
        worker.download(request(path="/download", query_string={"fid": "zz"}))
    worker.store.jobs.open_mp3.return_value = None
    with pytest.raises(NotFound):
        worker.download(request(path="/download", query_string={"fid": str(ObjectId())}))


class Mp3:
    """What store.jobs.open_mp3 returns (services/storage/gridio.StoredFile), in memory."""

    def __init__(self, filename, data, owner=OWNER):
        self.file_id, self.filename, self.length = ObjectId(), filename, len(data)
        self.metadata = {"owner": owner}
        self.data, self.closed = data, False

    def iter_range(self, start=0, end=None, block=1 << 20):
        for offset in range(0, self.length, block):
            yield self.data[offset:offset + block]

    def close(self):
        self.closed = True


def archive_request(job_ids):
    return request("POST", "/jobs/archive", body=json.dumps({"job_ids": job_ids}).encode(),
                   headers={"Content-Type": "application/json"})


def test_archive_streams_one_mp3_per_job_under_its_download_name():
    ids = ["%032x" % n for n in range(1, 4)]
    mp3s = [Mp3("clip.mp3", b"\xff\xfb" * 3000), Mp3("talk.mp3", b"talk"), Mp3("clip.mp3", b"x" * 70000)]
    jobs = {i: job(status=c.DONE, mp3_id=mp3.file_id) for i, mp3 in zip(ids, mp3s)}
    worker = gateway()
    worker.store.jobs.get.side_effect = jobs.get
    worker.store.jobs.open_mp3.side_effect = {m.file_id: m for m in mp3s}.get
    response = archive_request(ids)
    response = worker.archive(response)
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="mp3svc-20')
    assert not [m for m in mp3s if m.closed]  # nothing read before the body is
    body = b"".join(response.response)
    assert len(body) == response.content_length
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["clip.mp3", "talk.mp3", "clip (2).mp3"]
        assert [archive.read(name) for name in archive.namelist()] == [m.data for m in mp3s]
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    assert all(m.closed for m in mp3s)


@pytest.mark.parametrize("status, owner, error", [
    (c.DONE, "other@example.com", NotFound),
    (c.CONVERTING, OWNER, NotReady),
    (c.FAILED, OWNER, NotReady),
])
def test_archive_checks_every_job_before_sending(status, owner, error):
    worker = gateway()
    done, other = "a" * 32, "b" * 32
    mp3 = Mp3("clip.mp3", b"mp3")
    worker.store.jobs.get.side_effect = {
        done: job(status=c.DONE, mp3_id=mp3.file_id),
        other: job(status=status, owner=owner, mp3_id=ObjectId())}.get
    worker.store.jobs.open_mp3.return_value = mp3
    with pytest.raises(error, match=other):
        worker.archive(archive_request([done, other]))
    worker.store.jobs.open_mp3.return_value = None  # deleted after it was found
    with pytest.raises(NotFound, match=done):
        worker.archive(archive_request([done]))
