"""Fair sharing of conversions between users (issue 18), on real processes: `nameko run` services,
RabbitMQ, nx-27017 and ffmpeg."""
import pymongo
import pytest

from services.common import constants as c
from services.common.jobs import as_datetime
from tests.conftest import JWT_SECRET
from tests.helpers import wait_until
from tests.integration.conftest import Api
from tests.integration.processes import ProcessStack

pytestmark = pytest.mark.slow


@pytest.fixture
def one_worker(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink):
    stack = ProcessStack(tmp_path, {
        "AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri, "MONGO_DB": mongo_db,
        "JWT_SECRET": JWT_SECRET, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": mail_sink.port,
        "CONVERTER_WORKERS": 1, "EMAIL_VERIFICATION": "false"})
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=3000)
    try:
        stack.start(c.AUTH, c.GATEWAY)
        stack.healthy()
        yield stack, client[mongo_db]
    finally:
        client.close()
        stack.stop()


def test_one_users_backlog_does_not_hold_up_another(one_worker, media):
    """A queues 4 jobs, then B 1; one converter worker, started after every upload so all five
    wake-ups wait in the queue in upload order. B's job is converted second, not fifth."""
    stack, db = one_worker
    api = Api(stack.base)
    video = media.video("fair.mkv", duration=60, size="32x32", rate=1)
    a, b = api.token_for("greedy@example.com"), api.token_for("modest@example.com")
    a_jobs = []
    for _ in range(4):
        response = api.upload(a, video)
        assert response.status_code == 202, response.text
        a_jobs.append(response.json()["job_id"])
    response = api.upload(b, video)
    assert response.status_code == 202, response.text
    b_job = response.json()["job_id"]

    stack.start(c.CONVERTER)

    def finished():
        docs = list(db.jobs.find({}, projection={"status": 1, "finished_at": 1}))
        return len(docs) == 5 and all(doc["status"] == c.DONE for doc in docs) and docs
    docs = wait_until(finished, 180, message="all five jobs converted")
    order = [doc["_id"] for doc in sorted(docs, key=lambda doc: as_datetime(doc["finished_at"]))]
    assert order.index(b_job) < order.index(a_jobs[2]), order   # before A's second-to-last
    assert order == [a_jobs[0], b_job] + a_jobs[1:], order     # in fact second: A's first ran
