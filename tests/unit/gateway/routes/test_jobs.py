"""routes/jobs.py on a worker (nameko's worker_factory): reads, delete and download of one's own jobs."""
import json

import pytest
from bson import ObjectId

from services.common import constants as c
from services.gateway.exceptions import InvalidId, NotFound, NotReady
from tests.unit.gateway.worker import JOB_ID, gateway, job, request


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
