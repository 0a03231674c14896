"""HTTP entrypoint whose every error, routing ones included, is the contract's JSON body."""
import json
import logging

from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from services.gateway.exceptions import describe

log = logging.getLogger(__name__)


def json_response(payload, status=200, headers=None):
    return Response(json.dumps(payload), status=status, headers=headers,
                    mimetype="application/json")


def error_response(exc):
    status, code, message, headers = describe(exc)
    if status >= 500 and code == "internal_error":
        log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return json_response({"error": code, "message": message}, status, headers)


class JsonWsgiApp(WsgiApp):
    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            rv = provider.handle_request(request)
        except HTTPException as exc:
            rv = error_response(exc)
        return rv(environ, start_response)


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)


class HttpEntrypoint(HttpRequestHandler):
    server = JsonWebServer()

    def response_from_exception(self, exc):
        return error_response(exc)


http = HttpEntrypoint.decorator
