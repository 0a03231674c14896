"""Personal API tokens for scripts (contract, "For scripts"): POST, GET /tokens and DELETE
/tokens/<id>, with a login token or the page's cookie only (an API token never mints another);
auth makes, stores (hashed) and checks them."""
from werkzeug.wrappers import Response

from services.auth.schemas import TOKEN_ID_HEX, TOKEN_ID_RE
from services.common.scopes import LOGIN_ONLY
from services.gateway import account_schemas
from services.gateway.entrypoints import http, json_body, json_response
from services.gateway.exceptions import InvalidId


class TokenRoutes:
    """Mixin of GatewayService: uses its `auth` and `_account` (caller.py)."""

    @http("POST", "/tokens")
    def create_token(self, request):
        """201 with the token's secret, shown this once."""
        account = self._account(request, LOGIN_ONLY)
        form = account_schemas.parse(account_schemas.ApiTokenBody, json_body(request))
        made = self.auth.create_api_token(account["token"], form.name, form.scopes,
                                          form.expires_in_days)
        return json_response(made, 201)

    @http("GET", "/tokens")
    def list_tokens(self, request):
        account = self._account(request, LOGIN_ONLY)
        return json_response({"tokens": self.auth.list_api_tokens(account["token"])})

    @http("DELETE", "/tokens/<string:token_id>")
    def revoke_token(self, request, token_id):
        """204; the token stops working at once."""
        account = self._account(request, LOGIN_ONLY)
        if not TOKEN_ID_RE.fullmatch(token_id):
            raise InvalidId("A token id is %d hexadecimal characters." % TOKEN_ID_HEX)
        self.auth.revoke_api_token(account["token"], token_id)
        return Response(status=204)
