"""The bench's HTTP client of the gateway (standard library only): streamed uploads and downloads,
never holding a file in memory, and polling a job until it finishes."""
import base64
import datetime
import http.client
import json
import os
import secrets
import time
import urllib.parse

from services.common import constants as c

BLOCK = 1 << 20


class Api:
    def __init__(self, host, port, timeout=600):
        self.host, self.port, self.timeout = host, port, timeout
        self.token = None

    def _connection(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _headers(self, extra=None):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def call(self, method, path, body=None, headers=None):
        """(status, decoded JSON body or its first 200 bytes, headers)."""
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=self._headers(headers))
            response = connection.getresponse()
            return response.status, decode(response.read()), dict(response.getheaders())
        finally:
            connection.close()

    def json(self, method, path, obj):
        return self.call(method, path, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def sign_up(self):
        """Register a fresh user and log in as them."""
        email = f"bench-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(12)
        status, body, _ = self.json("POST", "/register", {"email": email, "password": password})
        if status != 202:
            raise RuntimeError(f"register: {status} {body}")
        basic = base64.b64encode(f"{email}:{password}".encode()).decode()
        status, body, _ = self.call("POST", "/login",
                                    headers={"Authorization": f"Basic {basic}", "Content-Length": "0"})
        if status != 200:
            raise RuntimeError(f"login: {status} {body}")
        self.token = body["token"]

    def upload(self, path, filename=None, fields=None):
        """Streamed multipart/form-data upload (field `file`, after the conversion options in
        `fields`): (status, body, seconds)."""
        filename = filename or os.path.basename(path)
        boundary = "----bench" + secrets.token_hex(12)
        head = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                       f"{value}\r\n" for name, value in (fields or {}).items()).encode()
        head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                 f"filename=\"{filename}\"\r\nContent-Type: video/mp4\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = len(head) + os.path.getsize(path) + len(tail)

        def body():
            yield head
            with open(path, "rb") as handle:
                yield from iter(lambda: handle.read(BLOCK), b"")
            yield tail

        connection = self._connection()
        try:
            started = time.monotonic()
            connection.request("POST", "/upload", body=body(), headers=self._headers({
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(length)}))
            response = connection.getresponse()
            data = response.read()
            elapsed = time.monotonic() - started
        finally:
            connection.close()
        return response.status, decode(data), elapsed

    def download(self, fid, dest):
        """GET /download into `dest`: (status, headers, bytes, seconds)."""
        connection = self._connection()
        received = 0
        try:
            started = time.monotonic()
            connection.request("GET", "/download?" + urllib.parse.urlencode({"fid": fid}),
                               headers=self._headers())
            response = connection.getresponse()
            with open(dest, "wb") as out:
                for block in iter(lambda: response.read(BLOCK), b""):
                    received += len(block)
                    out.write(block)
            elapsed = time.monotonic() - started
        finally:
            connection.close()
        return response.status, dict(response.getheaders()), received, elapsed

    def poll_job(self, job_id, deadline, interval=0.5, converting_interval=None):
        """Poll GET /jobs/<id> until it is finished: (job, monotonic time each status was first
        seen, the record's updated_at then, in epoch seconds). `converting_interval`: the interval
        once the job was seen converting (when its end is dated by the record's clock, polling
        slower leaves the machine to the conversion being measured)."""
        def read():
            status, job, _ = self.call("GET", f"/jobs/{job_id}")
            if status != 200:
                raise RuntimeError(f"GET /jobs/{job_id}: {status} {job}")
            return job
        return watch_job(read, job_id, deadline, interval, converting_interval)


def watch_job(read, job_id, deadline, interval=0.5, converting_interval=None):
    """`read()` (a job as a dict: its status and updated_at) until it is finished: (job, monotonic
    time each status was first seen, the job's updated_at then, in epoch seconds); as
    Api.poll_job."""
    seen, server, last = {}, {}, None
    while time.monotonic() < deadline:
        job = read()
        now = time.monotonic()
        if job.get("status") not in seen:
            seen[job.get("status")] = now
            server[job.get("status")] = parse_ts(job.get("updated_at"))
        last = job
        if job.get("status") in c.FINISHED_STATES:
            return job, seen, server
        time.sleep(converting_interval if converting_interval and c.CONVERTING in seen
                   else interval)
    raise RuntimeError(f"job {job_id} not finished before the deadline; last: {last}")


def decode(data):
    try:
        return json.loads(data) if data else None
    except ValueError:
        return data[:200]


def parse_ts(value):
    """Job timestamps: ISO 8601 strings or epoch numbers -> epoch seconds (or None)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value / 1000 if value > 1e11 else value)
    try:
        parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()
