"""The signature of a webhook delivery (contract, "For scripts"):

    Mp3svc-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the secret>

The time is inside what is signed, so a receiver can refuse a delivery replayed later."""
import hashlib
import hmac
import time

HEADER = "Mp3svc-Signature"
TOLERANCE = 300  # seconds a receiver should accept between `t` and its clock (verify's default)


def digest(secret, timestamp, body):
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def signature(secret, body, timestamp):
    """The header's value for the raw `body` (bytes) sent at `timestamp` (unix seconds)."""
    return "t=%d,v1=%s" % (timestamp, digest(secret, int(timestamp), body))


def verify(secret, body, header, tolerance=TOLERANCE, now=None):
    """What a receiver does (the README shows the same in a few lines): True when `header` signs
    `body` with `secret` and its time is within `tolerance` seconds of `now`."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError, AttributeError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(digest(secret, timestamp, body), fields.get("v1", ""))
