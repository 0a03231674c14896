"""HTTP entrypoint whose every error, routing ones included, is the contract's JSON body.

Before a request gets a worker: `/livez` is answered by the WSGI app itself; a route's rate limit
(`rate=`) is counted before a byte of the body is read (429); a bounded body (JSON_MAX_BYTES unless
the route declares its own limit) is read here, in the connection's green thread, within the
request's REQUEST_TIMEOUT, and handed to the worker from memory, so a client sending its body slowly
holds no worker; and a request that finds the worker pool full gets 503 `busy` with Retry-After
instead of waiting for a slot. An upload (`max_body=None`, which bounds itself while streaming) is
held to UPLOAD_MIN_RATE instead (services/gateway/deadline.py). A request whose time bound passed
is answered 408 (`request_timeout`; an upload the route could not complete: `upload_timeout`); a
tus PATCH cut that way stores what arrived and answers 204 with that offset, as for a client that
went away.
"""
import io
import json
import logging
import time

from eventlet import corolocal
from nameko.exceptions import ContainerBeingKilled
from nameko.web.handlers import HttpRequestHandler
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import BaseConverter, Map
from werkzeug.wrappers import Response

from services.common.nameko_internals import RoutingWsgiApp, free_workers
from services.gateway import metrics
from services.common.settings import Settings
from services.gateway.caller import AUTHENTICATED, check_origin
from services.gateway.deadline import REQUEST
from services.gateway.exceptions import (
    BadRequest, Busy, RequestTimedOut, TooLarge, UnsupportedMediaType, UploadTooSlow, describe)
from services.gateway.ratelimit import RateLimits
from services.gateway.server import BUSY_RETRY_AFTER, CLOCK, GatewayWebServer

log = logging.getLogger(__name__)

JSON_MAX_BYTES = 16 * 1024
READ_BLOCK = 64 * 1024
LIVEZ = "/livez"
_routing = corolocal.local()   # the request being routed by this green thread (for its method)


def json_response(payload, status=200, headers=None):
    return Response(json.dumps(payload), status=status, headers=headers,
                    mimetype="application/json")


def error_response(exc):
    status, code, message, headers = describe(exc)
    if status >= 500 and code == "internal_error":
        log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return json_response({"error": code, "message": message}, status, headers)


def json_body(request):
    """The request's JSON object; the entrypoint read the body already, bounded (413 `too_large`).
    Any other content type is refused (415): a form or text/plain body is what another site's page
    can send through its visitors' browsers without a CORS preflight."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as JSON, with 'Content-Type: application/json'.")
    data = request.get_data(cache=False)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # malformed, not UTF-8, or nested too deep
        body = None
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object as the request body.")
    return body


def secure_headers(headers, environ):
    """Every response: `X-Content-Type-Options: nosniff`; one a token or the cookie authenticated:
    `Cache-Control: no-store` (no shared or browser cache keeps a user's data)."""
    headers = [(k, v) for k, v in headers if k.lower() != "x-content-type-options"]
    headers.append(("X-Content-Type-Options", "nosniff"))
    if environ.get(AUTHENTICATED):
        headers = [(k, v) for k, v in headers if k.lower() != "cache-control"]
        headers.append(("Cache-Control", "no-store"))
    return headers


class JsonWsgiApp(RoutingWsgiApp):
    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, secure_headers(headers, environ), exc_info)
        return super().__call__(environ, start)

    def before(self, environ):
        if environ.get("PATH_INFO") == LIVEZ and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            # liveness: the process serves HTTP; needs no worker, says nothing of dependencies
            return json_response({"status": "ok"})
        if environ.get("PATH_INFO") == LIVEZ:
            return error_response(MethodNotAllowed(["GET", "HEAD"]))
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            # eventlet ends a chunked body itself; lets werkzeug apply max_content_length to it
            environ["wsgi.input_terminated"] = True
        _routing.method = environ.get("REQUEST_METHOD")
        return None

    def routing_error(self, exc):
        """No route matched (404, 405): counted apart from the routes."""
        response = error_response(exc)
        metrics.observe_request(metrics.UNMATCHED, getattr(_routing, "method", None),
                                response.status_code)
        return response


class JobIdConverter(BaseConverter):
    """`<job:job_id>`: a path segment naming a job, which `archive` never does. POST /jobs/archive sits
    beside /jobs/<job_id>; were that segment any string, /jobs/archive would match both and its 405
    would offer /jobs/<job_id>'s GET and DELETE too. A malformed id still reaches its route (400)."""
    regex = r"(?!archive(?:/|$))[^/]+"


CONVERTERS = {"job": JobIdConverter}


