"""Auth's providers: the users database, password hashing off the event loop, JWT issue and check."""
import contextlib
import datetime

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from eventlet import tpool
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from nameko_sqlalchemy import Database

from services.auth.exceptions import Busy, InvalidToken
from services.auth.settings import AuthSettings

ISSUER = "mp3svc"
AUDIENCE = "mp3svc"
ALGORITHM = "HS256"


class UsersDatabase(Database):
    """nameko-sqlalchemy's Database that also creates its tables when the service starts."""

    def start(self):
        self.declarative_base.metadata.create_all(self.engine)


class Passwords:
    """argon2id off the event loop, at most `concurrency` hashes at once (None: no bound).

    A hash costs ~19 MiB and tens of milliseconds of CPU, and holds one of auth's workers; those
    workers also answer every token check. Beyond the bound a login or registration is refused at
    once with `Busy` (503, Retry-After) instead of waiting for a worker, so token checks never
    queue behind password hashing and a login flood cannot exhaust memory."""

    # argon2id at OWASP's recommended minimum (m=19 MiB, t=2, p=1)
    hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

    def __init__(self, concurrency=None):
        # a real hash to verify against for unknown users, so both cases cost the same
        self._dummy = self.hasher.hash("not a password of anyone")
        self._slots = Semaphore(concurrency) if concurrency else None

    @contextlib.contextmanager
    def _slot(self):
        if self._slots is None:
            yield
            return
        if not self._slots.acquire(blocking=False):
            raise Busy("The server is busy checking other passwords; try again in a moment.", 1)
        try:
            yield
        finally:
            self._slots.release()

    def hash(self, password):
        with self._slot():
            return tpool.execute(self.hasher.hash, password)

    def verify(self, password_hash, password):
        def check():
            try:
                return self.hasher.verify(password_hash or self._dummy, password) and bool(
                    password_hash)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        with self._slot():
            return tpool.execute(check)


class PasswordHashing(DependencyProvider):
    def setup(self):
        # at least one worker always stays free for token checks
        concurrency = max(1, min(AuthSettings.of(self.container).HASH_CONCURRENCY,
                                 self.container.max_workers - 1))
        self.passwords = Passwords(concurrency)

    def get_dependency(self, worker_ctx):
        return self.passwords


class Tokens:
    def __init__(self, secret, ttl):
        self.secret = secret
        self.ttl = ttl

    def issue(self, user_id, sid):
        """A token of one session (`sid`) of one account (`sub`: the user's id, never reused)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        claims = {"sub": str(user_id), "sid": sid, "iat": now,
                  "exp": now + datetime.timedelta(seconds=self.ttl), "iss": ISSUER, "aud": AUDIENCE}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def check(self, token):
        """(user id, session id) of a well-signed, unexpired token; InvalidToken otherwise."""
        if not isinstance(token, str) or not token:
            raise InvalidToken("The token is missing.")
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The token has expired; log in again.")
        except jwt.InvalidTokenError:
            raise InvalidToken("The token is not valid.")
        try:
            return int(claims["sub"]), str(claims["sid"])
        except (TypeError, ValueError):  # a token of before sessions: its sub was an address
            raise InvalidToken("The token is not valid; log in again.") from None


class JWTTokens(DependencyProvider):
    def setup(self):
        settings = AuthSettings.of(self.container)
        self.tokens = Tokens(settings.JWT_SECRET, settings.JWT_TTL)

    def get_dependency(self, worker_ctx):
        return self.tokens
