"""Real HTTP receivers for webhook deliveries, on 127.0.0.1 (never anything beyond this machine):
each answers from a script of statuses (the last repeats), records what arrived and when, and
`hang` answers nothing at all until the receiver is closed."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = "hang"


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *script, headers=None):
        self.script = list(script) or [204]
        self.headers = dict(headers or {})
        self.arrived = []      # (monotonic seconds, wall seconds, path, headers, raw body)
        self.closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.arrived.append((time.monotonic(), time.time(), self.path,
                                         dict(self.headers), body))
                index = min(len(receiver.arrived), len(receiver.script)) - 1
                status = receiver.script[index]
                if status == HANG:
                    receiver.closing.wait(120)
                    return
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.server_address[1]

    def close(self):
        self.closing.set()
        self.shutdown()
        self.server_close()
