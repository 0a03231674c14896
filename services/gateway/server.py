"""The gateway's HTTP server: nameko's WebServer (eventlet.wsgi) with the limits an open port needs.

- every socket read waits at most CLIENT_TIMEOUT seconds: a client silent mid-request (headers,
  body or an idle keep-alive) is disconnected;
- and no longer than the request's time bound (services/gateway/deadline.py): a request, headers
  included, arrives within REQUEST_TIMEOUT of its first byte (an upload's body keeps an average of
  UPLOAD_MIN_RATE instead); past it the answer is 408 and the connection is closed, however slowly
  the client kept sending;
- connections are green threads, capped a little above the worker pool (`max_workers`): past the
  cap a connection gets a canned 503 `busy` at once instead of waiting in the accept queue, and the
  process never runs out of file descriptors (the accept loop, services/common/nameko_internals.py,
  also outlives an accept error);
- any line the server reads itself (a chunk-size line of a chunked body) is bounded.
"""
import io
import json
import logging
import resource
import socket
from functools import partial

import eventlet
from eventlet import wsgi
from nameko.web.server import HttpOnlyProtocol

from services.common.nameko_internals import AcceptingWebServer
from services.gateway.deadline import Expired, RequestClock
from services.gateway.exceptions import RequestTimedOut, describe
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

SPARE_CONNECTIONS = 64      # connections above max_workers: /livez and 503 `busy` still get through
MAX_LINE = 64 * 1024        # longest line eventlet may read from the body (chunk sizes, trailers)
BUSY_RETRY_AFTER = 5
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Retry-After: %d\r\nContent-Length: %d\r\n\r\n%s")
BUSY_BODY = (b'{"error": "busy", "message": "The server is at capacity; try again in a few seconds."}')
CLOCK = "mp3svc.clock"      # the connection's RequestClock in each request's environ


def timeout_response():
    """The 408 of a request whose line or headers did not arrive in time (no WSGI app ran)."""
    status, code, message, _ = describe(RequestTimedOut(
        "The request took too long to arrive; the connection is closed."))
    body = json.dumps({"error": code, "message": message}).encode()
    return (b"HTTP/1.1 %d Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n\r\n%s"
            % (status, len(body), body))


TIMEOUT_RESPONSE = timeout_response()


class BoundedLines:
    """A socket file whose readline() never returns (or buffers) more than MAX_LINE bytes."""

    def __init__(self, rfile):
        self._rfile = rfile

    def readline(self, size=-1):
        if size is None or size < 0 or size > MAX_LINE:
            size = MAX_LINE
        return self._rfile.readline(size)

    def __getattr__(self, name):
        return getattr(self._rfile, name)


class ClockedSocket(io.RawIOBase):
    """The connection's socket as a raw stream whose every read waits only as long as the
    connection's clock allows; past the bound, a request's read raises `Expired` and an upload's
    reads the end of the stream (services/gateway/deadline.py)."""

    def __init__(self, sock, clock):
        super().__init__()
        self._sock, self._clock = sock, clock

    def readable(self):
        return True

    def readinto(self, buffer):
        timeout = self._clock.timeout()
        if timeout is None:
            return 0
        self._sock.settimeout(timeout)
        try:
            count = self._sock.recv_into(buffer)
        except socket.timeout:
            if timeout < self._clock.client_timeout:   # the bound, not the client's silence
                self._clock.expire()
                return 0
            raise
        finally:
            self._sock.settimeout(self._clock.client_timeout)   # for writes
        self._clock.arrived(count)
        return count


class GatewayProtocol(HttpOnlyProtocol):
    def setup(self):
        super().setup()
        self.clock = self.server.new_clock()
        self.rfile = BoundedLines(io.BufferedReader(ClockedSocket(self.connection, self.clock)))

    def handle_one_request(self):
        self.clock.idle()
        try:
            super().handle_one_request()
        except Expired:   # the request line or headers did not arrive in time
            self.close_connection = 1
            try:
                self.wfile.write(TIMEOUT_RESPONSE)
                self.wfile.flush()
            except OSError:
                pass

    def get_environ(self):
        environ = super().get_environ()
        environ[CLOCK] = self.clock
        return environ


def raise_fd_limit(wanted):
    """Raise the soft open-files limit towards the hard one when `wanted` descriptors need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
        if target < wanted:
            log.warning("open-files limit %d is below the %d connections the gateway accepts",
                        target, wanted)


class GatewayWebServer(AcceptingWebServer):
    def setup(self):
        settings = GatewaySettings.of(self.container)
        self.client_timeout = settings.CLIENT_TIMEOUT
        self.new_clock = partial(RequestClock, settings.CLIENT_TIMEOUT, settings.REQUEST_TIMEOUT,
                                 settings.UPLOAD_MIN_RATE, settings.UPLOAD_MIN_RATE_GRACE)
        self.max_connections = self.container.max_workers + SPARE_CONNECTIONS
        self.connections = 0
        raise_fd_limit(self.max_connections + 256)   # + MongoDB, AMQP, logs
        super().setup()

    def get_wsgi_server(self, sock, wsgi_app, protocol=GatewayProtocol, debug=False):
        server = wsgi.Server(sock, sock.getsockname(), wsgi_app, protocol=protocol, debug=debug,
                             log=logging.getLogger(__name__), socket_timeout=self.client_timeout,
                             keepalive=self.client_timeout)
        server.new_clock = self.new_clock   # each connection's RequestClock (GatewayProtocol)
        return server

    def accepted(self, sock, addr):
        sock.settimeout(self.client_timeout)
        if self.connections >= self.max_connections:
            self.container.spawn_managed_thread(partial(self.refuse, sock))
        else:
            self.connections += 1
            self.container.spawn_managed_thread(partial(self.serve, sock, addr))

    def serve(self, sock, addr):
        try:
            self.process_request(sock, addr)
        finally:
            self.connections -= 1

    def refuse(self, sock):
        """503 `busy` without reading the request; the socket is closed after a short drain so the
        client reads the answer rather than a reset."""
        try:
            with eventlet.Timeout(2, False):
                sock.sendall(BUSY_RESPONSE % (BUSY_RETRY_AFTER, len(BUSY_BODY), BUSY_BODY))
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
        except OSError:
            pass
        finally:
            sock.close()
