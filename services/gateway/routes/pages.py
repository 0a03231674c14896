"""Pages for a person and the API's description: the web page (/, /web/*), the OpenAPI document
(/openapi.json) and its Swagger UI page (/docs)."""
from services.gateway import api
from services.gateway.entrypoints import http, json_response
from services.gateway.static import web_file


class PageRoutes:
    """Mixin of GatewayService: static files and documents, no dependencies."""

    @http("GET", "/")
    def web_index(self, request):
        return web_file(request, "index.html")

    @http("GET", "/web/<path:path>")
    def web_static(self, request, path):
        return web_file(request, path)

    @http("GET", "/openapi.json")
    def openapi(self, request):
        return json_response(api.document(type(self)))

    @http("GET", "/docs")
    def docs(self, request):
        return api.docs_file(request, api.DOCS_PAGE)

    @http("GET", "/docs/<string:asset>")
    def docs_asset(self, request, asset):
        return api.docs_file(request, asset)
