"""Per-user admission: the active-job slots (USER_MAX_ACTIVE_JOBS) and the bytes held against the
quota (USER_QUOTA_BYTES)."""
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.common import constants as c
from services.common.jobs import held_bytes
from services.gateway.exceptions import QuotaExceeded, StorageFull, TooManyJobs

# seconds a client told 429 too_many_jobs is asked to wait: about one short conversion
TOO_MANY_JOBS_RETRY = 30


def quota_exceeded(quota):
    return QuotaExceeded("This upload would take you over your storage quota of %d bytes; delete "
                         "some jobs first." % quota)


def storage_full():
    return StorageFull("The server's storage is full; try again later, or tell the operator.")


class Slots:
    """One document per user in `slots`: the ids of their active jobs and how many there are."""

    def __init__(self, db):
        self.jobs = db[c.JOBS_COLLECTION]
        self.slots = db[c.SLOTS_COLLECTION]

    def usage(self, owner, exclude=None):
        """Bytes `owner` holds: videos not yet converted (or kept for a requeue), MP3s, and what
        each upload in progress reserved (announced, or grown as it streams)."""
        return held_bytes(self.jobs, {"owner": owner}, exclude)

    def total(self):
        """Bytes the whole store holds, counted as `usage` does (STORAGE_LIMIT_BYTES)."""
        return held_bytes(self.jobs, {})

    def check(self, owner, quota, storage_limit, exclude=None):
        """QuotaExceeded when `owner` holds more than `quota`, StorageFull when the store holds
        more than `storage_limit` (0: no limit); reservations included."""
        if self.usage(owner, exclude) > quota:
            raise quota_exceeded(quota)
        if storage_limit and self.total() > storage_limit:
            raise storage_full()

    def take(self, owner, job_id, limit):
        """Add `job_id` to the owner's active jobs unless `limit` are there (TooManyJobs). Ids of
        jobs that are no longer active are pruned when the slots look full (nothing has to free a
        slot when a job finishes, so a crash cannot leak one)."""
        for _ in range(3):
            try:
                taken = self.slots.find_one_and_update(
                    {"_id": owner, "count": {"$lt": limit}},
                    {"$push": {"jobs": job_id}, "$inc": {"count": 1}}, upsert=True,
                    return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:  # full (MongoDB tries the upsert), or a concurrent first one
                taken = None
            if taken is not None:
                return
            self._prune(owner)
        raise TooManyJobs("You have %d uploads or conversions in progress, the most at once; "
                          "wait for one to finish." % limit, TOO_MANY_JOBS_RETRY)

    def free(self, owner, job_id):
        # conditional on the id being there, so a slot is given back once
        self.slots.update_one({"_id": owner, "jobs": job_id},
                              {"$pull": {"jobs": job_id}, "$inc": {"count": -1}})

    def forget(self, owner):
        self.slots.delete_one({"_id": owner})

    def _prune(self, owner):
        doc = self.slots.find_one({"_id": owner}) or {}
        ids = list(doc.get("jobs") or [])
        active = {d["_id"] for d in self.jobs.find(
            {"_id": {"$in": ids}, "status": {"$in": list(c.ACTIVE_STATES)}}, projection={"_id": 1})}
        for job_id in ids:
            if job_id not in active:
                self.free(owner, job_id)
