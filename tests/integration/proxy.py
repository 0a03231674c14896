"""A real TCP proxy in front of the gateway that counts the bytes clients send, can cut a connection
after a given number of them (a link dropping mid-request), and can cap the rate (a slow link)."""
import socket
import threading
import time

import pytest


class TcpProxy:
    def __init__(self, target_port, rate=None):
        self.target = ("127.0.0.1", target_port)
        self.rate = rate            # bytes per second towards the server, None for no cap
        self.sent = 0               # bytes clients sent towards the server, over all connections
        self.cuts = 0
        self._cut_at = None
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, nbytes):
        """Drop the connection carrying the byte `nbytes` from now (towards the server)."""
        with self._lock:
            self._cut_at = self.sent + nbytes

    def close(self):
        """Stop accepting (connections already open run to their end)."""
        if not self._closed:
            self._closed = True
            socket.create_connection(("127.0.0.1", self.port)).close()  # wakes the accept loop

    def _accept(self):
        while True:
            client, _ = self._listener.accept()
            if self._closed:
                client.close()
                self._listener.close()
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            pair = [client, upstream, 2]  # the sockets, and the pumps still running on them
            threading.Thread(target=self._pump, args=(client, upstream, pair, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, pair, False), daemon=True).start()

    def _pump(self, src, dst, pair, to_server):
        try:
            while True:
                data = src.recv(64 * 1024)
                if not data:
                    break
                if to_server:
                    with self._lock:
                        cut = self._cut_at is not None and self.sent + len(data) >= self._cut_at
                        if cut:
                            data = data[:self._cut_at - self.sent]
                            self._cut_at = None
                            self.cuts += 1
                        self.sent += len(data)
                    dst.sendall(data)
                    if cut:
                        break
                    if self.rate:
                        time.sleep(len(data) / self.rate)  # the link's speed, not synchronisation
                else:
                    dst.sendall(data)
        except (OSError, EOFError):  # (eventlet raises EOFError on a socket the other pump closed)
            pass
        finally:
            # shutdown wakes the other pump with EOF; the last pump out closes the sockets (closing a
            # socket another green thread reads confuses eventlet's hub when the fd is reused)
            for sock in pair[:2]:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                pair[2] -= 1
                last = pair[2] == 0
            if last:
                for sock in pair[:2]:
                    sock.close()


@pytest.fixture(name="proxy_to")
def proxy_fixture(stack):
    """proxy_to(rate=None): a TcpProxy in front of the stack's gateway, closed after the test."""
    proxies = []

    def make(rate=None):
        proxies.append(TcpProxy(int(stack.config["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1]), rate))
        return proxies[-1]
    yield make
    for proxy in proxies:
        proxy.close()
