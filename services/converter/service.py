"""converter: turns uploaded videos into MP3s, exactly once per job."""
import logging

from nameko.dependency_providers import Config
from nameko.timer import timer

from services.common import constants as c
from services.common.messaging import EventDispatcher, event_handler
from services.common.heartbeat import Heartbeat
from services.converter.dependencies import FFmpegEncoder
from services.converter.jobs import Conversion
from services.storage.dependencies import GridFSStorage

log = logging.getLogger(__name__)


class ConverterService:
    name = c.CONVERTER

    config = Config()
    heartbeat = Heartbeat()
    storage = GridFSStorage()
    encoder = FFmpegEncoder()
    dispatch = EventDispatcher()

    @event_handler(c.GATEWAY, c.VIDEO_UPLOADED)
    def handle_video_uploaded(self, payload):
        # Never raises: nameko would ack and drop the message. Whatever is not settled here is
        # picked up by `sweep` from the job record.
        try:
            self._convert(payload["job_id"])
        except Exception:
            log.exception("job %s: left for the sweeper", payload.get("job_id"))

    @timer(interval=10)
    def sweep(self):
        """Take over jobs whose converter died, and queued jobs whose message never came."""
        try:
            self.storage.sweep_uploads(
                older_than=int(self.config.get(c.CFG_UPLOAD_TIMEOUT) or 6 * 3600))
            lease = int(self.config.get(c.CFG_LEASE_SECONDS) or 30)
            for job in self.storage.due_jobs(queued_grace=max(60, 4 * lease), limit=1):
                log.info("job %s: taken over by the sweeper", job["_id"])
                self._convert(job["_id"])
        except Exception:
            log.exception("sweep failed")

    def _convert(self, job_id):
        conversion = Conversion(
            self.storage, self.encoder,
            lease=int(self.config.get(c.CFG_LEASE_SECONDS) or 30),
            max_attempts=int(self.config.get(c.CFG_MAX_ATTEMPTS) or 5))
        outcome, job = conversion.run(job_id)
        if outcome is not None:
            log.info("job %s: %s%s %s", job_id, outcome,
                     ": " + job["error"] if job.get("error") else "",
                     " ".join("%s=%.2fs" % item for item in conversion.timings.items()))
        if outcome == c.DONE:
            self.dispatch(c.MP3_READY, {"job_id": job["_id"], "mp3_id": str(job["mp3_id"]),
                                        "owner": job["owner"], "filename": job["filename"]})
        elif outcome == c.FAILED:
            self.dispatch(c.CONVERSION_FAILED, {"job_id": job["_id"], "owner": job["owner"],
                                                "filename": job["filename"], "error": job["error"]})
