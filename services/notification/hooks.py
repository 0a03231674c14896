"""Webhook deliveries: one per job outcome and matching webhook (`fan_out`, from the outcome events),
each posted under a lease, signed, and retried with backoff until a 2xx or WEBHOOK_RETRY_HOURS
(`attempt`, from notification's webhook timer)."""
import datetime
import http.client
import json
import logging
import time

import eventlet

from services.common import constants as c
from services.common.jobs import as_datetime, job_to_json
from services.common.leases import backoff, worker_id
from services.common.utils import isoformat, utcnow
from services.notification import metrics, poster, signing, targets
from services.notification.exceptions import InvalidUrl, InvalidWebhook, UnknownWebhook
from services.notification.webhooks import MAX_WEBHOOKS, delivery_json, webhook_json

log = logging.getLogger(__name__)

EVENTS = {c.DONE: c.JOB_FINISHED, c.FAILED: c.JOB_FAILED}
RETRY_CAP = 3600     # seconds: the longest wait between two attempts
CONCURRENCY = 10     # deliveries posted at once by one timer tick
BATCH = 50           # deliveries one tick takes on


def retry_delay(attempt, base):
    """Seconds before the attempt after attempt number `attempt`: `base` doubling, at most an hour."""
    return backoff(attempt, base=base, cap=RETRY_CAP)


class WebhookService:
    """The webhooks' use cases over notification's `Webhooks` store and its settings; `resolver`
    (targets.getaddrinfo) and `post` (poster.post) are stubs in unit tests."""

    def __init__(self, store, settings, resolver=None, post=poster.post):
        self.store = store
        self.settings = settings
        self.resolver = resolver
        self.post = post
        self.worker = worker_id()

    # --- the RPC methods (the gateway's routes) --------------------------------------------
    def create(self, owner, url, events):
        events = sorted(set(events or ()))
        if not events or any(event not in c.WEBHOOK_EVENTS for event in events):
            raise InvalidWebhook("events: one or more of %s." % ", ".join(c.WEBHOOK_EVENTS))
        targets.checked_url(url, self.settings.WEBHOOK_ALLOW_PRIVATE, self.resolver)
        doc = self.store.create(owner, url, events)
        if doc is None:
            raise InvalidWebhook("An account has at most %d webhooks." % MAX_WEBHOOKS)
        return webhook_json(doc, secret=True)

    def list(self, owner):
        return [webhook_json(doc) for doc in self.store.of_owner(owner)]

    def delete(self, owner, webhook_id):
        if not self.store.delete(owner, webhook_id):
            raise UnknownWebhook("No such webhook.")

    def deliveries(self, owner, webhook_id):
        if self.store.get(webhook_id, owner) is None:
            raise UnknownWebhook("No such webhook.")
        return [delivery_json(doc) for doc in self.store.recent(webhook_id)]

    # --- from the outcome events -----------------------------------------------------------
    def fan_out(self, job_id, outcome_id):
        """Owe outcome `outcome_id` of the job to each of its owner's webhooks for that event,
        once; the number of deliveries this call added. Nothing for an outcome the job no longer
        has (requeued since: its latest outcome is told when it comes)."""
        if outcome_id is None:
            return 0
        job = self.store.job(job_id)
        if job is None or job.status not in EVENTS or job.outcome_id != outcome_id:
            return 0
        event = EVENTS[job.status]
        hooks = self.store.matching(job.owner, event)
        if not hooks:
            return 0
        body = json.dumps({"event": event, "created_at": isoformat(utcnow()),
                           "job": job_to_json(job, self.settings.RETENTION_HOURS)})
        added = sum(self.store.add_delivery(hook, outcome_id, job.id, event, body) for hook in hooks)
        if added:
            log.info("job %s: %s owed to %d webhook(s)", job.id, event, added)
        return added

    # --- the timer --------------------------------------------------------------------------
    def run_due(self):
        """Attempt every due delivery (CONCURRENCY at once); how many were attempted."""
        pool = eventlet.GreenPool(CONCURRENCY)
        results = list(pool.imap(self.attempt, [doc["_id"] for doc in self.store.due(BATCH)]))
        return sum(result is not None for result in results)

    def lease_seconds(self):
        return int(self.settings.WEBHOOK_TIMEOUT * 2) + 30

    def attempt(self, delivery_id):
        """Post one delivery if it is ours to post now; its result (metrics.DELIVERED, ...) or
        None. Never raises for the receiver's failures."""
        doc = self.store.claim(delivery_id, self.worker, self.lease_seconds())
        if doc is None:
            return None
        hook = self.store.get(doc["webhook_id"])
        if hook is None:  # deleted meanwhile
            self.store.drop(doc)
            return None
        body = doc["body"].encode()
        headers = {"Content-Type": "application/json", "Mp3svc-Event": doc["event"],
                   "Mp3svc-Delivery": doc["_id"],
                   signing.HEADER: signing.signature(hook["secret"], body, int(time.time()))}
        started = time.monotonic()
        status, error, result = None, None, metrics.FAILED
        try:
            target, addresses = targets.checked_url(
                hook["url"], self.settings.WEBHOOK_ALLOW_PRIVATE, self.resolver)
            status = self.post(target, addresses, body, headers, self.settings.WEBHOOK_TIMEOUT)
            if 200 <= status < 300:
                result = metrics.DELIVERED
            else:
                error = "HTTP %d%s" % (status, " (redirects are not followed)"
                                       if 300 <= status < 400 else "")
        except poster.Timeout as exc:
            result, error = metrics.TIMEOUT, str(exc)
        except InvalidUrl as exc:
            error = str(exc)
        except (OSError, http.client.HTTPException) as exc:
            error = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
        entry = {"at": utcnow(), "status": status, "result": result, "error": error,
                 "ms": int((time.monotonic() - started) * 1000)}
        if result == metrics.DELIVERED:
            self.store.delivered(doc, self.worker, entry)
        else:
            retry_in = self.retry_in(doc, entry["at"])
            self.store.failed(doc, self.worker, entry, retry_in)
            log.warning("webhook delivery %s (%s, attempt %d) failed: %s%s", doc["_id"],
                        doc["event"], doc["attempts"], error, "; giving up" if retry_in is None else
                        "; next in %d s" % retry_in)
            if retry_in is None:
                metrics.WEBHOOK_DELIVERIES.labels(metrics.GAVE_UP).inc()
        metrics.WEBHOOK_DELIVERIES.labels(result).inc()
        return result

    def retry_in(self, doc, now):
        """Seconds to the next attempt, or None once the delivery has been tried for
        WEBHOOK_RETRY_HOURS."""
        created = as_datetime(doc.get("created_at")) or now
        if now - created >= datetime.timedelta(hours=self.settings.WEBHOOK_RETRY_HOURS):
            return None
        return retry_delay(doc.get("attempts") or 1, self.settings.WEBHOOK_RETRY_BASE)
