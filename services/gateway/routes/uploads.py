"""POST /upload: a video as multipart/form-data, streamed into storage and queued (intake.py)."""
from services.common import constants as c
from services.common.scopes import JOBS_WRITE
from services.gateway.entrypoints import http, json_response


class UploadRoutes:
    """Mixin of GatewayService: uses its `_user` (caller.py), `limits` (UPLOAD_RATE) and `_intake`
    (intake.py)."""

    @http("POST", "/upload", max_body=None)  # bounded while streaming (multipart.py)
    def upload(self, request):
        owner = self._user(request, JOBS_WRITE)
        self.limits.hit("upload", request, key=owner)  # UPLOAD_RATE per account
        job = self._intake().receive_form(owner, request)
        return json_response({"job_id": job.id, "status": c.QUEUED}, 202)
