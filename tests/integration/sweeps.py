"""Driving the services' own sweepers, and counting a job's emails once no sweep can add one.

"Exactly one email" holds only when counted after the moment a second one could have been sent:
after the record says sent, the converter's and the notification's sweeps run (the services' own
`sweep` methods, called through nameko's entrypoint_hook) and must hand nothing out again.
"""
import pymongo
from nameko.testing.services import entrypoint_hook

from services.common import constants as c
from services.common.messaging import Redispatcher
from services.converter.service import ConverterService
from services.converter.store import ConverterStore
from services.notification.service import NotificationService
from services.notification.store import OutboxStore
from tests.configs import config_defaults
from tests.helpers import wait_until


class ConverterSweeper:
    """The converter's sweep alone (no event handler): for stacks of real processes."""
    name = "converter_sweeper"
    jobs = ConverterStore()
    redispatch = Redispatcher()
    sweep = ConverterService.sweep


class NotificationSweeper:
    name = "notification_sweeper"
    outbox = OutboxStore()
    redispatch = Redispatcher()
    sweep = NotificationService.sweep


SWEEPERS = {c.CONVERTER: ConverterSweeper, c.NOTIFICATION: NotificationSweeper}


def run_sweeps(containers):
    """Run the `sweep` of every converter and notification container once, converter first."""
    for name in (c.CONVERTER, c.NOTIFICATION):
        for container in containers:
            if container.service_name in (name, SWEEPERS[name].name):
                with entrypoint_hook(container, "sweep") as sweep:
                    sweep()


def sweeper_containers(container_factory, amqp_uri, mongo_uri, mongo_db):
    """Containers running the services' sweeps against a stack of processes."""
    config = config_defaults()
    config.update(AMQP_URI=amqp_uri, MONGO_URI=mongo_uri, MONGO_DB=mongo_db)
    containers = [container_factory(cls, config) for cls in SWEEPERS.values()]
    for container in containers:
        container.start()
    return containers


def emails_of(mail_sink, job_id):
    """Every email about the job (its X-MP3SVC-Job header), whatever it says."""
    return [m for m in mail_sink.messages() if m["X-MP3SVC-Job"] == job_id]


def the_one_email(mail_sink, job_id, record, containers, count=1):
    """The job's only email (or its `count` emails: one per outcome of a requeued job), counted
    once the record says sent and a sweep of both sweepers has run without handing the job out
    again. `record()` returns the job document."""
    wait_until(lambda: (record() or {}).get("notify") == c.NOTIFY_SENT
               and len(emails_of(mail_sink, job_id)) >= count, 60,
               message="job %s: %d email(s), recorded as sent" % (job_id, count))
    before = record()
    run_sweeps(containers)
    after = record()
    # a sweep that hands work out again moves its due time first (take_due): nothing moved
    for field in ("notify", "notify_attempts", "notify_next", "attempts", "due_at", "status"):
        assert after.get(field) == before.get(field), (field, before, after)
    messages = emails_of(mail_sink, job_id)
    assert len(messages) == count, [m["Subject"] for m in messages]
    return messages[0] if count == 1 else messages


def only_email(stack, job_id):
    """`the_one_email` for the in-process stack of tests/integration/conftest.py."""
    client = pymongo.MongoClient(stack.config["MONGO_URI"], serverSelectionTimeoutMS=3000)
    try:
        jobs = client[stack.config["MONGO_DB"]][c.JOBS_COLLECTION]
        return the_one_email(stack.mail, job_id, lambda: jobs.find_one({"_id": job_id}),
                             stack.runner.containers)
    finally:
        client.close()
