"""How long each socket read of a connection may wait: the time bounds of a request, in one place.

A connection's `RequestClock` is asked before every read (services/gateway/server.py):

- idle (between requests): a read waits at most CLIENT_TIMEOUT (the keep-alive);
- a request: its first byte starts REQUEST_TIMEOUT for the whole request, headers and body; each
  read waits at most CLIENT_TIMEOUT and never past that deadline;
- an upload (POST /upload, a tus PATCH; the entrypoint switches the clock once it knows the route):
  each read waits at most CLIENT_TIMEOUT, and the body must keep an average of UPLOAD_MIN_RATE
  bytes/s since it began, counted after UPLOAD_MIN_RATE_GRACE seconds: the upload is cut once
  `elapsed > max(grace, received / rate)`. Every byte buys 1/rate seconds, so a connection is held
  no longer than its bytes pay for;
- expired: a request's read that passed the bound raises `Expired` (a socket.timeout: what arrived
  of the request is not used); an upload's sees the end of the stream instead, so the route keeps
  what arrived (a tus PATCH stores it; a multipart form without its closing boundary is refused).
  Every later read sees the end of the stream: the server answers (408) and closes the connection
  instead of reading on.
"""
import socket
import time

IDLE, REQUEST, UPLOAD, EXPIRED = "idle", "request", "upload", "expired"


class Expired(socket.timeout):
    """A read would pass the request's time bound; `kind` is REQUEST or UPLOAD."""

    def __init__(self, kind):
        super().__init__("%s took too long" % kind)
        self.kind = kind


class RequestClock:
    def __init__(self, client_timeout, request_timeout, upload_min_rate, upload_grace,
                 clock=time.monotonic):
        self.client_timeout = client_timeout
        self.request_timeout = request_timeout
        self.upload_min_rate = upload_min_rate
        self.upload_grace = upload_grace
        self._now = clock
        self.state = IDLE
        self.expired_kind = None   # REQUEST or UPLOAD once a bound was passed
        self.deadline = None       # REQUEST: when the whole request must have arrived
        self.started = None        # UPLOAD: when the body began
        self.received = 0          # UPLOAD: bytes since then

    @property
    def expired(self):
        return self.state == EXPIRED

    def idle(self):
        """Between two requests of a connection (a timed-out one ends it, so it stays expired)."""
        if self.state != EXPIRED:
            self.state, self.deadline = IDLE, None

    def upload(self):
        """The request is an upload: from now its body is held to the minimum average rate."""
        if self.state != EXPIRED:
            self.state, self.started, self.received = UPLOAD, self._now(), 0

    def timeout(self):
        """Seconds the next read may wait; None when the stream is to be taken as ended (the bound
        passed: see `expire`)."""
        if self.state == EXPIRED:
            return None
        if self.state == IDLE:
            return self.client_timeout
        left = self._cut_at() - self._now()
        if left <= 0:
            return self.expire()
        return min(self.client_timeout, left)

    def arrived(self, count):
        """`count` bytes were read (0: the client closed its side)."""
        if count and self.state == IDLE:
            self.state, self.deadline = REQUEST, self._now() + self.request_timeout
        elif self.state == UPLOAD:
            self.received += count

    def expire(self):
        """The bound is passed (or a read waited all the time `timeout()` left it): a request's
        read raises Expired; an upload's gets None, the end of the stream."""
        self.expired_kind, self.state = self.state, EXPIRED
        if self.expired_kind == REQUEST:
            raise Expired(self.expired_kind)
        return None

    def _cut_at(self):
        if self.state == REQUEST:
            return self.deadline
        if not self.upload_min_rate:   # 0: no minimum rate
            return float("inf")
        return self.started + max(self.upload_grace, self.received / self.upload_min_rate)
