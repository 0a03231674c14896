"""operations.py on a worker (nameko's worker_factory): the ops RPC and the sweeps."""
import pytest

from services.auth.exceptions import InvalidInput, UnknownUser
from services.common import constants as c
from tests.unit.gateway.worker import JOB_ID, OWNER, gateway, job


@pytest.mark.parametrize("limit", [0, 1001, True, "10", 1.5])
def test_list_jobs_checks_its_limit(limit):
    with pytest.raises(InvalidInput):
        gateway().list_jobs(OWNER, limit)


def test_list_jobs():
    worker = gateway()
    worker.store.jobs.for_owner.return_value = [job()]
    assert [j["job_id"] for j in worker.list_jobs(" me@EXAMPLE.com ", 5)] == [JOB_ID]
    worker.store.jobs.for_owner.assert_called_once_with(OWNER, 5)


def test_requeue_dispatches_the_job_again():
    worker = gateway()
    worker.store.jobs.requeue.return_value = None
    assert worker.requeue_job(JOB_ID) is None and not worker.dispatch.called
    worker.store.jobs.requeue.return_value = job()
    assert worker.requeue_job(JOB_ID)["status"] == c.QUEUED
    event, payload = worker.dispatch.call_args.args
    assert (event, payload["job_id"]) == (c.VIDEO_UPLOADED, JOB_ID)
    with pytest.raises(InvalidInput):
        worker.requeue_job(5)


def test_delete_user_removes_what_is_left_of_a_user_gone_from_auth():
    worker = gateway()
    worker.auth.disable_user.side_effect = UnknownUser("gone")
    worker.store.jobs.delete_owner.return_value = {"jobs": 2, "files": 3}
    worker.auth.delete_user.return_value = {"deleted": False}
    worker.notification.delete_webhooks_of.return_value = 1
    assert worker.delete_user(OWNER) == {"jobs": 2, "files": 3, "email": OWNER, "webhooks": 1,
                                         "user_deleted": False}
    worker.notification.delete_webhooks_of.assert_called_once_with(OWNER)


def test_the_sweeps_survive_a_failing_store():
    worker = gateway()
    worker.store.uploads.sweep.side_effect = OSError("down")
    worker.store.jobs.expire.side_effect = OSError("down")
    worker.sweep_uploads()
    worker.sweep_expired()
    worker.store.uploads.sweep.assert_called_once_with(older_than=worker.settings.UPLOAD_TIMEOUT)
    worker.store.jobs.expire.assert_called_once_with(worker.settings.RETENTION_HOURS)
