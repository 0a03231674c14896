"""Users and logins: the logic behind auth's RPC methods."""
import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.auth.exceptions import (
    InvalidCredentials, InvalidInput, TooManyAttempts, UserExists)
from services.auth.models import LoginThrottle, User
from services.auth.schemas import PASSWORD_MAX, clean_email, clean_password
from services.common.utils import utcnow

WRONG_CREDENTIALS = "The email or password is wrong."


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
    """The user's email when the password is right; InvalidCredentials or TooManyAttempts if not."""
    if not isinstance(email, str) or not isinstance(password, str):
        raise InvalidCredentials(WRONG_CREDENTIALS)
    if len(password) > PASSWORD_MAX:
        raise InvalidInput("The password must be at most %d characters long." % PASSWORD_MAX)
    email = email.strip()
    if "@" in email:
        local, domain = email.rsplit("@", 1)
        email = "%s@%s" % (local, domain.lower())
    now = utcnow()
    throttle = session.get(LoginThrottle, email[:254])
    if throttle is not None and throttle.locked_until and throttle.locked_until > now:
        retry_after = int((throttle.locked_until - now).total_seconds()) + 1
        raise TooManyAttempts("Too many failed logins; try again later.", retry_after)

    user = session.scalar(select(User).where(User.email == email))
    if passwords.verify(user.password_hash if user else None, password) and user is not None:
        if throttle is not None:
            session.delete(throttle)
            session.commit()
        return user.email

    window = datetime.timedelta(seconds=lockout)
    if throttle is None:
        throttle = LoginThrottle(email=email[:254], failures=0, window_start=now)
        session.add(throttle)
    if now - throttle.window_start > window:
        throttle.failures, throttle.window_start, throttle.locked_until = 0, now, None
    throttle.failures += 1
    if throttle.failures >= max_failures:
        throttle.locked_until = now + window
    try:
        session.commit()
    except IntegrityError:  # concurrent first failure for this address
        session.rollback()
    raise InvalidCredentials(WRONG_CREDENTIALS)
