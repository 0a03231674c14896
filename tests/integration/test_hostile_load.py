"""Slow, silent, huge and flooding clients against the gateway running as a real `nameko run`
process (with auth), over real sockets: nobody else waits, memory stays flat, floods get 429.

The converter and notification services are not started: nothing here needs a conversion."""
import json
import re
import socket
import time

import eventlet
import pymongo
import pytest
import requests

from tests.conftest import JWT_SECRET
from tests.helpers import wait_until
from tests.integration.processes import ProcessStack

# alone (scripts/test.sh's serial pass): hundreds of trickling connections load the machine, and the
# latencies bounded here would include another pytest-xdist worker's load
pytestmark = pytest.mark.serial

CLIENT_TIMEOUT = 3
BOUNDARY = "XyZ"
FILE_HEAD = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
             'Content-Type: video/mp4\r\n\r\n' % BOUNDARY).encode()


def start_gateway(tmp_path, rabbit_config, mongo_uri, mongo_db, **env):
    settings = {"AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri, "MONGO_DB": mongo_db,
                "JWT_SECRET": JWT_SECRET, "CLIENT_TIMEOUT": CLIENT_TIMEOUT, "AUTH_RPC_TIMEOUT": 20,
                "MAX_UPLOAD_BYTES": 1024 * 1024 * 1024,
                # one user holds every connection here; the per-user caps are test_quotas' subject
                "USER_MAX_ACTIVE_JOBS": 1000, "USER_QUOTA_BYTES": 1 << 50}
    settings.update(env)
    stack = ProcessStack(tmp_path, settings).start("auth", "gateway")
    try:
        stack.healthy()
    except BaseException:
        stack.stop()
        raise
    stack.host, stack.http_port = "127.0.0.1", stack.port
    return stack


@pytest.fixture
def gateway(tmp_path, rabbit_config, mongo_uri, mongo_db):
    stack = start_gateway(tmp_path, rabbit_config, mongo_uri, mongo_db)
    yield stack
    stack.stop()


