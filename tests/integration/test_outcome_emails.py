"""One email per job outcome over the real services, broker, database and SMTP: when the outcome
event never left the converter, when the broker lost it, when it is delivered again, and when a
requeued job finishes a second time."""
import contextlib

import pymongo
import pytest
from kombu import Connection
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy

from services.auth.service import AuthService
from services.common import constants as c
from services.common.messaging import CONSUMERS, queue_name
from services.converter.service import ConverterService
from services.converter.store import ConverterJobs
from services.gateway.service import GatewayService
from services.notification.service import NotificationService
from tests.helpers import wait_until
from tests.integration.conftest import Api
from tests.integration.sweeps import emails_of, the_one_email

pytestmark = pytest.mark.slow

MP3_READY_QUEUE = queue_name(c.CONVERTER, c.MP3_READY, *CONSUMERS[c.CONVERTER, c.MP3_READY][0])


@pytest.fixture
def config(service_config, mail_sink):
    service_config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port)
    return service_config


@contextlib.contextmanager
def jobs_collection(config):
    client = pymongo.MongoClient(config["MONGO_URI"], serverSelectionTimeoutMS=3000)
    try:
        yield client[config["MONGO_DB"]][c.JOBS_COLLECTION]
    finally:
        client.close()


class Services:
    """Services started in groups (each a runner), on one vhost and database."""

    def __init__(self, runner_factory, config):
        self.runner_factory, self.config, self.runners = runner_factory, config, []
        self.api = Api("http://" + config["WEB_SERVER_ADDRESS"])

    def start(self, *services):
        runner = self.runner_factory(self.config, *services)
        runner.start()
        self.runners.append(runner)
        if GatewayService in services:
            wait_until(lambda: self.api.http.get(self.api.url("/livez")).status_code == 200, 30,
                       message="gateway up")
        return self

    def containers(self):
        return [container for runner in self.runners for container in runner.containers]

    def record(self, job_id):
        with jobs_collection(self.config) as jobs:
            return jobs.find_one({"_id": job_id})

    def emails(self, mail_sink, job_id, count=1):
        return the_one_email(mail_sink, job_id, lambda: self.record(job_id), self.containers(),
                             count)

    def announced(self, job_id):
        """The converter's sweeper saw notification take the outcome over: the retention sweep may
        delete the job once its email is settled."""
        wait_until(lambda: self.record(job_id)["announce_due"] is None, 60, interval=0.5,
                   message="job %s: its outcome taken over by notification" % job_id)


def test_an_outcome_whose_event_never_left_is_emailed_once(runner_factory, config, mail_sink, media):
    """A converter that died between recording the outcome and dispatching its event."""
    services = Services(runner_factory, config).start(GatewayService, AuthService,
                                                      NotificationService)
    token = services.api.token_for("lost@example.com")
    job_id = services.api.upload(token, media.video("lost.mp4", duration=1.0)).json()["job_id"]
    with jobs_collection(config) as jobs:
        dying = ConverterJobs(jobs.database)  # the converter's own store, as that converter
        assert dying.claim(job_id, "dying-converter", 30) is not None
        failed = dying.fail(job_id, "dying-converter", "The file is not media.")
    assert failed.status == c.FAILED and failed.announce_due is not None
    services.start(ConverterService)  # no event ever left: only its sweeper can tell
    mail = services.emails(mail_sink, job_id)
    assert "The file is not media." in mail_sink.text_of(mail)
    services.announced(job_id)
    assert services.record(job_id)["attempts"] == 1  # announced, not converted again


def test_an_outcome_event_lost_by_the_broker_is_emailed_once(runner_factory, config, mail_sink,
                                                             media):
    services = Services(runner_factory, config).start(GatewayService, AuthService, ConverterService)
    token = services.api.token_for("purged@example.com")
    job_id = services.api.upload(token, media.video("purged.mp4", duration=1.0)).json()["job_id"]
    assert services.api.wait_job(token, job_id)["status"] == "done"
    purged = []
    with Connection(config["AMQP_URI"]) as connection:  # notification is not running: drop it
        wait_until(lambda: purged.append(connection.default_channel.queue_purge(MP3_READY_QUEUE))
                   or sum(purged), 30, message="the mp3_ready event, purged")
    assert sum(purged) == 1
    services.start(NotificationService)
    mail = services.emails(mail_sink, job_id)
    assert services.record(job_id)["mp3_id"] is not None
    assert str(services.record(job_id)["mp3_id"]) in mail_sink.text_of(mail)
    services.announced(job_id)


def test_duplicate_outcome_events_give_one_email(runner_factory, config, mail_sink, media):
    services = Services(runner_factory, config).start(GatewayService, AuthService, ConverterService,
                                                      NotificationService)
    token = services.api.token_for("twice@example.com")
    job_id = services.api.upload(token, media.video("twice.mp4", duration=1.0)).json()["job_id"]
    job = services.api.wait_job(token, job_id)
    record = services.record(job_id)
    payload = {"job_id": job_id, "mp3_id": job["mp3_id"], "owner": "twice@example.com",
               "filename": "twice.mp4", "outcome_id": record["outcome_id"]}
    dispatch = event_dispatcher({"AMQP_URI": config["AMQP_URI"]})
    for event in (payload, dict(payload), dict(payload, outcome_id=None),
                  dict(payload, outcome_id="an-outcome-it-never-had")):
        dispatch(c.CONVERTER, c.MP3_READY, event)
    services.emails(mail_sink, job_id)  # counted once the record says sent, after the sweeps
    with Connection(config["AMQP_URI"]) as connection:  # and once every duplicate was handled
        wait_until(lambda: connection.default_channel.queue_declare(
            MP3_READY_QUEUE, passive=True).message_count == 0, 30, message="duplicates consumed")
    wait_until(lambda: services.record(job_id)["notify_attempts"] == 1, 5)
    assert len(emails_of(mail_sink, job_id)) == 1


def test_a_requeued_job_gets_the_email_of_its_second_outcome(runner_factory, config, mail_sink,
                                                             media):
    services = Services(runner_factory, config).start(GatewayService, AuthService,
                                                      NotificationService)
    token = services.api.token_for("patient@example.com")
    job_id = services.api.upload(token, media.video("again.mp4", duration=1.0)).json()["job_id"]
    with jobs_collection(config) as jobs:  # as if MAX_ATTEMPTS converters had died on it
        jobs.update_one({"_id": job_id}, {"$set": {"attempts": config["MAX_ATTEMPTS"]}})
    services.start(ConverterService)
    assert services.api.wait_job(token, job_id)["status"] == "failed"
    [first] = mail_sink.wait_for(1)
    first_outcome = services.record(job_id)["outcome_id"]
    with ServiceRpcProxy("gateway", config, timeout=20) as gateway:
        assert gateway.requeue_job(job_id)["status"] == "queued"
    job = services.api.wait_job(token, job_id)
    assert job["status"] == "done", job
    assert services.record(job_id)["outcome_id"] != first_outcome
    mails = services.emails(mail_sink, job_id, count=2)
    by_subject = {str(mail["Subject"]): mail for mail in mails}
    assert sorted(by_subject) == ["We could not convert again.mp4", "Your MP3 is ready: again.mp4"]
    assert job["mp3_id"] in mail_sink.text_of(by_subject["Your MP3 is ready: again.mp4"])
    services.announced(job_id)
