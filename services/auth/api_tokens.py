"""Personal API tokens (contract, "For scripts"): made, listed and revoked by the account's owner
with a login token, used by scripts within their scopes (services/common/scopes.py).

A token is `mp3_` and 256 random bits: the prefix tells `validate_token` which kind it holds, so
no JWT check is tried on it. Only its SHA-256 is stored (a password hash would add nothing to a
secret of that entropy and cost every request tens of milliseconds); checking one is a single
query on that unique index. `last_used_at` is written at most once a minute per token."""
import datetime
import hashlib
import secrets

from sqlalchemy import delete, func, or_, select, update

from services.auth.exceptions import InvalidToken, TooManyApiTokens, UnknownApiToken
from services.auth.models import ApiToken, DisabledUser, User
from services.auth.schemas import TOKEN_ID_HEX, TOKENS_PER_USER, clean_token_request
from services.auth.sessions import DISABLED
from services.common.utils import isoformat, utcnow

PREFIX = "mp3_"
MAX_LENGTH = 200
MAX_PER_USER = TOKENS_PER_USER
TOUCH_SECONDS = 60   # last_used_at is kept to the minute
ENDED = "This API token was revoked, or its account's password changed; make a new one."
EXPIRED = "This API token has expired; make a new one."


def is_api_token(token):
    return isinstance(token, str) and token.startswith(PREFIX)


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def describe(row):
    """A token as GET /tokens lists it: never its secret."""
    return {"id": row.id, "name": row.name, "scopes": row.scopes.split(),
            "created_at": isoformat(row.created_at), "expires_at": isoformat(row.expires_at),
            "last_used_at": isoformat(row.last_used_at)}


def create(session, user_id, name, scopes, expires_in_days=None):
    """A new token of the user, its secret in `token` (the one time it is shown)."""
    name, scopes, days = clean_token_request(name, scopes, expires_in_days)
    held = session.scalar(select(func.count()).select_from(ApiToken)
                          .where(ApiToken.user_id == user_id))
    if held >= MAX_PER_USER:
        raise TooManyApiTokens("This account has %d API tokens, as many as it may; revoke one "
                               "first." % MAX_PER_USER)
    secret = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(id=secrets.token_hex(TOKEN_ID_HEX // 2), user_id=user_id, name=name,
                   scopes=" ".join(scopes), secret_hash=digest(secret), created_at=now,
                   expires_at=now + datetime.timedelta(days=days) if days else None)
    session.add(row)
    session.commit()
    made = dict(describe(row), token=secret)
    del made["last_used_at"]   # (none yet)
    return made


def listed(session, user_id):
    """The user's tokens, newest first."""
    rows = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id)
                           .order_by(ApiToken.created_at.desc(), ApiToken.id))
    return [describe(row) for row in rows]


def revoke(session, user_id, token_id):
    """The token stops working at once; UnknownApiToken for an id that is not one of the user's."""
    deleted = 0
    if isinstance(token_id, str) and 0 < len(token_id) <= 32:
        deleted = session.execute(delete(ApiToken).where(
            ApiToken.id == token_id, ApiToken.user_id == user_id)).rowcount
        session.commit()
    if not deleted:
        raise UnknownApiToken("No such API token.")


def check(session, token):
    """{"email", "user_id", "scopes"} of a valid API token (one query on the secret's unique
    index), else InvalidToken: unknown or revoked, expired, or of a disabled account."""
    if not is_api_token(token) or len(token) > MAX_LENGTH:
        raise InvalidToken("The token is not valid.")
    now = utcnow()
    row = session.execute(
        select(ApiToken.id, ApiToken.user_id, ApiToken.scopes, ApiToken.expires_at,
               ApiToken.last_used_at, User.email, DisabledUser.email.label("disabled"))
        .join(User, User.id == ApiToken.user_id)
        .outerjoin(DisabledUser, DisabledUser.email == User.email)
        .where(ApiToken.secret_hash == digest(token))).first()
    if row is None:
        raise InvalidToken(ENDED)
    if row.expires_at is not None and row.expires_at <= now:
        raise InvalidToken(EXPIRED)
    if row.disabled is not None:
        raise InvalidToken(DISABLED)
    stale = now - datetime.timedelta(seconds=TOUCH_SECONDS)
    if row.last_used_at is None or row.last_used_at <= stale:
        session.execute(update(ApiToken).where(
            ApiToken.id == row.id, or_(ApiToken.last_used_at.is_(None),
                                       ApiToken.last_used_at <= stale)).values(last_used_at=now))
        session.commit()
    return {"email": row.email, "user_id": row.user_id, "scopes": row.scopes.split()}
