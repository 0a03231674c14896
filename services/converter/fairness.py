"""Which queued job a converter takes next: fair sharing between users.

The `video_uploaded` event is only the wake-up. A converter that wakes takes, among the jobs it may
claim (queued and due, or converting under an expired lease), the oldest job of the least-served
owner: the owner with the fewest jobs converting now, then the one served longest ago (never served
first). Each claim records when its owner was last served (`converter_served`). So with any number
of converters, a user's job waits for at most one job of each other user ahead of it, whatever
order the uploads came in. The claim itself stays the lease's compare-and-set: two converters that
pick the same job race on it, the loser tries the next candidate.

A job whose upload still streams in (`upload_open`: converted as it arrives, it holds a converter
for as long as the upload lasts) is taken only while its owner has nothing else converting: one
user's slow uploads never hold more than one converter; their other jobs wait for the last byte or
for that converter, and other users' jobs go first.

The scan is bounded: queued jobs are at most USER_MAX_ACTIVE_JOBS per user, and only their owner,
date and retry time are read (filtered in Python: nx-27017 handles nested `$or` poorly)."""
import collections
import datetime

from services.common import constants as c
from services.common.jobs import as_datetime
from services.common.utils import utcnow

SERVED_COLLECTION = "converter_served"
NEVER = datetime.datetime.min
FIELDS = {"_id": 1, "owner": 1, "created_at": 1, "retry_at": 1, "upload_open": 1}


def candidates(jobs, lease, now):
    """{owner: [(job id, upload still open), oldest first]} of the jobs a converter may claim now."""
    found = collections.defaultdict(list)
    queued = jobs.find({"status": c.QUEUED}, projection=FIELDS)
    expired = jobs.find(lease.expired(now), projection=FIELDS)
    docs = [doc for doc in queued if (as_datetime(doc.get("retry_at")) or NEVER) < now]
    docs += list(expired)
    for doc in sorted(docs, key=lambda d: (as_datetime(d.get("created_at")) or NEVER, d["_id"])):
        found[doc["owner"]].append((doc["_id"], bool(doc.get("upload_open"))))
    return found


def may_take(upload_open, converting):
    """Whether a job may be claimed now: one still uploading only while its owner has no job
    converting (`converting`: the owner's jobs under a live lease)."""
    return not (upload_open and converting)


def busy_owners(jobs, now):
    """{owner: jobs converting now under a live lease}."""
    docs = jobs.find({"status": c.CONVERTING}, projection={"owner": 1, "lease_until": 1})
    return collections.Counter(doc["owner"] for doc in docs
                               if (as_datetime(doc.get("lease_until")) or NEVER) >= now)


def order(owners, busy, served):
    """Owners, the least served first: fewest converting, then served longest ago, then (stable
    sort) the owner of the oldest job first, as `owners` come."""
    return sorted(owners, key=lambda owner: (busy.get(owner, 0), served.get(owner, NEVER)))


class FairQueue:
    def __init__(self, db, jobs, lease):
        self.jobs, self.lease = jobs, lease
        self.served = db[SERVED_COLLECTION]

    def claim_next(self, claim):
        """The document `claim(job_id)` returned for the fairest job it could take; None when
        there is nothing to take."""
        now = utcnow()
        found = candidates(self.jobs, self.lease, now)
        if not found:
            return None
        served = {doc["_id"]: as_datetime(doc.get("at")) or NEVER
                  for doc in self.served.find({"_id": {"$in": list(found)}})}
        busy = busy_owners(self.jobs, now)
        for owner in order(found, busy, served):
            for job_id, upload_open in found[owner]:
                if not may_take(upload_open, busy.get(owner, 0)):
                    continue
                doc = claim(job_id)
                if doc is not None:
                    self.served.update_one({"_id": owner}, {"$set": {"at": utcnow()}}, upsert=True)
                    return doc
        return None
