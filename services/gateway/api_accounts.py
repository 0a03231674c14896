"""The HTTP API of accounts (issue 16), described as services/gateway/api.py describes the rest:
request and response models, and one Operation per entrypoint of routes/accounts.py and
routes/account.py (api.OPERATIONS takes them in)."""
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationError

from services.auth.exceptions import Busy as AuthBusy
from services.auth.exceptions import (
    EmailUnverified, InvalidCredentials, InvalidInput, InvalidLink, RegistrationClosed,
    TooManyAttempts, WeakPassword, WrongPassword)
from services.auth.schemas import MAX_EMAIL, PASSWORD_MAX, PASSWORD_MIN
from services.gateway import api
from services.gateway import exceptions as errors
from services.gateway.api import (
    BASIC, CSRF, EMAIL_PATTERN, JSON_BODY, TOKEN, USER, Model, Operation, Reply, Token, problem)

Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_EMAIL,
                                         pattern=EMAIL_PATTERN)]
NewPassword = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX),
                        Field(description="%d to %d characters, not among commonly used passwords "
                                          "(400 `weak_password` otherwise)."
                                          % (PASSWORD_MIN, PASSWORD_MAX))]
LinkToken = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RegisterBody(Model):
    """The body of POST /register. Blanks around the address are ignored; auth checks it again."""
    email: Email = Field(description="One plain mailbox, `local@domain`.")
    password: NewPassword


class Registered(Model):
    email: str
    status: Literal["verification_sent"] = Field(
        description="The same for a new and for a taken address: a new one gets a link to "
                    "PUBLIC_URL/verify?token=, the owner of a taken one a notice.")


class TokenBody(Model):
    token: LinkToken = Field(description="The `token` of the emailed link.")


class Verified(Model):
    email: str
    verified: Literal[True]


class EmailBody(Model):
    email: Email = Field(description="One plain mailbox, `local@domain`.")


class ResetSent(Model):
    email: str
    status: Literal["reset_sent"] = Field(description="The same for any address.")


class ResetBody(Model):
    token: LinkToken = Field(description="The `token` of the emailed reset link.")
    password: NewPassword


class PasswordChange(Model):
    current_password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)]
    new_password: NewPassword


class PasswordBody(Model):
    password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)] = Field(
        description="The account's password, again.")


def parse(model, data):
    """`data` validated by `model`, as api.parse does; a new password of the wrong length is 400
    `weak_password`, as auth says of one too common."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["loc"][:1] == (NEW_PASSWORD_FIELD.get(model),) and first["type"] in (
                "string_too_short", "string_too_long"):
            raise WeakPassword("The password must be %d to %d characters long."
                               % (PASSWORD_MIN, PASSWORD_MAX)) from None
        raise InvalidInput(problem(exc)) from None


# the field of each body that is a new password
NEW_PASSWORD_FIELD = {RegisterBody: "password", ResetBody: "password", PasswordChange: "new_password"}

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
        security=USER, body=PasswordChange, tag="users",
        errors=TOKEN + CSRF + JSON_BODY + (AuthBusy, WeakPassword, InvalidInput, WrongPassword,
                                           TooManyAttempts),
        description="With the cookie, the cookie gets the new token."),
    "delete_account": Operation(
        "Delete the account with every job, video and MP3", {204: Reply("Deleted.", media=None)},
        security=USER, body=PasswordBody, tag="users",
        errors=TOKEN + CSRF + JSON_BODY + (AuthBusy, InvalidInput, WrongPassword, TooManyAttempts,
                                           errors.StorageUnavailable)),
    "logout": Operation(
        "End this token at once", {204: Reply("Logged out.", media=None)}, security=USER,
        tag="users", errors=TOKEN + CSRF),
}
api.OPERATIONS.update(OPERATIONS)
