"""The multipart receiver's bounds, on in-memory requests (the sink is a fake)."""
import io
import time

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway.exceptions import BadRequest, NoFile, TooLarge, TooManyFiles
from services.gateway.multipart import MAX_PARTS, Form, MultipartReceiver

B = b"XyZ"


class FakeSink:
    def __init__(self):
        self.size = 0

    def write(self, data):
        self.size += len(data)


def receive(body, max_bytes=10 * 1024 * 1024):
    environ = EnvironBuilder(method="POST", input_stream=io.BytesIO(body), headers={
        "Content-Type": "multipart/form-data; boundary=XyZ", "Content-Length": str(len(body))},
    ).get_environ()
    sink = FakeSink()
    form = MultipartReceiver(max_bytes).receive(Request(environ), sink)
    assert sink.size == form.size
    return form


def part(name, content, filename=None):
    disposition = b'form-data; name="%s"' % name.encode()
    if filename:
        disposition += b'; filename="%s"' % filename.encode()
    return b"--%s\r\nContent-Disposition: %s\r\n\r\n%s\r\n" % (B, disposition, content)


def form(*parts):
    return b"".join(parts) + b"--%s--\r\n" % B


def test_a_normal_form():
    assert receive(form(part("title", b"t"), part("file", b"v" * 300000, "a.mp4"))) == \
        Form("a.mp4", 300000, {"title": "t"})


@pytest.mark.parametrize("name, body, error", [
    # a line that starts like a boundary and never ends: refused after one read block, not kept
    ("no newline", part("file", b"x", "a.mp4")[:-2] + b"\n--XyZ!" + b"A" * (8 * 1024 * 1024),
     BadRequest),
    ("100000 parts", form(*[part("x", b"")] * 100000), BadRequest),
    ("too many parts", form(*[part("x", b"")] * (MAX_PARTS + 1)), BadRequest),
    ("long field", form(part("title", b"t" * 5000), part("file", b"v", "a.mp4")), BadRequest),
    ("long headers", b"--XyZ\r\nContent-Disposition: form-data; name=\"t\"\r\nX-Long: " + b"h" * 20000,
     BadRequest),
    ("two files", form(part("file", b"v", "a.mp4"), part("other", b"v", "b.mp4")), TooManyFiles),
    ("file elsewhere", form(part("video", b"v" * 1000, "a.mp4")), NoFile),
])
def test_bounds(name, body, error):
    started = time.monotonic()
    with pytest.raises(error):
        receive(body, max_bytes=10 * 1024 * 1024)
    assert time.monotonic() - started < 5


def test_a_file_in_another_field_counts_against_the_size_limit():
    with pytest.raises(TooLarge):
        receive(form(part("video", b"v" * 20000, "a.mp4")), max_bytes=15000)
