"""HTTP entrypoint whose every error, routing ones included, is the contract's JSON body.

Before a request gets a worker: `/livez` is answered by the WSGI app itself, and a request that
finds the worker pool full gets 503 `busy` with Retry-After instead of waiting for a slot. Request
bodies are bounded: JSON_MAX_BYTES unless a route declares its own limit (`max_body=None` for the
upload, which bounds itself while streaming).
"""
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
from services.gateway.caller import AUTHENTICATED
from services.gateway.exceptions import BadRequest, Busy, TooLarge, UnsupportedMediaType, describe
from services.gateway.server import BUSY_RETRY_AFTER, GatewayWebServer

log = logging.getLogger(__name__)

JSON_MAX_BYTES = 16 * 1024
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
    """The request's JSON object; its size was bounded before reading (413 `too_large`). Any other
    content type is refused (415): a form or text/plain body is what another site's page can
    send through its visitors' browsers without a CORS preflight."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as JSON, with 'Content-Type: application/json'.")
    data = request.get_data(cache=False)
    limit = request.max_content_length
    # werkzeug stops a chunked body at the limit without saying so: anything left is too much
    if limit is not None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise TooLarge("The request body is larger than %d bytes." % limit)
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


class HttpEntrypoint(HttpRequestHandler):
    server = JsonWebServer()

    def __init__(self, method, url, max_body=JSON_MAX_BYTES, **kwargs):
        self.max_body = max_body
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
        # nameko's spawn_worker waits for a free slot; answer at once instead. No green thread
        # switch happens between this check and the spawn, so the slot is still free then.
        if free_workers(self.container) < 1:
            return error_response(Busy("The server is at capacity; try again in a few seconds.",
                                       BUSY_RETRY_AFTER))
        return super().handle_request(request)

    def response_from_exception(self, exc):
        if isinstance(exc, ContainerBeingKilled):
            exc = Busy("The server is restarting; try again in a few seconds.", BUSY_RETRY_AFTER)
        return error_response(exc)


http = HttpEntrypoint.decorator
