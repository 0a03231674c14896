"""routes/health.py on a worker (nameko's worker_factory)."""
import json

from tests.unit.gateway.worker import gateway, request


def body(response):
    return json.loads(response.get_data())


def test_healthz_names_every_failing_part():
    worker = gateway()
    assert (worker.healthz(request()).status_code, body(worker.healthz(request()))) == (200, {"status": "ok"})
    worker.store.ping.side_effect = OSError("refused")
    worker.auth.ping.side_effect = RuntimeError()
    response = worker.healthz(request())
    assert response.status_code == 503
    assert body(response)["failing"] == ["auth", "mongodb"]
