"""The web page's cookie session: GET, POST (log in) and DELETE (log out) /session."""
from services.auth.exceptions import InvalidCredentials
from services.gateway.caller import COOKIE_NAME, reject_foreign_page, secure_cookie, token_from_request
from services.gateway.entrypoints import error_response, http, json_body, json_response
from services.gateway.exceptions import Unauthorized


class SessionRoutes:
    """Mixin of GatewayService: uses its `settings` (PUBLIC_URL), `auth` and `limits`."""

    @http("GET", "/session")
    def web_session(self, request):
        """Who the cookie (or token) belongs to: 200 {"email"}, else 401."""
        token, _ = token_from_request(request)
        if token is None:
            raise Unauthorized("Not logged in.")
        return json_response({"email": self.auth.validate_token(token)["email"]})

    @http("POST", "/session")
    def web_login(self, request):
        """Log in with JSON {"email", "password"}: the token goes into an HttpOnly cookie only."""
        reject_foreign_page(request, (self.settings.PUBLIC_URL,))
        body = json_body(request)
        self.limits.hit("login", request)
        try:
            grant = self.auth.login(body.get("email"), body.get("password"))
        except InvalidCredentials as exc:  # no Basic challenge: a browser would prompt for it
            response = error_response(exc)
            response.headers.pop("WWW-Authenticate", None)
            return response
        email = self.auth.validate_token(grant["token"])["email"]  # as auth spells it
        response = json_response({"email": email, "expires_in": grant["expires_in"]})
        response.set_cookie(COOKIE_NAME, grant["token"], max_age=int(grant["expires_in"]), path="/",
                            secure=secure_cookie(self.settings.PUBLIC_URL), httponly=True,
                            samesite="Strict")
        response.headers["Cache-Control"] = "no-store"
        return response

    @http("DELETE", "/session")
    def web_logout(self, request):
        reject_foreign_page(request, (self.settings.PUBLIC_URL,))
        response = json_response({}, 204)
        response.set_data(b"")
        response.delete_cookie(COOKIE_NAME, path="/", secure=secure_cookie(self.settings.PUBLIC_URL),
                               httponly=True, samesite="Strict")
        return response
