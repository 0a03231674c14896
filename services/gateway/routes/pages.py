"""Pages for a person and the API's description: the web page (/, /web/*), the OpenAPI document
(/openapi.json) and its Swagger UI page (/docs), all from the one static-file server (static.py)."""
from services.gateway.entrypoints import http, json_response
from services.gateway.openapi.builder import document
from services.gateway.static import DOCS, DOCS_PAGE, WEB


class PageRoutes:
    """Mixin of GatewayService: static files and documents, no dependencies."""

    @http("GET", "/")
    def web_index(self, request):
        return WEB.serve(request, "index.html")

    @http("GET", "/web/<path:path>")
    def web_static(self, request, path):
        return WEB.serve(request, path)

    @http("GET", "/openapi.json")
    def openapi(self, request):
        return json_response(document(type(self)))

    @http("GET", "/docs")
    def docs(self, request):
        return DOCS.serve(request, DOCS_PAGE)

    @http("GET", "/docs/<string:asset>")
    def docs_asset(self, request, asset):
        return DOCS.serve(request, asset)
