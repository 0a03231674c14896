"""converter: turns uploaded videos into MP3s, exactly once per job."""
import logging

from nameko.timer import timer

from services.common import constants as c
from services.common.heartbeat import Heartbeat
from services.common.logs import LogContext
from services.common.messaging import EventDispatcher, Redispatcher, event_handler
from services.common.metrics import MetricsServer
from services.converter import metrics
from services.converter.dependencies import FFmpegEncoder
from services.converter.jobs import Conversion
from services.converter.settings import ConverterSettings
from services.converter.store import ConverterStore

log = logging.getLogger(__name__)


class ConverterService:
    name = c.CONVERTER

    settings = ConverterSettings()
    heartbeat = Heartbeat()
    metrics_server = MetricsServer(ConverterSettings)
    log_context = LogContext()
    jobs = ConverterStore()
    encoder = FFmpegEncoder()
    dispatch = EventDispatcher()
    redispatch = Redispatcher()

    @event_handler(c.GATEWAY, c.VIDEO_UPLOADED)
    def handle_video_uploaded(self, payload):
        # The event is a wake-up: the converter takes the fairest queued job, which need not be
        # this one (services/converter/fairness.py); with nothing to take it just acks.
        # Never raises: nameko would ack and drop the message. Whatever is not settled here is
        # found again by `sweep` from the job record.
        try:
            self._convert()
        except Exception:
            log.exception("woken by job %s: left for the sweeper", payload.get("job_id"))

    @timer(interval=10)
    def sweep(self):
        """Hand due jobs back to the queue: jobs whose converter died, queued jobs whose event never
        led to a conversion, and released jobs whose retry time came. Converts nothing itself.
        Then check the outcomes notification had not taken over yet: done with those it has,
        announce again those whose time came (the converter died before dispatching the event, or
        the event was lost)."""
        try:
            for job in self.jobs.due():
                if self.jobs.take_due(job):
                    log.info("job %s: due again, dispatched to the converters", job.id)
                    self.redispatch(c.GATEWAY, c.VIDEO_UPLOADED,
                                    job.event(video_id=str(job.video_id)))
        except Exception:
            log.exception("sweep failed")
        try:
            for job in self.jobs.unannounced():
                if not job.finished or job.notify_outcome == job.outcome_id:
                    self.jobs.announced(job)
                elif self.jobs.take_unannounced(job):
                    log.info("job %s: outcome %s announced again", job.id, job.outcome_id)
                    self.redispatch(c.CONVERTER, *job.outcome_event())
        except Exception:
            log.exception("announcing sweep failed")

    def _convert(self):
        conversion = Conversion(self.jobs, self.encoder, lease=self.settings.LEASE_SECONDS,
                                max_attempts=self.settings.MAX_ATTEMPTS,
                                quota=self.settings.USER_QUOTA_BYTES,
                                upload_timeout=self.settings.UPLOAD_TIMEOUT)
        outcome, job = conversion.run()
        if outcome is not None:
            metrics.observe(outcome, job, conversion.timings)
            log.info("job %s: %s%s %s", job.id, outcome, ": " + job.error if job.error else "",
                     " ".join("%s=%.2fs" % item for item in conversion.timings.items()))
        if outcome is not None:
            self.dispatch(*job.outcome_event())