class JsonWebServer(GatewayWebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def make_url_map(self):
        """nameko's, with the gateway's converters."""
        url_map = Map(converters=CONVERTERS)
        for provider in self._providers:
            rule = provider.get_url_rule()
            rule.endpoint = provider
            url_map.add(rule)
        return url_map


def timed_out(clock):
    """The error of a request whose time bound passed."""
    if clock.expired_kind == REQUEST:
        return RequestTimedOut("The request took longer than the server allows to arrive (%g s); "
                               "the connection is closed." % clock.request_timeout)
    return UploadTooSlow("The upload arrived slower than the server's minimum of %d bytes/s; "
                         "send it again (a resumable upload continues where it stopped)."
                         % clock.upload_min_rate)


def read_body(request, limit):
    """Read the request's body (at most `limit` bytes, else 413) into memory and hand it on as the
    request's input; the clock bounds how long it may take."""
    environ = request.environ
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    length = request.content_length
    if not chunked and not length:
        return
    if length is not None and length > limit:
        raise TooLarge("The request body is larger than %d bytes." % limit)
    stream, data = environ["wsgi.input"], bytearray()
    try:
        while len(data) <= limit:
            block = stream.read(min(READ_BLOCK, limit + 1 - len(data)))
            if not block:
                break
            data += block
    except (OSError, ValueError):  # the client went away, a malformed chunk, or a time bound
        raise BadRequest("The request body could not be read.") from None
    if len(data) > limit:
        raise TooLarge("The request body is larger than %d bytes." % limit)
    if length is not None and len(data) < length:
        raise BadRequest("The request body ended before its Content-Length.")
    environ["wsgi.input"] = io.BytesIO(bytes(data))
    environ["CONTENT_LENGTH"] = str(len(data))
    environ["wsgi.input_terminated"] = True


class HttpEntrypoint(HttpRequestHandler):
    server = JsonWebServer()

    def __init__(self, method, url, max_body=JSON_MAX_BYTES, rate=None, **kwargs):
        """`rate`: the rate limit (services/gateway/ratelimit.py) counted for each request before
        its body is read."""
        self.max_body = max_body
        self.rate = rate
        super().__init__(method, url, **kwargs)
        self.route = metrics.route_template(url)

    def handle_request(self, request):
        """The route's response, counted under its template (`/jobs/<job_id>`) with its status."""
        started = time.monotonic()
        response = self._respond(request)
        metrics.observe_request(self.route, request.method, response.status_code,
                                time.monotonic() - started)
        return response

    def _respond(self, request):
        request.max_content_length = self.max_body
        clock = request.environ.get(CLOCK)
        try:
            self._before_worker(request, clock)
        except Exception as exc:
            return self.response_from_exception(
                timed_out(clock) if clock is not None and clock.expired else exc)
        # nameko's spawn_worker waits for a free slot; answer at once instead. No green thread
        # switch happens between this check and the spawn, so the slot is still free then.
        if free_workers(self.container) < 1:
            return error_response(Busy("The server is at capacity; try again in a few seconds.",
                                       BUSY_RETRY_AFTER))
        response = super().handle_request(request)
        if clock is not None and clock.expired and response.status_code >= 400:
            # the route failed on a body cut at its time bound: that is the error to report (a
            # route that made something of what arrived, a tus PATCH storing it, answers itself)
            response = self.response_from_exception(timed_out(clock))
        return response

    def _before_worker(self, request, clock):
        """The rate limit and the cookie's origin rule (403 csrf), then the body: read here when
        bounded, else (an upload) timed by rate."""
        if self.rate is not None:
            self._limits().hit(self.rate, request)
        check_origin(request, (self._settings().PUBLIC_URL,))
        if self.max_body is None:
            if clock is not None:
                clock.upload()
        else:
            read_body(request, self.max_body)

    def _settings(self):
        """The service's parsed settings (PUBLIC_URL: the page's own origin)."""
        return self._provider(Settings).values

    def _limits(self):
        """The service's rate limits (its RateLimits dependency, shared by its workers)."""
        return self._provider(RateLimits).store

    def _provider(self, kind):
        """The service's dependency provider of class `kind`."""
        for provider in self.container.dependencies:
            if isinstance(provider, kind):
                return provider
        raise LookupError("the gateway's routes need its %s dependency" % kind.__name__)

    def response_from_exception(self, exc):
        if isinstance(exc, ContainerBeingKilled):
            exc = Busy("The server is restarting; try again in a few seconds.", BUSY_RETRY_AFTER)
        return error_response(exc)


http = HttpEntrypoint.decorator
