"""HTTP entrypoint whose every error, routing ones included, is the contract's JSON body.

Before a request gets a worker: `/livez` is answered by the WSGI app itself, and a request that
finds the worker pool full gets 503 `busy` with Retry-After instead of waiting for a slot. Request
bodies are bounded: JSON_MAX_BYTES unless a route declares its own limit (`max_body=None` for the
upload, which bounds itself while streaming).
"""
import json
import logging

from nameko.exceptions import ContainerBeingKilled
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WsgiApp
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Request, Response

from services.gateway.caller import AUTHENTICATED
from services.gateway.exceptions import BadRequest, Busy, TooLarge, UnsupportedMediaType, describe
from services.gateway.server import BUSY_RETRY_AFTER, GatewayWebServer

log = logging.getLogger(__name__)

JSON_MAX_BYTES = 16 * 1024
LIVEZ = "/livez"


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


def secure_headers(response, environ):
    """Every response: `X-Content-Type-Options: nosniff`; one a token or the cookie authenticated:
    `Cache-Control: no-store` (no shared or browser cache keeps a user's data)."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if environ.get(AUTHENTICATED):
        response.headers["Cache-Control"] = "no-store"
    return response


class JsonWsgiApp(WsgiApp):
    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == LIVEZ and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            # liveness: the process serves HTTP; needs no worker, says nothing of dependencies
            return secure_headers(json_response({"status": "ok"}), environ)(environ, start_response)
        if environ.get("PATH_INFO") == LIVEZ:
            return secure_headers(error_response(MethodNotAllowed(["GET", "HEAD"])), environ)(
                environ, start_response)
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            # eventlet ends a chunked body itself; lets werkzeug apply max_content_length to it
            environ["wsgi.input_terminated"] = True
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            rv = provider.handle_request(request)
        except HTTPException as exc:
            rv = error_response(exc)
        return secure_headers(rv, environ)(environ, start_response)


class JsonWebServer(GatewayWebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)


class HttpEntrypoint(HttpRequestHandler):
    server = JsonWebServer()

    def __init__(self, method, url, max_body=JSON_MAX_BYTES, **kwargs):
        self.max_body = max_body
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        request.max_content_length = self.max_body
        # nameko's spawn_worker waits for a free slot; answer at once instead. No green thread
        # switch happens between this check and the spawn, so the slot is still free then.
        if self.container._worker_pool.free() < 1:
            return error_response(Busy("The server is at capacity; try again in a few seconds.",
                                       BUSY_RETRY_AFTER))
        return super().handle_request(request)

    def response_from_exception(self, exc):
        if isinstance(exc, ContainerBeingKilled):
            exc = Busy("The server is restarting; try again in a few seconds.", BUSY_RETRY_AFTER)
        return error_response(exc)


http = HttpEntrypoint.decorator
