"""auth's Prometheus metrics (served by services.common.metrics.MetricsServer)."""
import contextlib
import re

from prometheus_client import Counter

from services.auth import exceptions

LOGINS = Counter("mp3svc_logins", "Login attempts by result: ok, or the error auth answered "
                 "(invalid_credentials, too_many_attempts, busy, ...).", ["result"])
for _result in ("ok", "invalid_credentials", "too_many_attempts"):
    LOGINS.labels(_result)


def result_of(exc):
    """`InvalidCredentials` -> "invalid_credentials": auth's own errors by name, anything else
    "error" (a bounded set of label values)."""
    if type(exc).__module__ != exceptions.__name__:
        return "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


@contextlib.contextmanager
def counting_login():
    try:
        yield
    except Exception as exc:
        LOGINS.labels(result_of(exc)).inc()
        raise
    LOGINS.labels("ok").inc()
