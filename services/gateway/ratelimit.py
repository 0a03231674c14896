"""Rate limits per client address (LOGIN_RATE, REGISTER_RATE), with the `limits` library.

The counters live in MongoDB, so every gateway replica counts against the same budget. `limits`'
own MongoDBStorage updates a counter with an aggregation-pipeline update ($$NOW, $cond), which the
embedded wire server nx-27017 does not implement; `SharedCounters` keeps its client, collection and
TTL index and does the fixed-window counter with plain, atomic operations any MongoDB supports:
`$inc` on a live window, else start a new one with an insert (the unique _id makes concurrent
replicas agree on one window).
"""
import datetime
import ipaddress
import math
import time

from limits.storage import MongoDBStorage
from limits.strategies import FixedWindowRateLimiter
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.gateway.exceptions import RateLimited
from services.gateway.settings import GatewaySettings
from services.storage.dependencies import MongoStore


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


def _ip(text):
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def client_address(environ, trusted):
    """The client's address: the direct peer, or, when the peer is a trusted proxy, the right-most
    address of X-Forwarded-For that is not itself a trusted proxy."""
    peer = environ.get("REMOTE_ADDR", "")
    if not trusted or not _trusted(_ip(peer), trusted):
        return peer
    hops = [hop.strip() for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(_ip(hop), trusted):
            return hop
    return hops[0] if hops else peer


def _trusted(ip, trusted):
    return ip is not None and any(ip in network for network in trusted)


def client_key(address):
    """The counter's identity: the address; an IPv6 client's whole /64 (one subscriber's share)."""
    ip = _ip(address)
    if ip is None:
        return address[:64] or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network("%s/64" % ip, strict=False))
    return str(ip)


class Limits:
    def __init__(self, limiter, rates, trusted):
        self.limiter = limiter
        self.rates = rates
        self.trusted = trusted

    def client(self, request):
        """The request's client as counters know it (honouring TRUSTED_PROXIES)."""
        return client_key(client_address(request.environ, self.trusted))

    def hit(self, name, request, key=None):
        """Count one request of `name` (`login`, `register`, ...) from the request's client
        address, or for `key` (`upload`: per account); RateLimited (429 with Retry-After) past
        the rate."""
        rate = self.rates[name]
        who = "address" if key is None else "account"
        key = self.client(request) if key is None else key
        if not self.limiter.hit(rate, name, key):
            reset = self.limiter.get_window_stats(rate, name, key).reset_time
            retry_after = max(1, math.ceil(reset - time.time()))
            raise RateLimited("Too many %s requests from your %s; try again in %d s."
                              % (name, who, retry_after),
                              retry_after)


class RateLimits(MongoStore):
    """Injects `Limits`; its MongoDB client is released when the container stops."""

    settings_class = GatewaySettings

    def build(self, db, settings):
        return Limits(FixedWindowRateLimiter(SharedCounters(db)),
                      {"login": settings.LOGIN_RATE, "register": settings.REGISTER_RATE,
                       # the account email routes (resend, forgot) count as registrations
                       "account_email": settings.REGISTER_RATE, "upload": settings.UPLOAD_RATE},
                      settings.TRUSTED_PROXIES or ())
