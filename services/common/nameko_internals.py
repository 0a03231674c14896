"""Every use of nameko's internals, in one place (nameko 2.14.1).

Nameko has no public API for these; each is pinned in `RELIED_ON` and checked by
tests/unit/common/test_nameko_internals.py, which fails loudly when a nameko upgrade changes one:

- `free_workers(container)`: free slots of the container's worker pool (`container._worker_pool`,
  an eventlet GreenPool: `free()`), so an HTTP request can be answered 503 instead of waiting.
- `container_cache(container, key)`: a dict kept on the container (`container.__dict__`), for what
  its providers parse once and share (the typed settings).
- `AcceptingWebServer.run`: a copy of `nameko.web.server.WebServer.run` (its `_is_accepting`,
  `_sock`, `_serv`) that survives accept errors and hands each connection to `accepted()`.
- `RoutingWsgiApp.__call__`: a copy of `nameko.web.server.WsgiApp.__call__` with a hook that may
  answer before routing (`before`) and one for routing errors (`routing_error`).
"""
import errno
import logging
from functools import partial

import eventlet
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

log = logging.getLogger(__name__)

# sha256 of the source of each nameko function copied here, as of the version it was copied from
RELIED_ON = {
    "nameko.web.server.WebServer.run":
        "f54a220ccb817633291d3536b33e166509250c131f2bb48fb93108de64e25c61",
    "nameko.web.server.WsgiApp.__call__":
        "2909d54e61f1f9a0d35bb786ec799543f0ff5ce1f70d0f74779f891c904352cb",
}
# accept() errors that pass once descriptors or memory free up: the loop keeps accepting
TRANSIENT_ACCEPT_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED)


def free_workers(container):
    """How many more workers the container can spawn at once without waiting."""
    return container._worker_pool.free()


def container_cache(container, key):
    """A dict stored on the container under `key`, created empty on first use."""
    return container.__dict__.setdefault(key, {})


class AcceptingWebServer(WebServer):
    """nameko's WebServer whose accept loop keeps running through transient accept errors (an
    accept error would otherwise end it: the port stays open and nothing is served)."""

    def run(self):
        while self._is_accepting:
            try:
                sock, addr = self._sock.accept()
            except OSError as exc:
                if exc.errno not in TRANSIENT_ACCEPT_ERRORS:
                    raise
                log.warning("accept failed: %s", exc)
                eventlet.sleep(0.1)
                continue
            self.accepted(sock, addr)

    def accepted(self, sock, addr):
        """Serve one accepted connection (nameko's own behaviour; subclasses refine it)."""
        sock.settimeout(self._serv.socket_timeout)
        self.container.spawn_managed_thread(partial(self.process_request, sock, addr))


class RoutingWsgiApp(WsgiApp):
    """nameko's WsgiApp, with `before(environ)` (a response that answers without routing, or None)
    and `routing_error(exc)` (the response to a werkzeug HTTPException)."""

    def __call__(self, environ, start_response):
        early = self.before(environ)
        if early is not None:
            return early(environ, start_response)
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            rv = provider.handle_request(request)
        except HTTPException as exc:
            rv = self.routing_error(exc)
        return rv(environ, start_response)

    def before(self, environ):
        return None

    def routing_error(self, exc):
        return exc
