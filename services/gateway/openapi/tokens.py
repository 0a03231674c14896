"""The API tokens' routes (routes/tokens.py) in the OpenAPI document: their models and one
Operation each, added to services/gateway/openapi/operations.py's OPERATIONS."""
from typing import Annotated, Optional

from pydantic import Field

from services.auth.exceptions import InvalidInput, TooManyApiTokens, UnknownApiToken
from services.auth.schemas import TOKEN_ID_HEX, TOKENS_PER_USER
from services.common.scopes import LOGIN_ONLY
from services.gateway import exceptions as errors
from services.gateway.account_schemas import ApiTokenBody, Scope
from services.gateway.openapi import operations
from services.gateway.openapi.models import Timestamp
from services.gateway.openapi.operations import CSRF, JSON_BODY, TOKEN, USER, Operation, Reply
from services.gateway.schemas import Model

TokenId = Annotated[str, Field(pattern="^[0-9a-f]{%d}$" % TOKEN_ID_HEX,
                               description="%d hexadecimal characters." % TOKEN_ID_HEX)]


class ApiTokenCreated(Model):
    id: TokenId
    name: str
    scopes: list[Scope]
    token: str = Field(description="The secret (`mp3_...`), shown this once: only its hash is kept.")
    created_at: Timestamp
    expires_at: Optional[Timestamp] = Field(description="None: until revoked.")


class ApiToken(Model):
    id: TokenId
    name: str
    scopes: list[Scope]
    created_at: Timestamp
    expires_at: Optional[Timestamp] = Field(description="None: until revoked.")
    last_used_at: Optional[Timestamp] = Field(description="To the minute; none: never used.")


class ApiTokenList(Model):
    tokens: list[ApiToken] = Field(description="The caller's API tokens, newest first, without "
                                               "their secrets.")


class TokenPath(Model):
    token_id: TokenId


OPERATIONS = {
    "create_token": Operation(
        "Make a personal API token for scripts", {201: Reply("Made.", ApiTokenCreated)},
        security=USER, scope=LOGIN_ONLY, body=ApiTokenBody, tag="tokens",
        errors=TOKEN + CSRF + JSON_BODY + (InvalidInput, TooManyApiTokens),
        description="Send it as `Authorization: Bearer <token>`: it may do what its scopes say "
                    "(`jobs:read`: list, status, download, archive; `jobs:write`: uploads, delete; "
                    "`webhooks`) until it expires or is revoked, or the account's password "
                    "changes. At most %d per account (409 `too_many_tokens`)." % TOKENS_PER_USER),
    "list_tokens": Operation(
        "The caller's API tokens, without their secrets", {200: Reply("The tokens.", ApiTokenList)},
        security=USER, scope=LOGIN_ONLY, tag="tokens", errors=TOKEN),
    "revoke_token": Operation(
        "Revoke an API token", {204: Reply("Revoked: it stops working at once.", media=None)},
        path=TokenPath, security=USER, scope=LOGIN_ONLY, tag="tokens",
        errors=TOKEN + CSRF + (errors.InvalidId, UnknownApiToken),
        description="404 for unknown ids and for other users' tokens."),
}
operations.OPERATIONS.update(OPERATIONS)
