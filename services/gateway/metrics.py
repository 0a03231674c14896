"""The gateway's Prometheus metrics (served by services.common.metrics.MetricsServer).

HTTP requests are counted by the HTTP entrypoint (entrypoints.py) under their route templates
(`/jobs/<job_id>`, never a raw path); the store's state (jobs by status, bytes stored) is read from
MongoDB when scraped, so any replica answers for the whole system.
"""
import logging
import re
import time

import eventlet
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from pymongo.errors import PyMongoError

from services.common import constants as c
from services.common.jobs import as_datetime
from services.common.logs import bind
from services.common.utils import utcnow
from services.gateway.settings import GatewaySettings
from services.storage.dependencies import MongoStore

log = logging.getLogger(__name__)

UNMATCHED = "(unmatched)"   # route label of a request no route matched (404, 405)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

HTTP_REQUESTS = Counter("mp3svc_http_requests", "HTTP requests by route template, method and status.",
                        ["route", "method", "status"])
HTTP_SECONDS = Histogram(
    "mp3svc_http_request_seconds", "Time from a request's arrival to its response's headers, by "
    "route template.", ["route", "method"],
    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))
UPLOAD_BYTES = Counter("mp3svc_upload_bytes", "Bytes of videos received in uploads that were queued.")


def route_template(url):
    """A route's URL rule as a label: `/jobs/<string:job_id>` -> `/jobs/<job_id>`."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"<\1>", url)


def observe_request(route, method, status, seconds=None):
    method = method if method in METHODS else "other"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    if seconds is not None:
        HTTP_SECONDS.labels(route, method).observe(seconds)


def closed(job):
    """The last byte of a job queued while its upload streamed (its bytes counted now)."""
    UPLOAD_BYTES.inc(job.size or 0)
    log.info("job %s: upload complete, %d bytes", job.id, job.size or 0)


def queued(job):
    """A job whose upload ended and that is handed to the converters: counted, logged, and named
    on the rest of the worker's log lines."""
    UPLOAD_BYTES.inc(job.size or 0)
    bind(job_id=job.id)
    log.info("job %s: queued, %d bytes", job.id, job.size or 0)


class StoreCollector:
    """mp3svc_jobs{status}, mp3svc_jobs_oldest_queued_seconds, mp3svc_store_bytes and
    mp3svc_store_limit_bytes from MongoDB, cached `ttl` seconds so that scrapes (several Prometheus
    servers, dashboards) never multiply the queries; mp3svc_store_up 0 when MongoDB does not answer."""

    STATES = (c.UPLOADING, c.QUEUED, c.CONVERTING, c.DONE, c.FAILED)

    def __init__(self, db, limit, ttl=10):
        self.db = db
        self.limit = limit
        self.ttl = ttl
        self.lock = eventlet.semaphore.Semaphore()
        self.values = None
        self.read_at = None

    def ensure_indexes(self):
        pass   # reads only (the gateway's job store indexes `status`)

    def read(self):
        jobs = self.db[c.JOBS_COLLECTION]
        counts = {status: jobs.count_documents({"status": status}) for status in self.STATES}
        oldest = jobs.find_one({"status": c.QUEUED}, projection={"created_at": 1},
                               sort=[("created_at", 1)])
        age = 0.0
        if oldest is not None and oldest.get("created_at") is not None:
            age = max(0.0, (utcnow() - as_datetime(oldest["created_at"])).total_seconds())
        stored = sum(doc.get("length") or 0 for bucket in (c.VIDEOS_BUCKET, c.MP3S_BUCKET)
                     for doc in self.db[bucket + ".files"].find({}, projection={"length": 1}))
        return {"jobs": counts, "oldest": age, "stored": stored}

    def current(self):
        with self.lock:
            if self.read_at is None or time.monotonic() - self.read_at > self.ttl:
                try:
                    self.values = self.read()
                except PyMongoError as exc:
                    log.warning("metrics: MongoDB did not answer: %s", exc)
                    self.values = None
                self.read_at = time.monotonic()
            return self.values

    def describe(self):
        return self.families(None)

    def collect(self):
        return self.families(self.current())

    def families(self, values):
        up = GaugeMetricFamily("mp3svc_store_up", "1 when the job store answered the last read.")
        jobs = GaugeMetricFamily("mp3svc_jobs", "Jobs in the store by status.", labels=["status"])
        oldest = GaugeMetricFamily("mp3svc_jobs_oldest_queued_seconds",
                                   "Age of the oldest queued job, 0 when none waits.")
        stored = GaugeMetricFamily("mp3svc_store_bytes", "Bytes of videos and MP3s stored.")
        limit = GaugeMetricFamily("mp3svc_store_limit_bytes",
                                  "STORAGE_LIMIT_BYTES, the bytes the store may hold (0: no limit).")
        limit.add_metric([], self.limit or 0)
        if values is not None:
            for status, count in values["jobs"].items():
                jobs.add_metric([status], count)
            oldest.add_metric([], values["oldest"])
            stored.add_metric([], values["stored"])
        up.add_metric([], 1 if values is not None else 0)
        return [up, jobs, oldest, stored, limit]


class StoreMetrics(MongoStore):
    """Registers the StoreCollector with the process's registry while the service runs."""

    settings_class = GatewaySettings

    def build(self, db, settings):
        return StoreCollector(db, getattr(settings, "STORAGE_LIMIT_BYTES", None))

    def start(self):
        super().start()
        REGISTRY.register(self.store)

    def stop(self):
        if self.store is not None:
            try:
                REGISTRY.unregister(self.store)
            except KeyError:
                pass
            self.store = None
        super().stop()

    kill = stop

    def get_dependency(self, worker_ctx):
        return None
