"""GET /healthz is cheap: 300 concurrent callers share the checks (one in flight, the result reused
for about a second) and open no broker connection of their own."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from services.common import constants as c
from tests.conftest import JWT_SECRET
from tests.helpers import wait_until
from tests.integration.broker_users import BrokerUsers
from tests.integration.processes import ProcessStack

CALLERS = 300


@pytest.fixture
def gateway(tmp_path, rabbit_config, mongo_uri, mongo_db):
    users = BrokerUsers(rabbit_config["vhost"]).create()
    env = dict(users.service_env(), MONGO_URI=mongo_uri, MONGO_DB=mongo_db, JWT_SECRET=JWT_SECRET)
    stack = ProcessStack(tmp_path, env).start(c.AUTH, c.GATEWAY)
    stack.users = users
    try:
        stack.healthy(timeout=90)
        yield stack
    finally:
        stack.stop()
        users.remove()


def test_300_concurrent_healthz_open_no_broker_connections(gateway):
    users = gateway.users
    name = users.names[c.GATEWAY]

    def gateway_connections():
        return {conn["name"] for conn in users.api.call("GET", "vhosts", users.vhost, "connections")
                if conn["user"] == name}
    # the gateway's steady connections (consumer, publisher, RPC replies, the health check's one),
    # once the management API lists them all
    before = wait_until(lambda: (lambda seen: seen if len(seen) >= 2 else None)(gateway_connections()),
                        60, interval=0.5, message="the gateway's connections")
    seen, done = set(before), threading.Event()

    def watch():  # every connection the gateway has at any moment of the burst
        while not done.is_set():
            seen.update(gateway_connections())
            done.wait(0.05)
    watcher = threading.Thread(target=watch)
    watcher.start()
    barrier = threading.Barrier(CALLERS)

    def call(_):
        with requests.Session() as http:
            barrier.wait(timeout=60)
            response = http.get(gateway.base + "/healthz", timeout=60)
            return response.status_code, response.json()
    try:
        with ThreadPoolExecutor(CALLERS) as pool:
            results = list(pool.map(call, range(CALLERS)))
    finally:
        done.set()
        watcher.join()
    assert [status for status, _ in results] == [200] * CALLERS
    assert all(body == {"status": "ok"} for _, body in results)
    after = gateway_connections()
    print("gateway connections: before %d, during the burst %d distinct, after %d"
          % (len(before), len(seen), len(after)))
    # at most the one health connection may have appeared since (opened by an earlier check)
    assert len(seen - before) <= 1, seen - before
    assert len(after) <= len(before) + 1
    assert len(seen) <= 6, seen
