"""Fixed-window counters in MongoDB for the `limits` library, shared by every replica of a service
(the gateway's rate limits, notification's outcome-email budget).

`limits`' own MongoDBStorage updates a counter with an aggregation-pipeline update ($$NOW, $cond),
which the embedded wire server nx-27017 does not implement; `SharedCounters` keeps its client,
collection and TTL index and does the fixed-window counter with plain, atomic operations any MongoDB
supports: `$inc` on a live window, else start a new one with an insert (the unique _id makes
concurrent replicas agree on one window).
"""
import datetime
import time

from limits.storage import MongoDBStorage
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

# the collections MongoDBStorage keeps its counters (and moving windows) in: a service counting with
# it needs read and write on both
COLLECTIONS = ("counters", "windows")


class SharedCounters(MongoDBStorage):
    STORAGE_SCHEME = ["mp3svc+mongodb"]

    def __init__(self, db):
        super().__init__("mongodb://", database_name=db.name)
        self._client = db.client

    def _init_mongo_client(self, uri, **options):
        return self._client

    def __del__(self):
        pass  # the client is the RateLimits provider's: it closes it when the container stops

    def incr(self, key, expiry, amount=1):
        for _ in range(5):
            now = time.time()
            doc = self.counters.find_one_and_update(
                {"_id": key, "expires": {"$gt": now}}, {"$inc": {"count": amount}},
                projection=["count"], return_document=ReturnDocument.AFTER)
            if doc is not None:
                return int(doc["count"])
            self.counters.delete_one({"_id": key, "expires": {"$lte": now}})
            try:
                self.counters.insert_one({
                    "_id": key, "count": amount, "expires": now + expiry,
                    # for the TTL index on a real MongoDB
                    "expireAt": datetime.datetime.fromtimestamp(now + expiry, datetime.timezone.utc)})
                return amount
            except DuplicateKeyError:  # another replica opened the window first: count in it
                continue
        raise RuntimeError("rate-limit counter %s kept changing" % key)

    def get(self, key):
        doc = self.counters.find_one({"_id": key, "expires": {"$gt": time.time()}})
        return int(doc["count"]) if doc else 0

    def get_expiry(self, key):
        doc = self.counters.find_one({"_id": key, "expires": {"$gt": time.time()}})
        return float(doc["expires"]) if doc else time.time()
