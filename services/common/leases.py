"""One claim/lease state machine for work recorded on a MongoDB document.

A document's `state` field moves ready -> busy when a worker claims it with a lease (owner and
deadline); the owner renews the lease while it works and settles the document when done. A worker
that dies stops renewing; once the deadline passes anyone may claim the document again. Only the
current owner can renew or settle, so each piece of work has one outcome. Conversions (job status
queued -> converting) and outcome emails (notify pending -> sending) both use it. `postpone` also
moves due dates outside a lease (the converter's announcement of an outcome).

The `due` field says when a sweeper should hand the work out again if nothing happened by then:
set when the work is queued (the event is in flight), to the retry time when it is released, and to
the claim time when it is claimed (so it is due as soon as the lease expires).
"""
import datetime
import os
import socket
import uuid

from pymongo import ReturnDocument

from services.common.utils import utcnow


def worker_id():
    """A name for one worker's claims: host, process and a random part."""
    return "%s-%d-%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])


def backoff(attempt, base=5, cap=300):
    """Seconds before retry number `attempt` (1, 2, ...): base doubling, capped."""
    return min(cap, base * 2 ** max(0, attempt - 1))


class Lease:
    def __init__(self, collection, state, ready, busy, owner, until, attempts, due):
        self.collection = collection
        self.state, self.ready, self.busy = state, ready, busy
        self.owner, self.until, self.attempts, self.due = owner, until, attempts, due

    def claim(self, doc_id, worker, seconds, fields=None, where=()):
        """The document after taking it (ready, or busy with an expired lease); None if not ours.
        `where`: further conditions the document must meet (each a query, joined by `$and`)."""
        now = utcnow()
        update = {"$set": dict(fields or {}, **{
            self.state: self.busy, self.owner: worker, self.due: now,
            self.until: now + datetime.timedelta(seconds=seconds)}),
            "$inc": {self.attempts: 1}}
        for condition in ({self.state: self.ready}, self.expired(now)):
            doc = self.collection.find_one_and_update(
                _all(dict(condition, _id=doc_id), *where), update,
                return_document=ReturnDocument.AFTER)
            if doc is not None:
                return doc
        return None

    def renew(self, doc_id, worker, seconds):
        """False when the lease is no longer ours."""
        result = self.collection.update_one(
            self.held(doc_id, worker),
            {"$set": {self.until: utcnow() + datetime.timedelta(seconds=seconds)}})
        return result.matched_count == 1

    def settle(self, doc_id, worker, fields):
        """Set `fields` and drop the lease, if it is still ours; the document after, or None."""
        return self.collection.find_one_and_update(
            self.held(doc_id, worker),
            {"$set": dict(fields, **{self.owner: None, self.until: None})},
            return_document=ReturnDocument.AFTER)

    def held(self, doc_id, worker):
        return {"_id": doc_id, self.state: self.busy, self.owner: worker}

    def expired(self, now):
        """The filter for documents whose worker stopped renewing its lease."""
        return {self.state: self.busy, self.until: {"$lt": now}}

    def due_docs(self, limit, where=()):
        """Documents whose work nobody is doing although it is due: ready ones past their due time,
        busy ones whose lease expired (and that meet `where`). Filtered by the database, the
        longest overdue first."""
        now = utcnow()
        # ($and spelled out: nx-27017 ignores a condition beside a top-level $or)
        query = {"$and": [{"$or": [{self.state: self.ready}, self.expired(now)]},
                          {self.due: {"$lt": now}}, *where]}
        return list(self.collection.find(query).sort(self.due, 1).limit(limit))

    def postpone(self, doc_id, seconds):
        """Push a due document's due time `seconds` on (after handing it out again); False when
        another sweeper did it first."""
        return postpone(self.collection, doc_id, self.due, seconds)


def postpone(collection, doc_id, due, seconds):
    """Move the date in field `due` of a document whose time came `seconds` on; False when
    another sweeper did it first (or it was not due)."""
    now = utcnow()
    result = collection.update_one(
        {"_id": doc_id, due: {"$lt": now}},
        {"$set": {due: now + datetime.timedelta(seconds=seconds)}})
    return result.modified_count == 1


def _all(query, *more):
    return {"$and": [query, *more]} if more else query
