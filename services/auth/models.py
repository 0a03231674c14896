from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at = mapped_column(DateTime, nullable=False)


class LoginThrottle(Base):
    """Failed logins per email address, for the lockout that answers 429."""
    __tablename__ = "login_throttle"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    window_start = mapped_column(DateTime, nullable=False)
    locked_until = mapped_column(DateTime, nullable=True)


class DisabledUser(Base):
    """Accounts an operator disabled: their tokens stop working and they cannot log in. A table of
    its own, so that existing databases get it from `create_all` without a migration."""
    __tablename__ = "disabled_users"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    disabled_at = mapped_column(DateTime, nullable=False)
