"""Sessions: what makes a token revocable. A token carries its user's id (`sub`) and its session's
id (`sid`); it is valid while that row exists, is unexpired and its user is enabled."""
import datetime
import secrets

from sqlalchemy import delete, select

from services.auth.exceptions import InvalidToken
from services.auth.models import ApiToken, DisabledUser, Session, User
from services.common.utils import utcnow

DISABLED = "This account is disabled; ask the operator."
ENDED = "This token was revoked or its account no longer exists; log in again."


def start(session, tokens, user_id):
    """A new session of the user and its token, as /login answers it. Expired sessions of the
    same user go at the same time (the user_id index finds them)."""
    now = utcnow()
    sid = secrets.token_urlsafe(24)
    session.execute(delete(Session).where(Session.user_id == user_id, Session.expires_at <= now))
    session.add(Session(id=sid, user_id=user_id, created_at=now,
                        expires_at=now + datetime.timedelta(seconds=tokens.ttl)))
    session.commit()
    return {"token": tokens.issue(user_id, sid), "token_type": "Bearer", "expires_in": tokens.ttl}


def check(session, tokens, token):
    """{"email", "user_id"} of a valid login token (one query on the sessions primary key), else
    InvalidToken."""
    user_id, sid = tokens.check(token)
    row = session.execute(
        select(User.email, DisabledUser.email)
        .select_from(Session).join(User, User.id == Session.user_id)
        .outerjoin(DisabledUser, DisabledUser.email == User.email)
        .where(Session.id == sid, Session.user_id == user_id, Session.expires_at > utcnow())).first()
    if row is None:  # (the failure path only) say why when the account was disabled
        disabled = session.execute(select(DisabledUser.email).join(
            User, User.email == DisabledUser.email).where(User.id == user_id)).first()
        raise InvalidToken(DISABLED if disabled else ENDED)
    if row[1] is not None:
        raise InvalidToken(DISABLED)
    return {"email": row[0], "user_id": user_id}


def end(session, tokens, token):
    """Log out: the token's session ends at once (a token that is already invalid is left be)."""
    try:
        user_id, sid = tokens.check(token)
    except InvalidToken:
        return
    session.execute(delete(Session).where(Session.id == sid, Session.user_id == user_id))
    session.commit()


def end_all(session, user_id, commit=True):
    """Every token of the user, its login sessions and its API tokens alike: password change or
    reset, disabling, deletion."""
    session.execute(delete(Session).where(Session.user_id == user_id))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
    if commit:
        session.commit()
