"""Request bodies of the account routes (routes/accounts.py, routes/account.py), validated with
the same models the OpenAPI document shows (services/gateway/openapi/accounts.py)."""
from typing import Annotated, Literal, Optional

from pydantic import Field, StringConstraints, ValidationError

from services.auth.exceptions import InvalidInput, WeakPassword
from services.auth.schemas import (
    MAX_EMAIL, PASSWORD_MAX, PASSWORD_MIN, TOKEN_DAYS_MAX, TOKEN_NAME_MAX)
from services.common import scopes
from services.gateway.schemas import EMAIL_PATTERN, Model, problem

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


class TokenBody(Model):
    token: LinkToken = Field(description="The `token` of the emailed link.")


class EmailBody(Model):
    email: Email = Field(description="One plain mailbox, `local@domain`.")


class ResetBody(Model):
    token: LinkToken = Field(description="The `token` of the emailed reset link.")
    password: NewPassword


class PasswordChange(Model):
    current_password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)]
    new_password: NewPassword


class PasswordBody(Model):
    password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)] = Field(
        description="The account's password, again.")


Scope = Literal[scopes.ALL]


class ApiTokenBody(Model):
    """The body of POST /tokens (auth checks it again)."""
    name: Annotated[str, StringConstraints(min_length=1, max_length=TOKEN_NAME_MAX,
                                           pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$")] = Field(
        description="What the token is for, to tell it apart in the list.")
    scopes: list[Scope] = Field(min_length=1, description=(
        "What it may do: `jobs:read` (list, status, download, archive), `jobs:write` (uploads, "
        "delete), `webhooks`. Never account changes or minting tokens."))
    expires_in_days: Optional[Annotated[int, Field(ge=1, le=TOKEN_DAYS_MAX)]] = Field(
        None, description="Days until it stops working; none: until revoked.")


# the field of each body that is a new password
NEW_PASSWORD_FIELD = {RegisterBody: "password", ResetBody: "password", PasswordChange: "new_password"}


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
