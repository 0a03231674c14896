"""The system under test, started through devtools.stack from a clean environment: nx-27017 (or
--mongo-uri), a fresh vhost on the local RabbitMQ (or --amqp-uri), the dev mail sink and the four
services, everything CPU-heavy under `nice -n 19` unless --no-nice."""
import base64
import contextlib
import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request

from bench import log
from devtools.stack import (LOCAL, SERVICES, Stack, clean_env, consumer_queue, free_metrics_env, free_port,
                            wait_until)
from services.common import constants as c
from services.common.settings import MongoSettings

MONGO_URI = MongoSettings.MONGO_URI.variable

CONVERTER_QUEUE = consumer_queue(c.GATEWAY, c.VIDEO_UPLOADED)
CONVERTER_GRACE = 15


class BenchStack(Stack):
    def __init__(self, args, workdir):
        super().__init__(workdir, clean_env(TMPDIR=workdir, PYTHONUNBUFFERED=1), nice=not args.no_nice)
        self.args = args
        self.workdir = workdir
        self.vhost = None
        self.converters = []
        self.gateway_port = free_port()
        self.base = f"http://{LOCAL}:{self.gateway_port}"

    def management(self, method, path, body=None):
        """A call to the RabbitMQ management API at --rabbit-mgmt."""
        parts = urllib.parse.urlsplit(self.args.rabbit_mgmt.rstrip("/") + path)
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        request = urllib.request.Request(
            urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
            method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"})
        credentials = f"{parts.username or 'guest'}:{parts.password or 'guest'}"
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
            return json.loads(data) if data else None

    def start_backing(self):
        if self.args.mongo_uri:
            self.env[MONGO_URI] = self.args.mongo_uri
        else:
            self.start_mongo(os.path.join(self.workdir, "mongo"), binary=self.args.nx)
        self.env["AMQP_URI"] = self.args.amqp_uri or self._fresh_vhost()
        smtp_port = self.start_mail_sink(os.path.join(self.workdir, "mail"))
        self.env.update({
            "MONGO_DB": self.args.mongo_db,
            "AUTH_DB_URI": f"sqlite:///{os.path.join(self.workdir, 'auth.db')}",
            "SMTP_STARTTLS": "false", "MAIL_FROM": "bench@example.com",
            "GATEWAY_ADDRESS": f"{LOCAL}:{self.gateway_port}", "PUBLIC_URL": self.base,
            "JWT_SECRET": secrets.token_urlsafe(48), "ALLOW_REGISTRATION": "true",
            "HEARTBEAT_DIR": self.workdir, **free_metrics_env(),
            # the bench measures conversions: its users log in at once and upload without a budget,
            # and its one user uploads its whole throughput batch at once (this stack's cap, not
            # raised for anybody else)
            "EMAIL_VERIFICATION": "false", "UPLOAD_RATE": "1000000/hour",
            "USER_MAX_ACTIVE_JOBS": str(max(self.args.batch, 4))})
        log(f"backing services: MONGO_URI={self.env[MONGO_URI]} AMQP vhost={self.vhost or '/'} "
            f"smtp={smtp_port}")

    def _fresh_vhost(self):
        """A vhost of this run, so queues of other runs and tests do not interfere."""
        self.vhost = "bench-" + secrets.token_hex(4)
        try:
            self.management("PUT", f"/api/vhosts/{self.vhost}", {})
            self.management("PUT", f"/api/permissions/{self.vhost}/guest",
                            {"configure": ".*", "write": ".*", "read": ".*"})
            return f"pyamqp://guest:guest@{LOCAL}:5672/{self.vhost}"
        except (urllib.error.URLError, OSError) as exc:
            log(f"RabbitMQ management API unavailable ({exc}); using the default vhost")
            self.vhost = None
            return f"pyamqp://guest:guest@{LOCAL}:5672/"

    def start_all(self, converters=1, workers=2):
        for service in SERVICES:
            if service == c.CONVERTER:
                self.start_converters(converters, workers)
            else:
                self.start_service(service)
        self.wait_healthy(self.base, 120)

    def start_converters(self, count, workers):
        if self.converters:
            self.stop(*self.converters, grace=CONVERTER_GRACE)
        self.converters = [c.CONVERTER if index == 0 else f"{c.CONVERTER}-{index + 1}"
                           for index in range(count)]
        for name in self.converters:
            self.start_service(c.CONVERTER, name, CONVERTER_WORKERS=workers)

    def pids(self, *names):
        return [pid for pid in map(self.pid, names) if pid is not None]

    def queue_consumers(self, queue):
        """Consumers of a queue of this run's vhost, or None when the management API cannot tell."""
        if not self.vhost:
            return None
        try:
            found = self.management("GET", f"/api/queues/{self.vhost}/{urllib.parse.quote(queue, safe='')}")
            return found.get("consumers")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_consumers(self, queue, count, timeout=90):
        """Until `count` processes consume `queue` (10 s when the management API cannot tell)."""
        if self.queue_consumers(queue) is None:
            time.sleep(10)
            return

        def enough():
            self.check_running()
            return (self.queue_consumers(queue) or 0) >= count
        wait_until(enough, timeout, interval=0.2, message=f"{count} consumers of {queue}")

    def stop_all(self):
        super().stop_all()
        if self.vhost:
            with contextlib.suppress(Exception):
                self.management("DELETE", f"/api/vhosts/{self.vhost}")
