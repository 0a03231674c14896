"""services/gateway/entrypoints.py: the body read before a worker, the rate limits it comes after,
the gateway's own path converters."""
import io

import pytest
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway.entrypoints import CONVERTERS, json_body, read_body
from services.gateway.exceptions import BadRequest, TooLarge
from services.gateway.openapi.builder import http_entrypoints
from services.gateway.service import GatewayService


def request(body=b"", chunked=False, **headers):
    environ = EnvironBuilder(method="POST", path="/register", data=body,
                             content_type="application/json", headers=headers).get_environ()
    if chunked:
        del environ["CONTENT_LENGTH"]
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    return Request(environ)


def test_a_bounded_body_is_handed_on_from_memory():
    sent = request(b'{"email": "a@example.com"}')
    read_body(sent, 100)
    assert isinstance(sent.environ["wsgi.input"], io.BytesIO)
    assert json_body(sent) == {"email": "a@example.com"}


def test_a_chunked_body_gets_a_length():
    sent = request(b'{"a": 1}', chunked=True)
    read_body(sent, 100)
    assert sent.environ["CONTENT_LENGTH"] == "8"
    assert json_body(sent) == {"a": 1}


def test_too_large_from_content_length_before_reading_and_from_a_chunked_body():
    sent = request(b"x" * 101)
    sent.environ["wsgi.input"] = None     # not a byte is read
    with pytest.raises(TooLarge):
        read_body(sent, 100)
    with pytest.raises(TooLarge):
        read_body(request(b"x" * 101, chunked=True), 100)
    read_body(request(b"x" * 100, chunked=True), 100)


def test_a_body_shorter_than_its_length_or_unreadable_is_a_bad_request():
    short = request(b"x" * 10)
    short.environ["CONTENT_LENGTH"] = "20"
    with pytest.raises(BadRequest):
        read_body(short, 100)

    class Broken:
        def read(self, size):
            raise OSError("reset")
    broken = request(b"x" * 10)
    broken.environ["wsgi.input"] = Broken()
    with pytest.raises(BadRequest):
        read_body(broken, 100)


def test_no_body_reads_nothing():
    sent = request()
    sent.environ["wsgi.input"] = None
    read_body(sent, 100)


def test_rate_limited_routes_declare_their_limit_so_it_is_counted_before_the_body():
    declared = {}
    for name in ("register", "login", "web_login", "verify_resend", "password_forgot"):
        entrypoint, = getattr(GatewayService, name).nameko_entrypoints
        declared[name] = entrypoint.rate
    assert declared == {"register": "register", "login": "login", "web_login": "login",
                        "verify_resend": "account_email", "password_forgot": "account_email"}


@pytest.fixture(scope="module")
def routes():
    rules = [Rule(url, methods=[method], endpoint=name)
             for name, method, url in http_entrypoints(GatewayService)]
    return Map(rules, converters=CONVERTERS).bind("gateway.test")


def test_jobs_archive_is_not_a_job_id(routes):
    assert routes.match("/jobs/archive", "POST") == ("archive", {})
    with pytest.raises(MethodNotAllowed) as refused:
        routes.match("/jobs/archive", "GET")
    assert refused.value.valid_methods == ["POST"]  # not /jobs/<job_id>'s GET and DELETE


@pytest.mark.parametrize("segment", ["0123456789abcdef0123456789abcdef", "not-a-job", "archived", "ARCHIVE"])
def test_any_other_segment_reaches_the_job_routes(routes, segment):
    assert routes.match("/jobs/" + segment, "GET") == ("get_job", {"job_id": segment})
    assert routes.match("/jobs/" + segment, "DELETE") == ("delete_job", {"job_id": segment})


class Unreadable(io.RawIOBase):
    """A body that must not be read."""

    def readinto(self, buffer):
        raise AssertionError("the body was read")


def test_the_cookies_origin_rule_is_applied_before_the_body_is_read():
    from types import SimpleNamespace

    from services.common.settings import Settings
    from services.gateway.caller import COOKIE_NAME
    from services.gateway.entrypoints import HttpEntrypoint
    from services.gateway.exceptions import CsrfRejected

    settings = Settings.__new__(Settings)
    settings.values = SimpleNamespace(PUBLIC_URL="http://mp3.example")
    entrypoint = HttpEntrypoint.__new__(HttpEntrypoint)
    entrypoint.rate, entrypoint.max_body = None, 1024
    entrypoint.container = SimpleNamespace(dependencies=[settings])
    sent = request(b'{"job_ids": []}', Origin="https://evil.example",
                   Cookie="%s=t" % COOKIE_NAME)
    sent.environ["wsgi.input"] = Unreadable()
    with pytest.raises(CsrfRejected):
        entrypoint._before_worker(sent, None)
