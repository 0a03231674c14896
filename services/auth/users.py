"""Logins and the operator's verbs: the logic behind auth's RPC methods."""
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from services.auth import accounts, counters, sessions
from services.auth.exceptions import (
    Busy, EmailUnverified, InvalidCredentials, InvalidInput, TooManyAttempts, UnknownUser,
    UserExists, WrongPassword)
from services.auth.models import DisabledUser, KnownClient, Registration, ResetToken, User
from services.auth.schemas import PASSWORD_MAX, clean_email, clean_password, lookup_email
from services.common.utils import utcnow

WRONG_CREDENTIALS = "The email or password is wrong."
UNVERIFIED = ("Confirm your email address first: open the link we sent you "
              "(or ask for a new one with POST /verify/resend).")


def create_user(session, passwords, email, password):
    """Ops: a verified account, whether or not registration is open."""
    email, password = clean_email(email), clean_password(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise UserExists("A user with that email address already exists.")
    accounts.add_user(session, email, passwords.hash(password))
    return {"email": email}


class Guesses:
    """Failed logins, counted per (account, client address), per client address and per account.

    Each attempt is counted BEFORE its password is checked (one atomic UPDATE each), so however
    many arrive at once only the allowed number is judged; an attempt that turns out right (or is
    never judged) is given back. Past the limits:
    - (account, client): LOGIN_MAX_FAILURES, then that pair is locked for LOGIN_LOCKOUT_SECONDS;
      guesses from other addresses never count here, so they cannot lock the owner out;
    - client: LOGIN_CLIENT_MAX_FAILURES per window, whatever the accounts (password spraying);
    - account: LOGIN_ACCOUNT_MAX_FAILURES per window from all addresses together (a botnet on one
      account), enforced only on addresses the account never logged in from."""

    def __init__(self, session, settings, email, client):
        self.session = session
        self.settings = settings
        self.window = settings.LOGIN_LOCKOUT_SECONDS
        self.pair = "login:%s|%s" % (email, client or "-")
        self.client = "client:%s" % client if client else None
        self.account = "account:%s" % email
        self.counted = []
        self.number = 0

    def count(self, user_id, client):
        settings, window = self.settings, self.window
        checks = [(self.pair, settings.LOGIN_MAX_FAILURES)]
        if self.client:
            checks.append((self.client, settings.LOGIN_CLIENT_MAX_FAILURES))
        checks.append((self.account, settings.LOGIN_ACCOUNT_MAX_FAILURES))
        for key, limit in checks:
            state = counters.count(self.session, key, window)
            self.counted.append(key)
            if key == self.pair:
                self.number = state[0]
            wait = counters.retry_after(state, window, limit)
            if wait and key == self.account and known(self.session, user_id, client):
                continue
            if wait:
                raise TooManyAttempts("Too many failed logins; try again later.", wait)

    def right(self):
        counters.clear(self.session, self.pair)
        self.counted.remove(self.pair)
        self.unjudged()

    def unjudged(self):
        counters.give_back(self.session, self.counted)

    def wrong(self):
        if self.number >= self.settings.LOGIN_MAX_FAILURES:
            counters.lock(self.session, self.pair, self.window)


def known(session, user_id, client):
    return bool(user_id and client and session.get(KnownClient, (user_id, client)) is not None)


def remember(session, user_id, client):
    if not client:
        return
    if session.get(KnownClient, (user_id, client)) is None:
        session.add(KnownClient(user_id=user_id, client=client, last_login_at=utcnow()))
        try:
            session.commit()
        except IntegrityError:  # the same client logged in concurrently
            session.rollback()


def authenticate(session, passwords, settings, email, password, client=None):
    """The account's (id, email) when the password is right; InvalidCredentials, EmailUnverified
    (only once the password was right) or TooManyAttempts if not."""
    if not isinstance(email, str) or not isinstance(password, str):
        raise InvalidCredentials(WRONG_CREDENTIALS)
    if len(password) > PASSWORD_MAX:
        raise InvalidInput("The password must be at most %d characters long." % PASSWORD_MAX)
    try:
        email = lookup_email(email)
    except InvalidInput:
        raise InvalidCredentials(WRONG_CREDENTIALS) from None
    client = str(client)[:64] if client else None
    user = session.scalar(select(User).where(User.email == email))
    guesses = Guesses(session, settings, email, client)
    guesses.count(user.id if user else None, client)
    pending = None
    if user is None:
        pending = session.scalar(select(Registration.password_hash)
                                 .where(Registration.email == email))
    try:
        right = passwords.verify(user.password_hash if user else pending, password)
    except Busy:  # not judged: give the attempt back
        guesses.unjudged()
        raise
    if not right:
        guesses.wrong()
        raise InvalidCredentials(WRONG_CREDENTIALS)
    guesses.right()
    if user is None:
        raise EmailUnverified(UNVERIFIED)
    if is_disabled(session, user.email):
        raise InvalidCredentials(sessions.DISABLED)
    remember(session, user.id, client)
    return user.id, user.email


def confirm_password(session, passwords, settings, user, password, client=None):
    """The owner's password again before a password change or the account's deletion (counted
    as a login attempt); WrongPassword when it is not."""
    try:
        authenticate(session, passwords, settings, user["email"], password, client)
    except InvalidCredentials:
        raise WrongPassword("The current password is wrong.") from None


# --- operator verbs -------------------------------------------------------------------------------
def is_disabled(session, email):
    return session.get(DisabledUser, email) is not None


def existing(session, email):
    """(id, email) of an account, or UnknownUser."""
    email = lookup_email(email)
    user_id = session.scalar(select(User.id).where(User.email == email))
    if user_id is None:
        raise UnknownUser("There is no user %s." % email)
    return user_id, email


def disable_user(session, email):
    """Refuse the user's logins and end every token of theirs (enabling brings none back)."""
    user_id, email = existing(session, email)
    sessions.end_all(session, user_id)
    if not is_disabled(session, email):
        session.add(DisabledUser(email=email, disabled_at=utcnow()))
        try:
            session.commit()
        except IntegrityError:  # disabled concurrently
            session.rollback()
    return {"email": email, "disabled": True}


def enable_user(session, email):
    _, email = existing(session, email)
    session.execute(delete(DisabledUser).where(DisabledUser.email == email))
    session.commit()
    return {"email": email, "disabled": False}


def delete_user(session, email):
    """Remove the account, its sessions and links (its jobs and files are the gateway's: see
    gateway.delete_user). The same address registering again is a new account with a new id."""
    email = lookup_email(email)
    user_id = session.scalar(select(User.id).where(User.email == email))
    if user_id is not None:
        sessions.end_all(session, user_id, commit=False)
        session.execute(delete(ResetToken).where(ResetToken.user_id == user_id))
        session.execute(delete(KnownClient).where(KnownClient.user_id == user_id))
    deleted = session.execute(delete(User).where(User.email == email)).rowcount
    session.execute(delete(Registration).where(Registration.email == email))
    session.execute(delete(DisabledUser).where(DisabledUser.email == email))
    session.commit()
    counters.clear(session, "account:%s" % email)
    return {"email": email, "deleted": bool(deleted)}


def summary(session):
    return {"users": session.scalar(select(func.count()).select_from(User)),
            "disabled": session.scalar(select(func.count()).select_from(DisabledUser)),
            "unverified": session.scalar(select(func.count()).select_from(Registration))}
