"""Accounts: POST /register and POST /login (HTTP Basic), answered by auth over RPC."""
from services.gateway import api
from services.gateway.entrypoints import http, json_body, json_response
from services.gateway.exceptions import Unauthorized


class AccountRoutes:
    """Mixin of GatewayService: uses its `auth` and `limits` dependencies."""

    @http("POST", "/register")
    def register(self, request):
        body = json_body(request)
        self.limits.hit("register", request)
        form = api.parse(api.RegisterBody, body)
        user = self.auth.register(form.email, form.password)
        return json_response(user, 201)

    @http("POST", "/login")
    def login(self, request):
        self.limits.hit("login", request)
        credentials = request.authorization
        if credentials is None or credentials.type != "basic":
            raise Unauthorized("Log in with HTTP Basic authentication: email and password.")
        return json_response(self.auth.login(credentials.username, credentials.password))
