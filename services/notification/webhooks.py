"""notification's webhooks: the registrations (`webhooks`, one document per webhook of an account)
and their deliveries (`webhook_deliveries`, one document per job outcome and webhook).

A delivery's id is derived from the outcome id and the webhook id, so the outcome event handled
twice (a redelivery, a sweeper's redispatch) inserts it once. A delivery is posted under a lease
(services/common/leases.py: pending -> sending -> delivered, or pending again with the next attempt's
time, or failed once retried for WEBHOOK_RETRY_HOURS); its document keeps a log of its attempts."""
import datetime
import secrets
import uuid

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from services.common import constants as c
from services.common.jobs import Job, as_datetime
from services.common.leases import Lease
from services.common.utils import isoformat, utcnow
from services.notification.settings import NotificationSettings
from services.storage.dependencies import MongoStore

MAX_WEBHOOKS = 20      # per account
MAX_LOG = 30           # attempts kept in a delivery's log (the latest)
RECENT = 50            # deliveries GET /webhooks/<id>/deliveries shows
KEEP_DAYS = 7          # settled deliveries are removed this long after they were made
DELIVERY_IDS = uuid.UUID("6f1c3a52-8d0e-4b7a-9c35-2f4e8a1d7b60")  # uuid5 namespace


def delivery_id(outcome_id, webhook_id):
    """The same for every handling of one outcome for one webhook: the `Mp3svc-Delivery` header."""
    return uuid.uuid5(DELIVERY_IDS, "%s/%s" % (outcome_id, webhook_id)).hex


def webhook_json(doc, secret=False):
    body = {"id": doc["_id"], "url": doc["url"], "events": list(doc["events"]),
            "created_at": isoformat(as_datetime(doc.get("created_at")))}
    if secret:
        body["secret"] = doc["secret"]
    return body


def delivery_json(doc):
    return {
        "id": doc["_id"], "event": doc["event"], "job_id": doc["job_id"],
        "created_at": isoformat(as_datetime(doc.get("created_at"))),
        "status": doc["state"], "attempts": doc.get("attempts") or 0,
        "next_attempt_at": isoformat(as_datetime(doc.get("next_attempt_at")))
        if doc["state"] == c.DELIVERY_PENDING else None,
        "log": [dict(entry, at=isoformat(as_datetime(entry.get("at")))) for entry in doc.get("log") or ()],
    }


class Webhooks:
    def __init__(self, db):
        self.jobs = db[c.JOBS_COLLECTION]  # read: the job a delivery tells of
        self.hooks = db[c.WEBHOOKS_COLLECTION]
        self.deliveries = db[c.DELIVERIES_COLLECTION]
        self.lease = Lease(self.deliveries, "state", c.DELIVERY_PENDING, c.DELIVERY_SENDING,
                           owner="lease_owner", until="lease_until", attempts="attempts",
                           due="next_attempt_at")

    def ensure_indexes(self):
        self.hooks.create_index([("owner", 1)])
        self.deliveries.create_index([("state", 1), ("next_attempt_at", 1)])
        self.deliveries.create_index([("webhook_id", 1), ("created_at", -1)])

    # --- registrations ---------------------------------------------------------------------
    def create(self, owner, url, events):
        """A new webhook of `owner` (its URL checked by the caller); None past MAX_WEBHOOKS."""
        if self.hooks.count_documents({"owner": owner}) >= MAX_WEBHOOKS:
            return None
        doc = {"_id": uuid.uuid4().hex, "owner": owner, "url": url, "events": list(events),
               "secret": "whsec_" + secrets.token_hex(32), "created_at": utcnow()}
        self.hooks.insert_one(doc)
        return doc

    def of_owner(self, owner):
        return sorted(self.hooks.find({"owner": owner}),
                      key=lambda doc: (as_datetime(doc.get("created_at")), doc["_id"]))

    def get(self, webhook_id, owner=None):
        doc = self.hooks.find_one({"_id": webhook_id})
        if doc is None or (owner is not None and doc["owner"] != owner):
            return None
        return doc

    def delete(self, owner, webhook_id):
        """False when `owner` has no such webhook. Its deliveries go with it."""
        if self.hooks.delete_one({"_id": webhook_id, "owner": owner}).deleted_count != 1:
            return False
        self.deliveries.delete_many({"webhook_id": webhook_id})
        return True

    def delete_owner(self, owner):
        """Every webhook of an account (it is being deleted) and their deliveries."""
        self.deliveries.delete_many({"owner": owner})
        return self.hooks.delete_many({"owner": owner}).deleted_count

    def matching(self, owner, event):
        return [doc for doc in self.hooks.find({"owner": owner}) if event in doc["events"]]

    # --- deliveries ------------------------------------------------------------------------
    def job(self, job_id):
        return Job.from_doc(self.jobs.find_one({"_id": job_id}))

    def add_delivery(self, webhook, outcome_id, job_id, event, body):
        """Owe `body` to `webhook`, once per outcome: False when it is owed already."""
        now = utcnow()
        try:
            self.deliveries.insert_one({
                "_id": delivery_id(outcome_id, webhook["_id"]), "webhook_id": webhook["_id"],
                "owner": webhook["owner"], "job_id": job_id, "outcome_id": outcome_id,
                "event": event, "body": body, "created_at": now, "state": c.DELIVERY_PENDING,
                "attempts": 0, "next_attempt_at": now - datetime.timedelta(seconds=1),  # due at once
                "lease_owner": None, "lease_until": None,
                "log": []})
        except DuplicateKeyError:
            return False
        return True

    def due(self, limit):
        """Deliveries whose next attempt is due (or whose sender died mid-attempt)."""
        return self.lease.due_docs(limit)

    def claim(self, delivery_id, worker, seconds):
        """The delivery, now ours to attempt (attempts + 1); None when another worker has it or
        it is not due."""
        return self.lease.claim(delivery_id, worker, seconds)

    def delivered(self, doc, worker, entry):
        return self.lease.settle(doc["_id"], worker, {
            "state": c.DELIVERY_DELIVERED, "next_attempt_at": None, "delivered_at": entry["at"],
            "log": self._log(doc, entry)})

    def failed(self, doc, worker, entry, retry_in):
        """An attempt that failed: pending again in `retry_in` seconds, or given up (None)."""
        fields = {"log": self._log(doc, entry)}
        if retry_in is None:
            fields.update(state=c.DELIVERY_FAILED, next_attempt_at=None)
        else:
            fields.update(state=c.DELIVERY_PENDING,
                          next_attempt_at=entry["at"] + datetime.timedelta(seconds=retry_in))
        return self.lease.settle(doc["_id"], worker, fields)

    def drop(self, doc):
        self.deliveries.delete_one({"_id": doc["_id"]})

    @staticmethod
    def _log(doc, entry):
        return (list(doc.get("log") or ()) + [entry])[-MAX_LOG:]

    def recent(self, webhook_id, limit=RECENT):
        return list(self.deliveries.find({"webhook_id": webhook_id})
                    .sort("created_at", DESCENDING).limit(limit))

    def purge(self, days=KEEP_DAYS):
        """Settled deliveries older than `days`."""
        before = utcnow() - datetime.timedelta(days=days)
        return self.deliveries.delete_many({
            "$and": [{"created_at": {"$lt": before}},
                     {"$or": [{"state": c.DELIVERY_DELIVERED}, {"state": c.DELIVERY_FAILED}]}]}
        ).deleted_count


class WebhookStore(MongoStore):
    settings_class = NotificationSettings

    def build(self, db, settings):
        return Webhooks(db)
