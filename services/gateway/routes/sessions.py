"""The web page's cookie session: GET, POST (log in) and DELETE (log out) /session."""
from services.auth.exceptions import InvalidCredentials
from services.common.scopes import LOGIN_ONLY
from services.gateway.caller import AUTHENTICATED, cookie_name, reject_foreign_page, secure_cookie
from services.gateway.caller import token_from_request
from services.gateway.entrypoints import error_response, http, json_body, json_response
from services.gateway.exceptions import Unauthorized


class SessionRoutes:
    """Mixin of GatewayService: uses its `settings` (PUBLIC_URL), `auth`, `limits` and `_account`."""

    @http("GET", "/session")
    def web_session(self, request):
        """Who the cookie (or token) belongs to: 200 {"email"}, else 401."""
        token, _ = token_from_request(request, self.settings.PUBLIC_URL)
        if token is None:
            raise Unauthorized("Not logged in.")
        return json_response({"email": self._account(request, LOGIN_ONLY)["email"]})

    @http("POST", "/session", rate="login")
    def web_login(self, request):
        """Log in with JSON {"email", "password"}: the token goes into an HttpOnly cookie only."""
        reject_foreign_page(request, (self.settings.PUBLIC_URL,))
        body = json_body(request)
        try:
            grant = self.auth.login(body.get("email"), body.get("password"),
                                    self.limits.client(request))
        except InvalidCredentials as exc:  # no Basic challenge: a browser would prompt for it
            response = error_response(exc)
            response.headers.pop("WWW-Authenticate", None)
            return response
        email = self.auth.validate_token(grant["token"])["email"]  # as auth spells it
        response = json_response({"email": email, "expires_in": grant["expires_in"]})
        self._set_cookie(response, grant)
        request.environ[AUTHENTICATED] = True
        return response

    @http("DELETE", "/session")
    def web_logout(self, request):
        """Log out the page: the cookie's token ends at once (auth), and the cookie is cleared."""
        reject_foreign_page(request, (self.settings.PUBLIC_URL,))
        token, via_cookie = token_from_request(request, self.settings.PUBLIC_URL)
        if token is not None and via_cookie:
            self.auth.logout(token)
        response = json_response({}, 204)
        response.set_data(b"")
        response.delete_cookie(cookie_name(self.settings.PUBLIC_URL), path="/",
                               secure=secure_cookie(self.settings.PUBLIC_URL), httponly=True,
                               samesite="Strict")
        return response

    def _set_cookie(self, response, grant):
        """The token in the page's cookie: HttpOnly, SameSite=Strict, Path=/; behind https Secure
        and named `__Host-...`."""
        response.set_cookie(cookie_name(self.settings.PUBLIC_URL), grant["token"],
                            max_age=int(grant["expires_in"]), path="/",
                            secure=secure_cookie(self.settings.PUBLIC_URL), httponly=True,
                            samesite="Strict")
