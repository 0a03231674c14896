"""One webhook POST over real sockets on 127.0.0.1: the connection goes to the checked address while
Host names the URL's host, redirects are not followed, the exchange and the answer are bounded."""
import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.notification import poster
from services.notification.targets import Target

LOOPBACK = [ipaddress.ip_address("127.0.0.1")]


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status=204, headers=(), body=b""):
        self.requests, self.status, self.headers, self.body = [], status, dict(headers), body

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler):
                length = int(handler.headers.get("Content-Length", 0))
                self.requests.append((handler.path, dict(handler.headers), handler.rfile.read(length)))
                handler.send_response(self.status)
                for name, value in self.headers.items():
                    handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(self.body)))
                handler.end_headers()
                handler.wfile.write(self.body)

            def log_message(handler, *args):
                pass
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]


@pytest.fixture
def receiver():
    servers = []

    def make(**kwargs):
        servers.append(Receiver(**kwargs))
        return servers[-1]
    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def test_posts_to_the_checked_address_naming_the_url_s_host(receiver):
    server = receiver(status=200)
    target = Target("http", "hooks.example.org", server.port, "/in?k=v")
    status = poster.post(target, LOOPBACK, b'{"a": 1}', {"Mp3svc-Event": "job.finished"}, 5)
    assert status == 200
    [(path, headers, body)] = server.requests
    assert path == "/in?k=v" and body == b'{"a": 1}'
    assert headers["Host"] == "hooks.example.org:%d" % server.port  # never resolved: 127.0.0.1
    assert headers["Mp3svc-Event"] == "job.finished" and headers["User-Agent"] == poster.USER_AGENT


def test_a_redirect_is_an_answer_not_followed(receiver):
    elsewhere = receiver(status=200)
    server = receiver(status=302, headers={"Location": "http://127.0.0.1:%d/" % elsewhere.port})
    status = poster.post(Target("http", "127.0.0.1", server.port, "/"), LOOPBACK, b"{}", {}, 5)
    assert status == 302 and len(server.requests) == 1 and elsewhere.requests == []


def test_a_huge_answer_is_read_no_further_than_its_first_64_kib(receiver):
    server = receiver(status=200, body=b"x" * (20 * 1024 * 1024))
    started = time.monotonic()
    assert poster.post(Target("http", "127.0.0.1", server.port, "/"), LOOPBACK, b"{}", {}, 5) == 200
    assert time.monotonic() - started < 5


def test_no_answer_within_the_timeout():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        started = time.monotonic()
        with pytest.raises(poster.Timeout):
            poster.post(Target("http", "127.0.0.1", silent.getsockname()[1], "/"), LOOPBACK, b"{}",
                        {}, 0.5)
        assert 0.4 < time.monotonic() - started < 3
    finally:
        silent.close()


def test_a_closed_port_is_a_connection_error():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(OSError):
        poster.post(Target("http", "127.0.0.1", port, "/"), LOOPBACK, b"{}", {}, 2)


def test_https_names_the_url_s_host_in_sni_and_checks_its_certificate(receiver, tmp_path):
    """TLS to the checked address: the certificate must be the URL's host's, as when the name is
    resolved by the library itself."""
    import os
    import ssl
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    subprocess.run([os.path.join(root, "scripts", "make-certs.sh"), str(tmp_path), "hooks.example.org"],
                   check=True, capture_output=True, timeout=120)
    server = receiver(status=202)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(tmp_path / "hooks.example.org.pem", tmp_path / "hooks.example.org.key")
    names = []
    served.sni_callback = lambda sock, name, context: names.append(name)
    server.socket = served.wrap_socket(server.socket, server_side=True)
    trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    target = Target("https", "hooks.example.org", server.port, "/in")
    assert poster.post(target, LOOPBACK, b"{}", {}, 5, context=trusted) == 202
    assert names == ["hooks.example.org"]
    assert server.requests[0][1]["Host"] == "hooks.example.org:%d" % server.port
    with pytest.raises(ssl.SSLCertVerificationError):  # another name at the same address
        poster.post(Target("https", "other.example.org", server.port, "/in"), LOOPBACK, b"{}", {}, 5,
                    context=ssl.create_default_context(cafile=str(tmp_path / "ca.pem")))