def token_for(stack, email="load@example.com", password="correct horse battery"):
    requests.post(stack.base + "/register", json={"email": email, "password": password}, timeout=10)
    response = requests.post(stack.base + "/login", auth=(email, password), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def rss(stack, field="VmRSS"):
    """The gateway process's resident memory in bytes, from /proc."""
    with open("/proc/%d/status" % stack.procs["gateway"].pid) as handle:
        return int(re.search(r"^%s:\s+(\d+) kB" % field, handle.read(), re.M).group(1)) * 1024


def connect(stack):
    return socket.create_connection((stack.host, stack.http_port), timeout=30)


def upload_head(stack, token, length):
    return ("POST /upload HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
            % (stack.host, token, BOUNDARY, length)).encode()


def read_response(sock, timeout):
    """(status, JSON body) of the first response on `sock`, within `timeout` seconds."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed without a response: %r" % data)
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), head.decode("latin-1"), json.loads(body[:length])


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def send_and_answer(stack, head, body_blocks, deadline=10):
    """Send a request whose body comes from `body_blocks` in a green thread, read the answer in
    this one: (status, error code, seconds to the answer, peak RSS growth)."""
    baseline = rss(stack)
    peak = [baseline]
    sock = connect(stack)

    def sender():
        try:
            sock.sendall(head)
            for block in body_blocks:
                sock.sendall(block)
        except OSError:  # the gateway answered and closed; what is left is not wanted
            pass

    def sampler():
        while True:
            peak[0] = max(peak[0], rss(stack))
            eventlet.sleep(0.05)

    threads = [eventlet.spawn(sender), eventlet.spawn(sampler)]
    try:
        (status, _, body), seconds = timed(lambda: read_response(sock, deadline))
        peak[0] = max(peak[0], rss(stack))
    finally:
        for thread in threads:
            thread.kill()
        sock.close()
    return status, body.get("error"), seconds, peak[0] - baseline


# --- slow and silent clients -----------------------------------------------------------------------
def test_trickling_uploads_do_not_starve_anyone(gateway, media):
    token = token_for(gateway)
    video = media.video("n.mp4", duration=1.0)
    client = pymongo.MongoClient(gateway.env["MONGO_URI"], serverSelectionTimeoutMS=3000)
    jobs = client[gateway.env["MONGO_DB"]].jobs
    trickles = []

    def trickle():  # a byte every 0.5 s per connection: slow, never silent past CLIENT_TIMEOUT
        while True:
            eventlet.sleep(0.5)
            for sock in list(trickles):
                sock.send(b"x")

    feeder = eventlet.spawn(trickle)
    try:
        for batch in range(4):  # in batches: 200 token checks at once would test auth, not us
            for _ in range(50):
                sock = connect(gateway)
                # past the first read block, so the file part has begun (its job record exists)
                sock.sendall(upload_head(gateway, token, 50 * 1024 * 1024) + FILE_HEAD + b"v" * 70000)
                trickles.append(sock)
            wait_until(lambda: jobs.count_documents({"status": "uploading"}) == len(trickles), 60,
                       interval=0.5, message="%d uploads streaming" % len(trickles))

        for name, call in [
                ("livez", lambda: requests.get(gateway.base + "/livez", timeout=10)),
                ("healthz", lambda: requests.get(gateway.base + "/healthz", timeout=10)),
                ("login", lambda: requests.post(gateway.base + "/login", timeout=10,
                                                auth=("load@example.com", "correct horse battery"))),
                ("upload", lambda: requests.post(
                    gateway.base + "/upload", timeout=10, headers={"Authorization": "Bearer " + token},
                    files={"file": ("clip.mp4", open(video, "rb"))}))]:
            response, seconds = timed(call)
            assert response.status_code in (200, 202), (name, response.text)
            assert seconds < 2, "%s took %.1f s" % (name, seconds)
        # the trickling uploads are still connected (slow is not silent)
        for sock in trickles[:10]:
            sock.send(b"x")
    finally:
        feeder.kill()
        client.close()
        for sock in trickles:
            sock.close()


def test_silent_clients_are_disconnected_after_client_timeout(gateway):
    token = token_for(gateway)
    in_headers = connect(gateway)
    in_headers.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\n")
    in_body = connect(gateway)
    in_body.sendall(upload_head(gateway, token, 10 * 1024 * 1024) + FILE_HEAD + b"abc")
    started = time.monotonic()
    for sock in (in_headers, in_body):
        sock.settimeout(CLIENT_TIMEOUT + 10)
        data = b""
        while True:  # the server closes the connection (after an error response, or without one)
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
        sock.close()
    elapsed = time.monotonic() - started
    assert CLIENT_TIMEOUT - 0.5 <= elapsed <= CLIENT_TIMEOUT + 5


def test_at_capacity_busy_with_retry_after_and_livez_still_answers(
        tmp_path, rabbit_config, mongo_uri, mongo_db):
    stack = start_gateway(tmp_path, rabbit_config, mongo_uri, mongo_db, GATEWAY_WORKERS=6)
    trickles = []
    try:
        token = token_for(stack)
        for _ in range(10):
            sock = connect(stack)
            sock.sendall(upload_head(stack, token, 10 * 1024 * 1024) + FILE_HEAD + b"abc")
            trickles.append(sock)

        def busy():
            response = requests.get(stack.base + "/healthz", timeout=5)
            return [response] if response.status_code == 503 else None
        response, = wait_until(busy, 20, interval=0.2, message="503 busy")
        assert response.json()["error"] == "busy"
        assert int(response.headers["Retry-After"]) > 0
        response, seconds = timed(lambda: requests.get(stack.base + "/livez", timeout=5))
        assert response.status_code == 200 and seconds < 2
        # the refused uploads got 503 as well, not a hang
        answered = 0
        for sock in trickles:
            sock.settimeout(0.5)
            try:
                if sock.recv(12).startswith(b"HTTP/1.1 503"):
                    answered += 1
            except socket.timeout:
                pass
        assert answered >= 4
        # connections beyond GATEWAY_WORKERS + 64 get 503 `busy` before their request is read
        idle = [connect(stack) for _ in range(80)]
        trickles.extend(idle)
        refused = 0
        for sock in idle:
            sock.settimeout(0.2)
            try:
                if sock.recv(12).startswith(b"HTTP/1.1 503"):
                    refused += 1
            except socket.timeout:
                pass
        assert refused >= 10
    finally:
        for sock in trickles:
            sock.close()
        stack.stop()


# --- huge bodies ------------------------------------------------------------------------------------
def test_boundary_line_without_newline_refused_with_flat_memory(gateway):
    token = token_for(gateway)
    size = 150 * 1024 * 1024
    prefix = FILE_HEAD + b"some video bytes\n--" + BOUNDARY.encode() + b"!"
    block = b"A" * (1024 * 1024)
    status, code, seconds, growth = send_and_answer(
        gateway, upload_head(gateway, token, len(prefix) + size),
        [prefix] + [block] * (size // len(block)))
    assert 400 <= status < 500, code
    assert seconds < 5
    assert growth < 50 * 1024 * 1024, growth


def test_100000_empty_parts_refused_quickly(gateway):
    token = token_for(gateway)
    part = b'--%s\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n' % BOUNDARY.encode()
    body = part * 100000 + b"--%s--\r\n" % BOUNDARY.encode()
    blocks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    status, code, seconds, growth = send_and_answer(
        gateway, upload_head(gateway, token, len(body)), blocks)
    assert (status, code) == (400, "bad_request")
    assert seconds < 5
    assert growth < 50 * 1024 * 1024, growth


@pytest.fixture
def roomy_register(tmp_path, rabbit_config, mongo_uri, mongo_db):
    """A gateway whose REGISTER_RATE leaves room for many malformed bodies (they count now)."""
    stack = start_gateway(tmp_path, rabbit_config, mongo_uri, mongo_db, REGISTER_RATE="100/hour")
    yield stack
    stack.stop()


def test_register_bodies_bounded(roomy_register):
    gateway = roomy_register
    url = gateway.base + "/register"
    big = json.dumps({"email": "big@example.com", "password": "x" * (4 * 1024 * 1024)})
    cases = [
        ("4 MB", dict(data=big), 413, "too_large"),
        ("4 MB chunked", dict(data=iter([big[i:i + 65536].encode() for i in range(0, len(big), 65536)])),
         413, "too_large"),
        ("nested lists", dict(data="[" * 8000 + "]" * 8000), 400, "bad_request"),
        ("nested objects", dict(data='{"a":' * 2500 + "1" + "}" * 2500), 400, "bad_request"),
        ("not JSON", dict(data=b"\xff\xfe{"), 400, "bad_request"),
        ("a list", dict(data="[1, 2]"), 400, "bad_request"),
    ]
    for name, kwargs, status, code in cases:
        response = requests.post(url, headers={"Content-Type": "application/json"}, timeout=30,
                                 **kwargs)
        assert (response.status_code, response.json()["error"]) == (status, code), name
    # a normal registration still works
    response = requests.post(url, json={"email": "ok@example.com", "password": "correct horse"})
    assert response.status_code == 202, response.text


def test_rate_limit_applies_before_the_body_is_read(gateway):
    """Issue 18: /register and POST /session read their body before the rate limit, so a flood of
    trickled bodies kept connections whatever the rate. Past REGISTER_RATE (5/hour) the answer is
    429 at once, on a real socket that has sent its headers and not one byte of its body."""
    for i in range(5):
        response = requests.post(gateway.base + "/register", timeout=10, json={
            "email": "early%d@example.com" % i, "password": "correct horse"})
        assert response.status_code == 202, response.text
    host, port = gateway.base.split("//", 1)[1].split(":")
    for path in ("/register",):
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: 1000\r\n\r\n" % path).encode())
            started = time.monotonic()
            answer = ""
            while '"rate_limited"' not in answer:   # no body sent: only the limit can answer
                block = sock.recv(4096).decode()
                if not block:
                    break
                answer += block
            assert answer.startswith("HTTP/1.1 429"), answer
            assert '"rate_limited"' in answer
            assert time.monotonic() - started < CLIENT_TIMEOUT


# --- floods ----------------------------------------------------------------------------------------
def test_login_flood_limited_per_address_even_with_forwarded_for(gateway):
    statuses = []
    for i in range(12):  # LOGIN_RATE 10/minute; a different account each time (no account lockout)
        response = requests.post(gateway.base + "/login", auth=("nobody%d@example.com" % i, "wrong-pass"),
                                 headers={"X-Forwarded-For": "203.0.113.%d" % i}, timeout=10)
        statuses.append(response.status_code)
    assert statuses == [401] * 10 + [429] * 2
    assert response.json()["error"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    # the limit is per route: registration has its own budget (REGISTER_RATE 5/hour)
    codes = [requests.post(gateway.base + "/register", timeout=10, json={
        "email": "r%d@example.com" % i, "password": "correct horse"}).status_code for i in range(6)]
    assert codes == [202] * 5 + [429]


def test_forwarded_for_honoured_from_a_trusted_proxy(tmp_path, rabbit_config, mongo_uri, mongo_db):
    stack = start_gateway(tmp_path, rabbit_config, mongo_uri, mongo_db,
                          TRUSTED_PROXIES="127.0.0.0/8, 10.0.0.0/8", LOGIN_RATE="3/minute")
    try:
        def login(i, forwarded):  # a different account each time (no account lockout)
            return requests.post(stack.base + "/login", auth=("nobody%d@example.com" % i, "wrong-pass"),
                                 headers={"X-Forwarded-For": forwarded}, timeout=10).status_code
        # the right-most address that is not a trusted proxy is the client; what it claims is not
        assert [login(i, "198.51.100.%d, 192.0.2.1, 10.1.1.1" % i) for i in range(4)] == [401] * 3 + [429]
        assert [login(i, "192.0.2.%d" % i) for i in range(4, 7)] == [401] * 3
    finally:
        stack.stop()
