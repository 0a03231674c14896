"""Users and logins: the logic behind auth's RPC methods."""
import datetime

from sqlalchemy import and_, case, delete, func, null, or_, select, update
from sqlalchemy.exc import IntegrityError

from services.auth.exceptions import (
    Busy, InvalidCredentials, InvalidInput, InvalidToken, TooManyAttempts, UnknownUser, UserExists)
from services.auth.models import DisabledUser, LoginThrottle, User
from services.auth.schemas import PASSWORD_MAX, clean_email, clean_password, lookup_email
from services.common.utils import utcnow

WRONG_CREDENTIALS = "The email or password is wrong."
DISABLED = "This account is disabled; ask the operator."
THROTTLE = LoginThrottle.__table__


def create_user(session, passwords, email, password):
    email, password = clean_email(email), clean_password(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise UserExists("A user with that email address already exists.")
    session.add(User(email=email, password_hash=passwords.hash(password), created_at=utcnow()))
    try:
        session.commit()
    except IntegrityError:  # a concurrent registration of the same address won
        session.rollback()
        raise UserExists("A user with that email address already exists.")
    return {"email": email}


def authenticate(session, passwords, email, password, max_failures, lockout):
    """The user's email when the password is right; InvalidCredentials or TooManyAttempts if not.

    Every attempt is counted atomically BEFORE its password is checked, so however many arrive at
    once, at most `max_failures` of them per window are judged; the rest get TooManyAttempts."""
    if not isinstance(email, str) or not isinstance(password, str):
        raise InvalidCredentials(WRONG_CREDENTIALS)
    if len(password) > PASSWORD_MAX:
        raise InvalidInput("The password must be at most %d characters long." % PASSWORD_MAX)
    try:
        email = lookup_email(email)
    except InvalidInput:
        raise InvalidCredentials(WRONG_CREDENTIALS) from None
    window = datetime.timedelta(seconds=lockout)
    attempt, window_start, locked_until = count_attempt(session, email, window)
    now = utcnow()
    if (locked_until and locked_until > now) or attempt > max_failures:
        until = locked_until if locked_until and locked_until > now else window_start + window
        retry_after = max(1, int((until - now).total_seconds()) + 1)
        raise TooManyAttempts("Too many failed logins; try again later.", retry_after)

    user = session.scalar(select(User).where(User.email == email))
    try:
        right = passwords.verify(user.password_hash if user else None, password)
    except Busy:  # not judged: give the attempt back
        session.execute(update(THROTTLE).where(THROTTLE.c.email == email)
                        .values(failures=THROTTLE.c.failures - 1))
        session.commit()
        raise
    if right and user is not None:
        session.execute(delete(THROTTLE).where(THROTTLE.c.email == email))
        session.commit()
        if is_disabled(session, user.email):
            raise InvalidCredentials(DISABLED)
        return user.email
    if attempt >= max_failures:
        session.execute(update(THROTTLE).where(THROTTLE.c.email == email)
                        .values(locked_until=utcnow() + window))
        session.commit()
    raise InvalidCredentials(WRONG_CREDENTIALS)


def count_attempt(session, email, window):
    """(attempt number in the current window, window start, locked until) after counting one more
    attempt: a single UPDATE ... RETURNING (SQLite >= 3.35, PostgreSQL), so concurrent attempts
    each get their own number. A window that ended, or whose lockout ended, starts over at 1."""
    now = utcnow()
    stale = or_(THROTTLE.c.locked_until <= now,
                and_(THROTTLE.c.locked_until.is_(None), THROTTLE.c.window_start < now - window))
    statement = (
        update(THROTTLE).where(THROTTLE.c.email == email)
        .values(failures=case((stale, 1), else_=THROTTLE.c.failures + 1),
                window_start=case((stale, now), else_=THROTTLE.c.window_start),
                locked_until=case((stale, null()), else_=THROTTLE.c.locked_until))
        .returning(THROTTLE.c.failures, THROTTLE.c.window_start, THROTTLE.c.locked_until))
    for _ in range(3):
        row = session.execute(statement).first()
        session.commit()
        if row is not None:
            return tuple(row)
        try:  # the first attempt for this address
            session.execute(THROTTLE.insert().values(email=email, failures=1, window_start=now))
            session.commit()
            return 1, now, None
        except IntegrityError:  # a concurrent first attempt inserted it: count on that row
            session.rollback()
    raise TooManyAttempts("Too many concurrent logins; try again later.", 1)


# --- tokens and accounts --------------------------------------------------------------------------
def check_account(session, email):
    """InvalidToken unless `email` is an existing, enabled account (a token outlives neither)."""
    row = session.execute(
        select(User.id, DisabledUser.email)
        .outerjoin(DisabledUser, DisabledUser.email == User.email)
        .where(User.email == email)).first()
    if row is None:
        raise InvalidToken("The account of this token no longer exists.")
    if row[1] is not None:
        raise InvalidToken(DISABLED)
    return email


def is_disabled(session, email):
    return session.get(DisabledUser, email) is not None


def existing(session, email):
    email = lookup_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is None:
        raise UnknownUser("There is no user %s." % email)
    return email


def disable_user(session, email):
    email = existing(session, email)
    if not is_disabled(session, email):
        session.add(DisabledUser(email=email, disabled_at=utcnow()))
        try:
            session.commit()
        except IntegrityError:  # disabled concurrently
            session.rollback()
    return {"email": email, "disabled": True}


def enable_user(session, email):
    email = existing(session, email)
    session.execute(delete(DisabledUser).where(DisabledUser.email == email))
    session.commit()
    return {"email": email, "disabled": False}


def delete_user(session, email):
    """Remove the account (its jobs and files are the gateway's: see gateway.delete_user)."""
    email = lookup_email(email)
    deleted = session.execute(delete(User).where(User.email == email)).rowcount
    session.execute(delete(DisabledUser).where(DisabledUser.email == email))
    session.execute(delete(THROTTLE).where(THROTTLE.c.email == email))
    session.commit()
    return {"email": email, "deleted": bool(deleted)}


def summary(session):
    return {"users": session.scalar(select(func.count()).select_from(User)),
            "disabled": session.scalar(select(func.count()).select_from(DisabledUser))}
