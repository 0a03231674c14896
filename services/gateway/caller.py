"""Who is calling: the token from `Authorization: Bearer` or the web page's cookie, and the cookie's
CSRF rule (a state-changing request it authenticates must come from the page itself).

`Caller` is one of GatewayService's bases: `_user(request, scope)` is the caller's email for every API
route, which names the scope (services/common/scopes.py) an API token needs for it; it uses the
service's `settings` (PUBLIC_URL) and `auth` dependencies.
"""
from urllib.parse import urlsplit

from services.common import scopes
from services.gateway.exceptions import CsrfRejected, InsufficientScope, Unauthorized

COOKIE_NAME = "mp3svc_token"
# behind https the cookie is `__Host-mp3svc_token`: the browser accepts it only Secure, for Path=/
# and from this very host, so neither a sibling subdomain nor plain http can plant or shadow it
HOST_PREFIX = "__Host-"
# set on the request's environ once a token checked out: the response gets `Cache-Control: no-store`
AUTHENTICATED = "mp3svc.authenticated"
STATE_CHANGING = frozenset(("POST", "PUT", "PATCH", "DELETE"))
DEFAULT_PORTS = {"http": 80, "https": 443}


def cookie_name(public_url):
    """The cookie's name: `__Host-` prefixed when the public URL is https."""
    return HOST_PREFIX + COOKIE_NAME if secure_cookie(public_url) else COOKIE_NAME


def token_from_request(request, public_url=None):
    """(token or None, via_cookie): `Authorization: Bearer` wins over the page's cookie."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    cookie = request.cookies.get(cookie_name(public_url), "").strip()
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
    token, via_cookie = token_from_request(request, public_origins[0] if public_origins else None)
    if token is None or not via_cookie:
        return
    if request_origin(request) not in own_origins(request, public_origins):
        raise CsrfRejected("This request came from another site's page; use this server's own page.")


def reject_foreign_page(request, public_origins):
    """For /session itself: a browser request from another site's page may not log in or out."""
    sender = request.headers.get("Origin") or request.headers.get("Referer")
    if sender is not None and request_origin(request) not in own_origins(request, public_origins):
        raise CsrfRejected("Log in from this server's own page.")


def secure_cookie(public_url):
    """Whether the cookie is marked Secure: when the gateway's public URL is https."""
    return (origin_of(public_url) or "").startswith("https:")


class Caller:
    """Mixin of GatewayService: the authenticated caller of a request."""

    def _user(self, request, scope):
        """The caller's email, from `Authorization: Bearer` or the web page's cookie (whose
        state-changing requests must come from the page itself: 403 csrf otherwise). An API token
        must hold `scope` (403 insufficient_scope); `scopes.LOGIN_ONLY` refuses API tokens."""
        return self._account(request, scope)["email"]

    def _account(self, request, scope=scopes.LOGIN_ONLY):
        """(As `_user`) {"email", "user_id", "token", "via_cookie"} of the caller."""
        token, via_cookie = token_from_request(request, self.settings.PUBLIC_URL)
        if token is None:
            raise Unauthorized("Send the token from /login as 'Authorization: Bearer <token>'.")
        check_origin(request, (self.settings.PUBLIC_URL,))
        account = self.auth.validate_token(token)
        check_scope(account.get("scopes"), scope)
        request.environ[AUTHENTICATED] = True
        return dict(account, token=token, via_cookie=via_cookie)


def check_scope(granted, needed):
    """`granted` is None for a login token (everything) or an API token's list of scopes."""
    if granted is None:
        return
    if needed is scopes.LOGIN_ONLY:
        raise InsufficientScope("An API token cannot do this; log in with your password.")
    if needed not in granted:
        raise InsufficientScope("This API token lacks the '%s' scope." % needed)
