"""The caller's own account: PUT /account/password, DELETE /account (with every job, video and
MP3), POST /logout (that token ends at once)."""
from services.gateway import account_schemas
from services.gateway.caller import cookie_name, secure_cookie
from services.gateway.entrypoints import http, json_body, json_response
from services.gateway.routes.accounts import empty_response


class OwnAccountRoutes:
    """Mixin of GatewayService: uses its `auth`, `limits`, `_account` and the ops flow
    `delete_user` (operations.py)."""

    @http("PUT", "/account/password")
    def change_password(self, request):
        """A new password; every token of the account ends and the answer is a new one."""
        account = self._account(request)
        form = account_schemas.parse(account_schemas.PasswordChange, json_body(request))
        grant = self.auth.change_password(account["token"], form.current_password,
                                          form.new_password, self.limits.client(request))
        response = json_response(grant)
        if account["via_cookie"]:  # the page's old token ended: its cookie gets the new one
            self._set_cookie(response, grant)
        return response

    @http("DELETE", "/account")
    def delete_account(self, request):
        """The account with every job, video and MP3 of it, once its password is given again."""
        account = self._account(request)
        form = account_schemas.parse(account_schemas.PasswordBody, json_body(request))
        self.auth.confirm_password(account["token"], form.password, self.limits.client(request))
        self.delete_user(account["email"])
        response = empty_response()
        if account["via_cookie"]:
            response.delete_cookie(cookie_name(self.settings.PUBLIC_URL), path="/",
                                   secure=secure_cookie(self.settings.PUBLIC_URL), httponly=True,
                                   samesite="Strict")
        return response

    @http("POST", "/logout")
    def logout(self, request):
        """The Bearer token (or the cookie's) stops working at once."""
        account = self._account(request)
        self.auth.logout(account["token"])
        return empty_response()
