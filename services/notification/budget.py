"""USER_EMAIL_RATE: job outcome emails one account may receive per window. Past it the outcome is
not mailed (it still shows in the API and on the page): someone who registered another person's
address could otherwise mail them once per upload.

A `limits` fixed window per owner on the shared MongoDB counters (services.storage.counters, as the
gateway's rate limits), so every notification replica counts against the same budget."""
from limits.strategies import FixedWindowRateLimiter

from services.notification.settings import NotificationSettings
from services.storage.counters import SharedCounters
from services.storage.dependencies import MongoStore


class EmailBudget:
    def __init__(self, limiter, rate):
        self.limiter = limiter
        self.rate = rate

    def allow(self, owner):
        """Count one outcome email to `owner`; False when it is past the budget."""
        return self.limiter.hit(self.rate, "outcome_email", owner)


class EmailBudgets(MongoStore):
    """Injects the `EmailBudget` of USER_EMAIL_RATE."""
    settings_class = NotificationSettings

    def build(self, db, settings):
        return EmailBudget(FixedWindowRateLimiter(SharedCounters(db)), settings.USER_EMAIL_RATE)
