"""Fixtures of auth's unit tests: the password hasher and a users database on SQLite."""
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from services.auth.dependencies import Passwords
from services.auth.models import Base


@pytest.fixture(scope="module")
def passwords():
    return Passwords()


@pytest.fixture
def session(tmp_path):
    engine = create_engine("sqlite:///%s" % (tmp_path / "users.db"))
    Base.metadata.create_all(engine)
    session = sessionmaker(bind=engine)()
    yield session
    session.close()
    engine.dispose()
