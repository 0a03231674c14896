"""Accounts: registration with a confirmed address, login (HTTP Basic), password reset by email,
answered by auth over RPC. The owner's own account (password change, deletion, logout) is in
routes/account.py."""
from services.gateway import account_schemas
from services.gateway.entrypoints import http, json_body, json_response
from services.gateway.exceptions import Unauthorized
from services.gateway.static import WEB

# the /verify and /reset pages carry a one-time token in their URL: it goes to no other page
LINK_PAGE_HEADERS = {"Referrer-Policy": "no-referrer"}


class AccountRoutes:
    """Mixin of GatewayService: uses its `auth` and `limits` dependencies."""

    @http("POST", "/register", rate="register")
    def register(self, request):
        """202 with the same body for a new and a taken address (auth does the same work)."""
        body = json_body(request)
        form = account_schemas.parse(account_schemas.RegisterBody, body)
        return json_response(self.auth.register(form.email, form.password), 202)

    @http("POST", "/login", rate="login")
    def login(self, request):
        credentials = request.authorization
        if credentials is None or credentials.type != "basic":
            raise Unauthorized("Log in with HTTP Basic authentication: email and password.")
        return json_response(self.auth.login(credentials.username, credentials.password,
                                             self.limits.client(request)))

    # --- the address ----------------------------------------------------------------------------
    @http("POST", "/verify")
    def verify(self, request):
        form = account_schemas.parse(account_schemas.TokenBody, json_body(request))
        return json_response(self.auth.verify_email(form.token))

    @http("GET", "/verify")
    def verify_page(self, request):
        """The web page, which confirms the address of `?token=` (POST /verify)."""
        return link_page(request)

    @http("POST", "/verify/resend", rate="account_email")
    def verify_resend(self, request):
        form = account_schemas.parse(account_schemas.EmailBody, json_body(request))
        return json_response(self.auth.resend_verification(form.email), 202)

    # --- a forgotten password -------------------------------------------------------------------
    @http("POST", "/password/forgot", rate="account_email")
    def password_forgot(self, request):
        form = account_schemas.parse(account_schemas.EmailBody, json_body(request))
        return json_response(self.auth.forgot_password(form.email), 202)

    @http("POST", "/password/reset")
    def password_reset(self, request):
        form = account_schemas.parse(account_schemas.ResetBody, json_body(request))
        self.auth.reset_password(form.token, form.password)
        return empty_response()

    @http("GET", "/reset")
    def reset_page(self, request):
        """The web page's form for a new password for the reset link's `?token=`."""
        return link_page(request)


def link_page(request):
    response = WEB.serve(request, "index.html")
    response.headers.update(LINK_PAGE_HEADERS)
    return response


def empty_response(status=204):
    response = json_response({}, status)
    response.set_data(b"")
    return response
