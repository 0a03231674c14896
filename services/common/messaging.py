"""Event plumbing shared by the services.

* `event_handler`: nameko's service-pool handler whose queue is durable and, on a RabbitMQ cluster
  (RABBIT_QUEUE_TYPE=quorum), a quorum queue. Nameko acks after the handler returns, whatever happens;
  our handlers never raise (see the services), so nothing is silently dropped by an exception.
* `EventDispatcher`: also declares the queues of the known consumers of its events, so an event
  dispatched before its consumer ever started waits in its queue instead of being unroutable.
"""
from kombu import Queue
from nameko.events import EventDispatcher as NamekoEventDispatcher
from nameko.events import EventHandler, get_event_exchange
from nameko.messaging import Consumer, Publisher, QueueConsumer

from services.common import constants as c
from services.common.settings import ServiceSettings

# who consumes which event: (source, event) -> [(service, method)]
CONSUMERS = {
    (c.GATEWAY, c.VIDEO_UPLOADED): [(c.CONVERTER, "handle_video_uploaded")],
    (c.CONVERTER, c.MP3_READY): [(c.NOTIFICATION, "handle_mp3_ready")],
    (c.CONVERTER, c.CONVERSION_FAILED): [(c.NOTIFICATION, "handle_conversion_failed")],
    (c.AUTH, c.ACCOUNT_EMAIL): [(c.NOTIFICATION, "handle_account_email")],
}


def queue_name(source, event_type, service, method):
    return "evt-{}-{}--{}.{}".format(source, event_type, service, method)


def event_queue(container, source, event_type, service, method):
    quorum = ServiceSettings.of(container).RABBIT_QUEUE_TYPE == "quorum"
    return Queue(
        queue_name(source, event_type, service, method),
        exchange=get_event_exchange(source, container.config), routing_key=event_type,
        durable=True, auto_delete=False, exclusive=False,
        queue_arguments={"x-queue-type": "quorum"} if quorum else {})


class PrefetchQueueConsumer(QueueConsumer):
    """Prefetch from config (PREFETCH_COUNT) instead of max_workers, so a converter can keep spare
    worker slots for its timers while taking only as many messages as it runs ffmpeg processes."""

    @property
    def prefetch_count(self):
        return ServiceSettings.of(self.container).PREFETCH_COUNT or self.container.max_workers


class DurableEventHandler(EventHandler):
    queue_consumer = PrefetchQueueConsumer()

    def setup(self):
        self.queue = event_queue(self.container, self.source_service, self.event_type,
                                 self.container.service_name, self.method_name)
        Consumer.setup(self)


event_handler = DurableEventHandler.decorator


class EventDispatcher(NamekoEventDispatcher):
    def setup(self):
        super().setup()
        source = self.container.service_name
        for (src, event_type), consumers in CONSUMERS.items():
            if src == source:
                self.declare.extend(event_queue(self.container, src, event_type, service, method)
                                    for service, method in consumers)


class Redispatcher(Publisher):
    """`redispatch(source, event_type, payload)`: publish an event again as its original source
    did, so that a sweeper hands due work back to the normal path (the same queue, the same
    handler, the same concurrency limit) instead of doing the work itself."""

    def get_dependency(self, worker_ctx):
        headers = self.get_message_headers(worker_ctx)
        config = self.container.config

        def redispatch(source, event_type, payload):
            self.publisher.publish(payload, exchange=get_event_exchange(source, config),
                                   routing_key=event_type, extra_headers=headers)
        return redispatch
