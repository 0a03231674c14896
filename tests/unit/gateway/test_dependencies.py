"""HealthCache: one readiness check in flight, its result shared by every caller for HEALTH_TTL."""
from unittest import mock

import eventlet

from services.gateway import dependencies
from services.gateway.dependencies import HealthCache


def cache():
    health = HealthCache()
    health.setup()
    return health


def test_concurrent_callers_share_one_check():
    health, calls = cache(), []

    def check():
        calls.append(1)
        eventlet.sleep(0.2)  # a slow check: everybody else arrives meanwhile
        return {"status": "ok"}, 200
    results = list(eventlet.GreenPool(300).imap(lambda _: health.get(check), range(300)))
    assert results == [({"status": "ok"}, 200)] * 300
    assert len(calls) == 1


def test_the_result_expires_after_the_ttl():
    health, clock = cache(), [100.0]
    answers = iter([("first", 503), ("second", 200)])
    with mock.patch.object(dependencies.time, "monotonic", lambda: clock[0]):
        assert health.get(lambda: next(answers)) == ("first", 503)
        clock[0] += dependencies.HEALTH_TTL / 2
        assert health.get(lambda: next(answers)) == ("first", 503)
        clock[0] += dependencies.HEALTH_TTL
        assert health.get(lambda: next(answers)) == ("second", 200)


def test_a_failing_check_is_not_cached_as_a_result():
    health = cache()

    def broken():
        raise RuntimeError("boom")
    try:
        health.get(broken)
    except RuntimeError:
        pass
    assert health.get(lambda: ("ok", 200)) == ("ok", 200)
