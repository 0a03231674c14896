"""The converter's Prometheus metrics (served by services.common.metrics.MetricsServer)."""
from prometheus_client import Counter, Histogram

from services.common import constants as c

JOBS_FINISHED = Counter("mp3svc_jobs_finished", "Jobs this converter settled, by outcome.", ["status"])
CONVERSION_SECONDS = Histogram(
    "mp3svc_conversion_seconds", "Wall time of a successful conversion: from claiming the job to "
    "its MP3 stored, in seconds.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600))
CONVERSION_SPEED = Histogram(
    "mp3svc_conversion_speed", "Media seconds converted per wall-clock second of ffmpeg.",
    buckets=(0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
for _status in c.FINISHED_STATES:
    JOBS_FINISHED.labels(_status)


def observe(outcome, job, timings):
    """One settled job: `outcome` done/failed, `timings` Conversion.timings (seconds)."""
    JOBS_FINISHED.labels(outcome).inc()
    if outcome != c.DONE:
        return
    if "stored" in timings:
        CONVERSION_SECONDS.observe(timings["stored"])
    if job.duration and timings.get("ffmpeg"):
        CONVERSION_SPEED.observe(job.duration / timings["ffmpeg"])
