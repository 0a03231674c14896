"""Rate limits per client address (LOGIN_RATE, REGISTER_RATE) and per account (UPLOAD_RATE), with the
`limits` library, counted in MongoDB (services.storage.counters), so every gateway replica counts
against the same budget.
"""
import ipaddress
import math
import time

from limits.strategies import FixedWindowRateLimiter

from services.gateway.exceptions import RateLimited
from services.gateway.settings import GatewaySettings
from services.storage.counters import SharedCounters
from services.storage.dependencies import MongoStore


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
