"""The users database. New tables rather than new columns, so that an existing database gets them
from `create_all` without a migration: a row in `users` is a verified account, a pending
registration lives in `registrations` until its link is opened."""
from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    # ids are never reused (SQLite would hand the highest deleted id out again without this)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at = mapped_column(DateTime, nullable=False)


class Session(Base):
    """One login: a token names its session (`sid`) and its user (`sub`); deleting the row ends the
    token at once (logout; every row of a user: password change or reset, disabling, deletion)."""
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    created_at = mapped_column(DateTime, nullable=False)
    expires_at = mapped_column(DateTime, nullable=False)


class Registration(Base):
    """An address registered but not yet confirmed: the password it was registered with and the
    SHA-256 of its one verification token. Registering the address again replaces both."""
    __tablename__ = "registrations"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at = mapped_column(DateTime, nullable=False)
    expires_at = mapped_column(DateTime, nullable=False)


class ResetToken(Base):
    """A password-reset link: the SHA-256 of its token, used once."""
    __tablename__ = "reset_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    created_at = mapped_column(DateTime, nullable=False)
    expires_at = mapped_column(DateTime, nullable=False)


class Counter(Base):
    """Fixed-window counters, counted atomically: failed logins per (account, client address), per
    client address and per account; account emails per address."""
    __tablename__ = "counters"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    window_start = mapped_column(DateTime, nullable=False)
    locked_until = mapped_column(DateTime, nullable=True)


class KnownClient(Base):
    """Client addresses an account logged in from: guesses at the account from elsewhere never
    lock these out."""
    __tablename__ = "known_clients"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_login_at = mapped_column(DateTime, nullable=False)


class DisabledUser(Base):
    """Accounts an operator disabled: their tokens stop working and they cannot log in. A table of
    its own, so that existing databases get it from `create_all` without a migration."""
    __tablename__ = "disabled_users"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    disabled_at = mapped_column(DateTime, nullable=False)


class ApiToken(Base):
    """A personal API token (contract, "For scripts"): what it may do (`scopes`, space-separated,
    services/common/scopes.py) and the SHA-256 of its secret, which is shown once and never stored.
    Deleting the row ends the token at once (revoked; every row of a user: password change or
    reset, disabling, deletion)."""
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"),
                                         nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    scopes: Mapped[str] = mapped_column(String(200), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at = mapped_column(DateTime, nullable=False)
    expires_at = mapped_column(DateTime, nullable=True)
    last_used_at = mapped_column(DateTime, nullable=True)
