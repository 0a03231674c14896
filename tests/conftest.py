import eventlet
eventlet.monkey_patch()  # noqa: E402  (must come first: nameko's pytest plugin no longer does it)

import os  # noqa: E402


def real_threads_for_xdist():
    """A pytest-xdist worker (scripts/test.sh) gets its tests from execnet's reader thread, a real
    thread started before this patching, through the locks and events execnet makes as it needs them
    from `threading`: patched by eventlet, that thread could not wake the main one, and the worker
    would wait forever (xdist issue 71). The worker's are made from the unpatched module instead.
    (The controller starts its reader threads after the patching: green threads, green locks.)"""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from execnet import gateway_base
    threading = eventlet.patcher.original("threading")
    model = gateway_base.ThreadExecModel
    model.Lock = model.RLock = lambda self: threading.RLock()
    model.Event = lambda self: threading.Event()


real_threads_for_xdist()

import sys  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import pytest  # noqa: E402

from tests import helpers  # noqa: E402
from tests.configs import config_defaults  # noqa: E402

JWT_SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    """MONGO_URI when set, else an embedded nx-27017 wire server for the session."""
    if os.environ.get("MONGO_URI"):
        yield os.environ["MONGO_URI"]
        return
    directory = tmp_path_factory.mktemp("mongo")
    stack = helpers.Stack(directory, helpers.clean_env())
    try:
        yield stack.start_mongo(directory / "data")
    finally:
        stack.stop()


@pytest.fixture
def mongo_db(mongo_uri):
    """A fresh database name per test; dropped afterwards."""
    name = "test_" + uuid.uuid4().hex[:12]
    yield name
    import pymongo
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=3000)
    try:
        client.drop_database(name)
    except Exception:
        pass
    client.close()


@pytest.fixture
def db(mongo_uri, mongo_db):
    """The test's database through a pymongo client of the test's own: the one `service_config` (so
    `stack`) and the process stacks built from `mongo_uri` and `mongo_db` are given."""
    import pymongo
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=3000)
    yield client[mongo_db]
    client.close()


@pytest.fixture
def mail_sink(tmp_path):
    """A real SMTP server (aiosmtpd, in its own process) storing what it receives in a Maildir."""
    sink = helpers.MailSink(tmp_path / "mail")
    sink.start()
    yield sink
    sink.stop()


POSTGRES_URI = os.environ.get("TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def auth_db_uri(request, tmp_path):
    """Users database: SQLite in a temp dir, and PostgreSQL at TEST_POSTGRES_URI (default the
    machine's, 127.0.0.1:5432), skipped with the reason when it does not answer."""
    if request.param == "sqlite":
        yield "sqlite:///%s" % (tmp_path / "auth.db")
        return
    server = urlparse(POSTGRES_URI)
    host, port = server.hostname or "127.0.0.1", server.port or 5432
    if not helpers.port_open(host, port):
        pytest.skip("PostgreSQL does not answer at %s:%d (set TEST_POSTGRES_URI to point at one)"
                    % (host, port))
    import sqlalchemy
    schema_db = "auth_" + uuid.uuid4().hex[:10]
    admin = sqlalchemy.create_engine(POSTGRES_URI, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text('CREATE DATABASE "%s"' % schema_db))
    base = POSTGRES_URI.rsplit("/", 1)[0]
    yield "%s/%s" % (base, schema_db)
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % schema_db))
    admin.dispose()


@pytest.fixture
def service_config(rabbit_config, mongo_uri, mongo_db, tmp_path):
    """Config shared by the four services in one test: the defaults of config/*.yaml with an
    isolated vhost, database, ports and directories."""
    config = config_defaults()
    config.update(rabbit_config)
    config.update({
        "MONGO_URI": mongo_uri,
        "MONGO_DB": mongo_db,
        "DB_URIS": {"auth:Base": "sqlite:///%s" % (tmp_path / "auth.db")},
        "JWT_SECRET": JWT_SECRET,
        "WEB_SERVER_ADDRESS": "127.0.0.1:%d" % helpers.free_port(),
        "MAX_UPLOAD_BYTES": 50 * 1024 * 1024,
        "LEASE_SECONDS": 6,
        "HEARTBEAT_DIR": str(tmp_path),
        "SMTP_PORT": 1,
        "max_workers": 10,
        "PREFETCH_COUNT": 2,
        # most tests register then log in at once, and upload more than UPLOAD_RATE allows; the
        # tests of accounts turn verification on and set the rate
        "EMAIL_VERIFICATION": False,
        "UPLOAD_RATE": "100000/hour",
    })
    return config


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Makes real media files with ffmpeg, cached for the session."""
    return helpers.MediaFactory(tmp_path_factory.mktemp("media"))


def pytest_addoption(parser):
    parser.addoption(
        "--serial-tests", choices=("include", "exclude", "only"), default="include",
        help="the tests marked `serial`: run them with the rest (include), leave them out (exclude: "
             "scripts/test.sh's parallel pass) or run only them (only: its serial pass)")


def pytest_collection_modifyitems(config, items):
    """--serial-tests: an option of its own rather than `-m (not) serial`, so that a `-m` given to
    scripts/test.sh still selects within each pass."""
    mode = config.getoption("serial_tests")
    if mode == "include":
        return
    wanted = mode == "only"
    kept, left = [], []
    for item in items:
        (kept if (item.get_closest_marker("serial") is not None) == wanted else left).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def pytest_report_header(config):
    return "python %s, ffmpeg: %s" % (sys.version.split()[0], helpers.ffmpeg_version())
