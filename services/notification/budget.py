"""USER_EMAIL_RATE: job outcome emails one account may receive per window. Past it the outcome is
not mailed (it still shows in the API and on the page): someone who registered another person's
address could otherwise mail them once per upload.

A fixed-window counter per owner in MongoDB, one atomic `$inc` with upsert, so every notification
replica counts against the same budget."""
import datetime
import time

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.notification.settings import NotificationSettings
from services.storage.dependencies import MongoStore

COLLECTION = "email_budget"


class EmailBudget:
    def __init__(self, db, rate):
        self.counters = db[COLLECTION]
        self.rate = rate

    def ensure_indexes(self):
        self.counters.create_index("expireAt", expireAfterSeconds=0)

    def allow(self, owner):
        """Count one outcome email to `owner`; False when it is past the budget."""
        seconds = self.rate.get_expiry()
        window = int(time.time() // seconds)
        key = "%s|%d" % (owner, window)
        expire_at = datetime.datetime.fromtimestamp((window + 1) * seconds, datetime.timezone.utc)
        for _ in range(3):
            try:
                doc = self.counters.find_one_and_update(
                    {"_id": key}, {"$inc": {"count": 1}, "$setOnInsert": {"expireAt": expire_at}},
                    upsert=True, return_document=ReturnDocument.AFTER)
                return int(doc["count"]) <= self.rate.amount
            except DuplicateKeyError:  # a concurrent first email of the window: count on it
                continue
        return True


class EmailBudgets(MongoStore):
    """Injects the `EmailBudget` of USER_EMAIL_RATE."""
    settings_class = NotificationSettings

    def build(self, db, settings):
        return EmailBudget(db, settings.USER_EMAIL_RATE)
