"""Prometheus metrics: every service serves its process's registry at <SERVICE>_METRICS_ADDRESS.

Each service declares its own metrics in services/<service>/metrics.py, in prometheus_client's
default registry, which also holds the library's process and Python collectors (`process_*`,
`python_gc_*`, `python_info`). `MetricsServer` serves that registry at `/metrics` from an
eventlet.wsgi server of its own (green, like nameko's web server; the RPC-only services have no
HTTP of their own, and the gateway's public port never shows it), and counts every entrypoint call:

    mp3svc_entrypoint_calls_total{service, entrypoint, outcome="ok"|"error"}
    mp3svc_entrypoint_seconds{service, entrypoint}   (histogram)

nameko-prometheus (1.6.0) does the latter too, but declares its metrics in the global registry in
every container's setup(), so a second container in one process (the in-process tests start one per
test) fails with "Duplicated timeseries"; it also serves through an @http entrypoint, which the
RPC-only services lack and which the gateway would put on its public port. These ~20 lines do
what we need from it.
"""
import logging
import time
from weakref import WeakKeyDictionary

import eventlet
from eventlet import wsgi
from nameko.extensions import DependencyProvider
from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics, make_wsgi_app

from services.common.settings import ConfigurationError

log = logging.getLogger(__name__)
disable_created_metrics()   # no `*_created` series beside every counter and histogram

ENTRYPOINT_CALLS = Counter(
    "mp3svc_entrypoint_calls", "Entrypoint calls (RPC, event handlers, timers, HTTP) by outcome.",
    ["service", "entrypoint", "outcome"])
ENTRYPOINT_SECONDS = Histogram(
    "mp3svc_entrypoint_seconds", "Time an entrypoint's worker ran, in seconds.",
    ["service", "entrypoint"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60,
                                        300, 1800))
SCRAPE_TIMEOUT = 10   # seconds a scraper may take to send its request


def metrics_setting(service):
    """The config key (and environment variable) of a service's metrics address."""
    return "%s_METRICS_ADDRESS" % service.upper()


class MetricsServer(DependencyProvider):
    """Serves /metrics on the service's own metrics address; the workers get nothing from it (the
    services' metrics are module-level objects of services/<service>/metrics.py)."""

    def __init__(self, settings):
        self.settings = settings   # the service's Settings class, declaring <SERVICE>_METRICS_ADDRESS
        self.started = WeakKeyDictionary()
        self.sock = self.thread = None

    def setup(self):
        self.key = metrics_setting(self.container.service_name)
        self.address = getattr(self.settings.of(self.container), self.key)

    def start(self):
        try:
            # no SO_REUSEPORT (eventlet's default): a second process on the port must fail
            self.sock = eventlet.listen(self.address, reuse_port=False)
        except OSError as exc:
            raise ConfigurationError("%s=%s:%d: cannot listen there (%s)."
                                     % (self.key, self.address[0], self.address[1], exc)) from None
        # no keep-alive: stop() then only waits for a scrape in flight, never for an idle scraper
        self.thread = eventlet.spawn(
            wsgi.server, self.sock, make_wsgi_app(REGISTRY), log=log, log_output=False,
            keepalive=False, socket_timeout=SCRAPE_TIMEOUT)

    @property
    def port(self):
        return self.sock.getsockname()[1]

    def stop(self):
        if self.thread is not None:
            self.thread.kill()
            self.thread = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    kill = stop

    def worker_setup(self, worker_ctx):
        self.started[worker_ctx] = time.monotonic()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started.pop(worker_ctx, None)
        service, method = self.container.service_name, worker_ctx.entrypoint.method_name
        ENTRYPOINT_CALLS.labels(service, method, "error" if exc_info else "ok").inc()
        if started is not None:
            ENTRYPOINT_SECONDS.labels(service, method).observe(time.monotonic() - started)
