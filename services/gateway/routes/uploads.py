"""POST /upload: a video as multipart/form-data, streamed into storage and queued for conversion."""
from pymongo.errors import PyMongoError

from services.common import constants as c
from services.gateway import schemas
from services.gateway.entrypoints import http, json_response
from services.gateway.exceptions import BrokerUnavailable, UploadExpired
from services.gateway.uploads import UploadReceiver


class UploadRoutes:
    """Mixin of GatewayService: uses its `jobs` store, `settings`, `limits`, `_user` and
    `_dispatch_job`."""

    @http("POST", "/upload", max_body=None)  # bounded while streaming (uploads.py)
    def upload(self, request):
        owner = self._user(request)
        self.limits.hit("upload", request, key=owner)  # UPLOAD_RATE per account
        quota = self.settings.USER_QUOTA_BYTES
        # before a byte is stored: the active-job cap, and the quota from Content-Length
        job_id, room = self.jobs.admit(owner, request.content_length, quota,
                                       self.settings.USER_MAX_ACTIVE_JOBS)
        receiver = UploadReceiver(self.settings.MAX_UPLOAD_BYTES, lambda filename: (
            self.jobs.begin_file(job_id, owner, filename, room, quota)))  # quota while streaming
        try:
            _, size = receiver.receive(request)
            options = schemas.options_from(receiver.text_fields(), ignore=())
        except BaseException:
            try:
                receiver.abort()
                self.jobs.discard(job_id)
            except PyMongoError:  # MongoDB is what failed; the upload sweeper cleans up later
                pass
            raise
        job = self.jobs.queue(job_id, size, options)
        if job is None:  # swept as abandoned while it streamed (UPLOAD_TIMEOUT), or deleted
            self.jobs.discard(job_id, video_id=receiver.upload.file_id)
            raise UploadExpired("The upload took longer than the server allows; send it again.")
        try:
            self._dispatch_job(job)
        except Exception as exc:
            self.jobs.discard(job_id)
            raise BrokerUnavailable("Could not queue the job: %s" % exc) from exc
        return json_response({"job_id": job_id, "status": c.QUEUED}, 202)
