"""The web page: its static files, the cookie session it logs in with, and the cookie's CSRF rule.

`WebMixin` is one of GatewayService's bases (nameko collects @http entrypoints from base classes);
it uses the service's `settings` (PUBLIC_URL), `auth` and `limits` dependencies.
`token_from_request` and `check_origin` are what the gateway's authentication uses to accept the
cookie as well as a Bearer token.
"""
import os
from urllib.parse import urlsplit

from werkzeug.utils import send_from_directory

from services.auth.exceptions import InvalidCredentials
from services.gateway.entrypoints import error_response, http, json_body, json_response
from services.gateway.exceptions import CsrfRejected, Unauthorized

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
COOKIE_NAME = "mp3svc_token"
STATE_CHANGING = frozenset(("POST", "PUT", "PATCH", "DELETE"))
DEFAULT_PORTS = {"http": 80, "https": 443}

# Sent with the page and its files: nothing but the gateway's own origin may be loaded or called.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def token_from_request(request):
    """(token or None, via_cookie): `Authorization: Bearer` wins over the page's cookie."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    cookie = request.cookies.get(COOKIE_NAME, "").strip()
    if cookie:
        return cookie, True
    return None, False


def origin_of(url):
    """`scheme://host[:port]` of a URL, lower-cased, default port dropped; None when it has none."""
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = "[%s]" % host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = "%s:%d" % (host, port)
    return "%s://%s" % (scheme, host)


def request_origin(request):
    """The origin of the page that sent the request: `Origin`, else the `Referer`'s; None if neither."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin_of(origin)  # "null" (sandboxed, file:) is no origin of ours
    referer = request.headers.get("Referer")
    return origin_of(referer) if referer else None


def own_origins(request, public_origins=()):
    """The page's own origins: the one the request addressed (its Host) and the public URL(s)."""
    found = {origin_of(request.host_url)}
    found.update(origin_of(url) for url in public_origins if url)
    found.discard(None)
    return found


def check_origin(request, public_origins=()):
    """Raise CsrfRejected for a cookie-authenticated POST/PUT/PATCH/DELETE whose Origin (or, without
    one, Referer) is not the page's own. Browsers send Origin on every such request, so one that
    carries neither header is refused too. Bearer-authenticated and read-only requests pass."""
    if request.method not in STATE_CHANGING:
        return
    token, via_cookie = token_from_request(request)
    if token is None or not via_cookie:
        return
    if request_origin(request) not in own_origins(request, public_origins):
        raise CsrfRejected("This request came from another site's page; use this server's own page.")


def _reject_foreign_page(request, public_origins):
    """For /session itself: a browser request from another site's page may not log in or out."""
    sender = request.headers.get("Origin") or request.headers.get("Referer")
    if sender is not None and request_origin(request) not in own_origins(request, public_origins):
        raise CsrfRejected("Log in from this server's own page.")


def _static(request, path):
    response = send_from_directory(WEB_DIR, path, request.environ)  # safe join; 404 outside WEB_DIR
    response.headers.update(SECURITY_HEADERS)
    response.cache_control.no_cache = True  # revalidate (ETag, Last-Modified): upgrades show at once
    return response


class WebMixin:
    """Routes of the web page. Needs the service's `config` (PUBLIC_URL) and `auth` (RPC)."""

    @http("GET", "/")
    def web_index(self, request):
        return _static(request, "index.html")

    @http("GET", "/web/<path:path>")
    def web_static(self, request, path):
        return _static(request, path)

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
        _reject_foreign_page(request, self._web_public_urls())
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
                            secure=self._web_secure(), httponly=True, samesite="Strict")
        response.headers["Cache-Control"] = "no-store"
        return response

    @http("DELETE", "/session")
    def web_logout(self, request):
        _reject_foreign_page(request, self._web_public_urls())
        response = json_response({}, 204)
        response.set_data(b"")
        response.delete_cookie(COOKIE_NAME, path="/", secure=self._web_secure(), httponly=True,
                               samesite="Strict")
        return response

    def _web_public_urls(self):
        return (self.settings.PUBLIC_URL,)

    def _web_secure(self):
        return (origin_of(self.settings.PUBLIC_URL) or "").startswith("https:")
