"""NotificationService's webhook entrypoints on a worker (nameko's worker_factory)."""
from nameko.testing.services import worker_factory

from services.notification.service import NotificationService
from services.notification.settings import NotificationSettings
from tests.configs import config_defaults

JOB_ID = "a" * 32


def worker():
    return worker_factory(NotificationService,
                          settings=NotificationSettings.load(config_defaults()))


def test_an_outcome_not_owed_to_its_webhooks_is_not_emailed_either():
    """The converter's sweeper announces it again (notify_outcome unset) and both are owed then."""
    service = worker()
    service.webhook_store.job.side_effect = OSError("MongoDB down")
    service.handle_mp3_ready({"job_id": JOB_ID, "outcome_id": "o-1"})
    assert not service.outbox.adopt.called and not service.mailer.send.called


def test_outcomes_are_owed_to_the_webhooks_before_the_email():
    service = worker()
    service.webhook_store.job.return_value = None
    service.outbox.claim.return_value = None
    service.handle_conversion_failed({"job_id": JOB_ID, "outcome_id": "o-1"})
    service.webhook_store.job.assert_called_once_with(JOB_ID)
    service.outbox.adopt.assert_called_once_with(JOB_ID, "o-1")


def test_the_rpc_methods_go_to_the_store():
    service = worker()
    service.webhook_store.of_owner.return_value = []
    assert service.list_webhooks("me@example.com") == []
    service.webhook_store.delete_owner.return_value = 2
    assert service.delete_webhooks_of("me@example.com") == 2


def test_the_webhook_timer_survives_a_failing_store():
    service = worker()
    service.webhook_store.due.side_effect = OSError("down")
    service.post_webhooks()  # logged, not raised
    service.webhook_store.due.assert_called_once()
