"""Accounts people own: registration with a confirmed address, password reset by email, password
change. Emails go out as `auth.account_email` events (notification renders and sends them)."""
import datetime
import hashlib
import secrets

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from services.auth import counters, sessions
from services.auth.exceptions import InvalidInput, InvalidLink, InvalidToken, UserExists
from services.auth.models import Registration, ResetToken, User
from services.auth.schemas import clean_email, clean_password, lookup_email
from services.common import constants as c
from services.common.utils import utcnow

HOUR, DAY = 3600, 86400
# account emails one address may receive: a notice that someone registered it again at most once a
# day; verification and reset links a few an hour (each registration, resend or forgot sends one)
NOTICE_BUDGET = (1, DAY)
LINK_BUDGET = (5, HOUR)
INVALID_LINK = "This link is not valid: it was used already, has expired or was replaced by a newer one."


def new_token():
    """(the token for the link, its SHA-256 as stored)"""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def _mail(session, mail, kind, email, token=None, expires_at=None):
    limit, seconds = NOTICE_BUDGET if kind == c.MAIL_NOTICE else LINK_BUDGET
    if counters.within(session, "mail:%s:%s" % (kind, email), limit, seconds):
        mail(kind, email, token, expires_at)


def register(session, passwords, mail, settings, email, password):
    """The same answer, after the same work (one password hash), for a new and a taken address.
    New: a pending registration and a verification link (or, without EMAIL_VERIFICATION, the
    account). Pending: its password and link are replaced (older links stop working), so whoever
    registered the address first holds nothing once its owner registers. Taken: a notice to the
    owner, at most once a day; nothing changes."""
    email, password = clean_email(email), clean_password(password)
    password_hash = passwords.hash(password)
    answer = {"email": email, "status": "verification_sent"}
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        _mail(session, mail, c.MAIL_NOTICE, email)
        return answer
    if not settings.EMAIL_VERIFICATION:
        try:
            add_user(session, email, password_hash)
        except UserExists:  # registered at the same moment: as for a taken address
            pass
        return answer
    token, token_hash = new_token()
    now = utcnow()
    values = dict(password_hash=password_hash, token_hash=token_hash, created_at=now,
                  expires_at=now + datetime.timedelta(hours=settings.VERIFY_TTL_HOURS))
    for _ in range(3):
        if session.execute(update(Registration).where(Registration.email == email)
                           .values(**values)).rowcount:
            session.commit()
            break
        try:
            session.add(Registration(email=email, **values))
            session.commit()
            break
        except IntegrityError:  # registered concurrently: replace that one
            session.rollback()
    _mail(session, mail, c.MAIL_VERIFY, email, token, values["expires_at"])
    return answer


def add_user(session, email, password_hash):
    """A verified account (registration without verification, a confirmed link, an operator)."""
    try:
        session.add(User(email=email, password_hash=password_hash, created_at=utcnow()))
        # the DELETE autoflushes the INSERT: a concurrent registration's row fails it here already
        session.execute(delete(Registration).where(Registration.email == email))
        session.commit()
    except IntegrityError:
        session.rollback()
        raise UserExists("A user with that email address already exists.")


def verify(session, token):
    """Confirm an address: its pending registration becomes an account. The token is consumed by
    the one DELETE ... RETURNING that finds it unexpired, so it works once."""
    if not isinstance(token, str) or not 0 < len(token) <= 200:
        raise InvalidLink(INVALID_LINK)
    row = session.execute(
        delete(Registration).where(Registration.token_hash == digest(token),
                                   Registration.expires_at > utcnow())
        .returning(Registration.email, Registration.password_hash)).first()
    if row is None:
        session.rollback()
        raise InvalidLink(INVALID_LINK)
    email, password_hash = row
    try:
        add_user(session, email, password_hash)
    except UserExists:  # an operator made the account meanwhile: the link has nothing to confirm
        raise InvalidLink(INVALID_LINK) from None
    return {"email": email, "verified": True}


def resend(session, mail, settings, email):
    """A new verification link for a pending registration (older ones stop working); the same
    answer for any address."""
    try:
        email = lookup_email(email)
    except InvalidInput:
        raise InvalidInput("That is not a valid email address.") from None
    token, token_hash = new_token()
    expires = utcnow() + datetime.timedelta(hours=settings.VERIFY_TTL_HOURS)
    if session.execute(update(Registration).where(Registration.email == email)
                       .values(token_hash=token_hash, expires_at=expires)).rowcount:
        session.commit()
        _mail(session, mail, c.MAIL_VERIFY, email, token, expires)
    else:
        session.rollback()
    return {"email": email, "status": "verification_sent"}


def forgot(session, mail, settings, email):
    """A reset link for a known address (its older links stop working); the same answer for any."""
    email = lookup_email(email)
    user_id = session.scalar(select(User.id).where(User.email == email))
    if user_id is not None:
        token, token_hash = new_token()
        now = utcnow()
        expires = now + datetime.timedelta(minutes=settings.RESET_TTL_MINUTES)
        session.execute(delete(ResetToken).where(ResetToken.user_id == user_id))
        session.add(ResetToken(token_hash=token_hash, user_id=user_id, created_at=now,
                               expires_at=expires))
        session.commit()
        _mail(session, mail, c.MAIL_RESET, email, token, expires)
    return {"email": email, "status": "reset_sent"}


def reset(session, passwords, token, password):
    """A new password from a reset link (used once); every token of the account ends."""
    if not isinstance(token, str) or not 0 < len(token) <= 200:
        raise InvalidLink(INVALID_LINK)
    password_hash = passwords.hash(clean_password(password))  # a weak one leaves the link usable
    user_id = session.execute(
        delete(ResetToken).where(ResetToken.token_hash == digest(token),
                                 ResetToken.expires_at > utcnow())
        .returning(ResetToken.user_id)).scalar()
    if user_id is None:
        session.rollback()
        raise InvalidLink(INVALID_LINK)
    email = set_password(session, user_id, password_hash)
    counters.clear(session, "account:%s" % email)
    return {"email": email}


def set_password(session, user_id, password_hash):
    """Store a new password hash and end every session of the user (one transaction)."""
    email = session.execute(update(User).where(User.id == user_id)
                            .values(password_hash=password_hash).returning(User.email)).scalar()
    sessions.end_all(session, user_id, commit=False)
    session.commit()
    if email is None:
        raise InvalidToken("The account no longer exists.")
    return email


def change_password(session, passwords, tokens, user_id, new_password):
    """After the current password was checked: the new one, every other session ended, and a
    fresh token for the caller."""
    set_password(session, user_id, passwords.hash(clean_password(new_password)))
    return sessions.start(session, tokens, user_id)
