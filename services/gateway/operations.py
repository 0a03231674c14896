"""Ops over RPC (nameko shell; arguments are checked like HTTP input) and the gateway's sweeps."""
import logging

from nameko.rpc import rpc
from nameko.timer import timer

from services.auth.exceptions import InvalidInput, UnknownUser
from services.auth.schemas import lookup_email
from services.common import constants as c
from services.gateway import schemas
from services.gateway.intake import video_uploaded

log = logging.getLogger(__name__)
MAX_LIST = 1000


class Operations:
    """Mixin of GatewayService: uses its `store`, `auth`, `settings`, `dispatch` and `_job_json`."""

    @rpc
    def list_jobs(self, email, limit=100):
        """A user's jobs, newest first (at most `limit`, 1..1000)."""
        email = lookup_email(email)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidInput("limit must be a whole number from 1 to %d." % MAX_LIST)
        return [self._job_json(job) for job in self.store.jobs.for_owner(email, limit)]

    @rpc
    def requeue_job(self, job_id):
        """Put a failed job back in the queue; returns the job, or None when it is not failed."""
        if not schemas.is_job_id(job_id):
            raise InvalidInput("A job id is 32 hexadecimal characters, as a string.")
        job = self.store.jobs.requeue(job_id)
        if job is None:
            return None
        self.dispatch(c.VIDEO_UPLOADED, video_uploaded(job))  # a failure is the operator's to see
        return self._job_json(job)

    @rpc
    def delete_user(self, email):
        """The user's account with every job, video, MP3 and webhook of theirs. The account is
        disabled first (no new upload starts), then the webhooks (no job of a later account of the
        same address is told to them) and files go, then the account."""
        email = lookup_email(email)
        try:
            self.auth.disable_user(email)
        except UnknownUser:
            pass  # the account is gone already: remove what is left of theirs
        webhooks = self.notification.delete_webhooks_of(email)
        removed = self.store.jobs.delete_owner(email)
        account = self.auth.delete_user(email)
        return dict(removed, email=email, webhooks=webhooks, user_deleted=account["deleted"])

    @rpc
    def summary(self):
        """Jobs by status, files and bytes stored, users (from auth)."""
        return dict(self.store.jobs.summary(), users=self.auth.summary())

    @timer(interval=10)
    def sweep_uploads(self):
        """Remove uploads abandoned mid-stream by a gateway that crashed (UPLOAD_TIMEOUT)."""
        try:
            swept = self.store.uploads.sweep(older_than=self.settings.UPLOAD_TIMEOUT)
            if swept:
                log.info("removed %d abandoned upload(s)", swept)
        except Exception:
            log.exception("upload sweep failed")

    @timer(interval=10)
    def sweep_expired(self):
        """Delete finished jobs, their MP3s and videos RETENTION_HOURS after they finished."""
        try:
            expired = self.store.jobs.expire(self.settings.RETENTION_HOURS)
            if expired:
                log.info("deleted %d expired job(s)", expired)
        except Exception:
            log.exception("retention sweep failed")
