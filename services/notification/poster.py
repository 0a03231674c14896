"""One webhook POST (http.client), to addresses checked beforehand (services/notification/targets.py):
the connection goes to those addresses themselves, never through a second name lookup, while the
request and TLS (SNI, certificate check) name the URL's host. Redirects are answers like any other
(http.client follows none); the whole exchange is bounded by `timeout` and at most MAX_RESPONSE
bytes of the answer are read."""
import http.client
import socket
import ssl

import eventlet

MAX_RESPONSE = 64 * 1024
USER_AGENT = "mp3svc-webhooks/1"


class Timeout(Exception):
    """No answer within the timeout."""


def connect(addresses, port, timeout):
    """A socket connected to the first of `addresses` that answers."""
    error = OSError("no address to connect to")
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((str(address), port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except socket.timeout:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target, addresses, timeout):
        super().__init__(target.host, target.port, timeout=timeout)
        self.addresses = addresses

    def connect(self):
        self.sock = connect(self.addresses, self.port, self.timeout)


class PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target, addresses, timeout, context=None):
        super().__init__(target.host, target.port, timeout=timeout,
                         context=context or ssl.create_default_context())
        self.addresses = addresses

    def connect(self):
        sock = connect(self.addresses, self.port, self.timeout)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def post(target, addresses, body, headers, timeout, context=None):
    """POST `body` (bytes) with `headers` to `target` over one of `addresses`; the answer's HTTP
    status. Raises Timeout past `timeout` seconds for the whole exchange, OSError or
    http.client.HTTPException when it fails otherwise."""
    if target.scheme == "https":
        connection = PinnedHTTPS(target, addresses, timeout, context)
    else:
        connection = PinnedHTTP(target, addresses, timeout)
    headers = dict(headers, **{"User-Agent": USER_AGENT, "Connection": "close"})
    try:
        with eventlet.Timeout(timeout, Timeout("no answer within %g s" % timeout)):
            try:
                connection.request("POST", target.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read(MAX_RESPONSE)
                return response.status
            except socket.timeout:
                raise Timeout("no answer within %g s" % timeout) from None
    finally:
        connection.close()
