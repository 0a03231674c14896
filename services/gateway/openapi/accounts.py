"""The account routes (routes/accounts.py, routes/account.py) in the OpenAPI document: their
responses and one Operation each, added to services/gateway/openapi/operations.py's OPERATIONS."""
from typing import Literal

from pydantic import Field

from services.auth.exceptions import Busy as AuthBusy
from services.auth.exceptions import (
    EmailUnverified, InvalidCredentials, InvalidInput, InvalidLink, RegistrationClosed,
    TooManyAttempts, WeakPassword, WrongPassword)
from services.gateway import exceptions as errors
from services.gateway.account_schemas import (
    EmailBody, PasswordBody, PasswordChange, RegisterBody, ResetBody, TokenBody)
from services.gateway.openapi import operations
from services.gateway.openapi.models import Token
from services.gateway.openapi.operations import (
    BASIC, CSRF, JSON_BODY, TOKEN, USER, Operation, Reply)
from services.common.scopes import LOGIN_ONLY
from services.gateway.schemas import Model


class Registered(Model):
    email: str
    status: Literal["verification_sent"] = Field(
        description="The same for a new and for a taken address: a new one gets a link to "
                    "PUBLIC_URL/verify?token=, the owner of a taken one a notice.")


class Verified(Model):
    email: str
    verified: Literal[True]


class ResetSent(Model):
    email: str
    status: Literal["reset_sent"] = Field(description="The same for any address.")


HTML_PAGE = {200: Reply("The web page, which carries on from the link.", media="text/html",
                        schema={"type": "string"}),
             304: Reply("Not modified.", media=None)}
AUTH = (errors.AuthUnavailable, AuthBusy)
EMAILS = JSON_BODY + AUTH + (InvalidInput, errors.RateLimited)

OPERATIONS = {
    "register": Operation(
        "Create an account (confirmed by email)",
        {202: Reply("Accepted: the same answer for a new and a taken address.", Registered)},
        security=(), body=RegisterBody, tag="users",
        errors=JSON_BODY + AUTH + (WeakPassword, InvalidInput, RegistrationClosed,
                                   errors.RateLimited),
        description="A new address gets a verification link (`VERIFY_TTL_HOURS`), the owner of a "
                    "taken one a notice (at most one a day); both answers take about the same time. "
                    "Limited per client address (`REGISTER_RATE`)."),
    "login": Operation(
        "Get a token with HTTP Basic email and password", {200: Reply("A token.", Token)},
        security=(BASIC,), tag="users",
        errors=AUTH + (InvalidInput, InvalidCredentials, errors.Unauthorized, EmailUnverified,
                       TooManyAttempts, errors.RateLimited),
        description="401 with the same body for any wrong email or password; 403 `email_unverified` "
                    "only after a right password. Failed logins are counted per account and client "
                    "address, per client address and per account (429 `too_many_attempts`); "
                    "guesses from other addresses never lock the owner out of their own. Limited "
                    "per client address (`LOGIN_RATE`)."),
    "verify": Operation(
        "Confirm an address with the emailed token", {200: Reply("Confirmed.", Verified)},
        security=(), body=TokenBody, tag="users", errors=JSON_BODY + AUTH + (InvalidInput, InvalidLink),
        description="A token works once, until `VERIFY_TTL_HOURS`; 400 `invalid_token` otherwise."),
    "verify_page": Operation(
        "The page a verification link opens (it confirms `?token=`)", HTML_PAGE, security=(),
        tag="web page"),
    "verify_resend": Operation(
        "Send a new verification link", {202: Reply("The same answer for any address.", Registered)},
        security=(), body=EmailBody, tag="users", errors=EMAILS,
        description="Older links of the address stop working. Limited per client address "
                    "(`REGISTER_RATE`)."),
    "password_forgot": Operation(
        "Email a password-reset link", {202: Reply("The same answer for any address.", ResetSent)},
        security=(), body=EmailBody, tag="users", errors=EMAILS,
        description="A known address gets PUBLIC_URL/reset?token= (once, `RESET_TTL_MINUTES`). "
                    "Limited per client address (`REGISTER_RATE`)."),
    "password_reset": Operation(
        "Set a new password with the emailed token", {204: Reply("Changed.", media=None)},
        security=(), body=ResetBody, tag="users",
        errors=JSON_BODY + AUTH + (WeakPassword, InvalidInput, InvalidLink),
        description="Every token of the account ends. 400 `invalid_token` for a used, replaced or "
                    "expired link."),
    "reset_page": Operation(
        "The page a reset link opens (a form for the new password)", HTML_PAGE, security=(),
        tag="web page"),
    "change_password": Operation(
        "Change the password", {200: Reply("A new token; every other one of the account ended.",
                                           Token)},
        security=USER, scope=LOGIN_ONLY, body=PasswordChange, tag="users",
        errors=TOKEN + CSRF + JSON_BODY + (AuthBusy, WeakPassword, InvalidInput, WrongPassword,
                                           TooManyAttempts),
        description="With the cookie, the cookie gets the new token."),
    "delete_account": Operation(
        "Delete the account with every job, video and MP3", {204: Reply("Deleted.", media=None)},
        security=USER, scope=LOGIN_ONLY, body=PasswordBody, tag="users",
        errors=TOKEN + CSRF + JSON_BODY + (AuthBusy, InvalidInput, WrongPassword, TooManyAttempts,
                                           errors.StorageUnavailable)),
    "logout": Operation(
        "End this token at once", {204: Reply("Logged out.", media=None)}, security=USER,
        scope=LOGIN_ONLY, tag="users", errors=TOKEN + CSRF,
        description="A login token or the cookie; an API token is revoked with DELETE /tokens/{id}."),
}
operations.OPERATIONS.update(OPERATIONS)
