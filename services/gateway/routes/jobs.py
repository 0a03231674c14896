"""A user's jobs: GET /jobs, GET and DELETE /jobs/<id>, and GET /download of the MP3."""
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from services.common import constants as c
from services.common.scopes import JOBS_READ, JOBS_WRITE
from services.gateway import schemas
from services.gateway.entrypoints import http, json_response
from services.gateway.exceptions import InvalidId, NotFound, NotReady
from services.storage.files import parse_file_id

DOWNLOAD_BLOCK = 1024 * 1024


class JobRoutes:
    """Mixin of GatewayService: uses its `store`, `settings` and `_user` (caller.py)."""

    @http("GET", "/jobs")
    def list_jobs_http(self, request):
        owner = self._user(request, JOBS_READ)
        return json_response({"jobs": [self._job_json(j) for j in self.store.jobs.for_owner(owner)]})

    @http("GET", "/jobs/<string:job_id>")
    def get_job(self, request, job_id):
        return json_response(self._job_json(self._own_job(request, job_id, JOBS_READ)))

    @http("DELETE", "/jobs/<string:job_id>")
    def delete_job(self, request, job_id):
        """The job, its MP3 and its video; a conversion in progress stops (see JobStore.delete)."""
        job = self._own_job(request, job_id, JOBS_WRITE)
        if not self.store.jobs.delete(job.id, job.owner):
            raise NotFound("No such job.")
        return Response(status=204)

    @http("GET", "/download")
    def download(self, request):
        owner = self._user(request, JOBS_READ)
        fid = request.args.get("fid", "")
        if schemas.is_job_id(fid):       # a job id works too: 409 until its MP3 exists
            job = self._own_job(request, fid, JOBS_READ, owner)
            if job.status != c.DONE:
                raise NotReady("The job is %s; the MP3 is not ready." % job.status)
            fid = str(job.mp3_id)
        file_id = parse_file_id(fid)
        if file_id is None:
            raise InvalidId("fid must be the MP3 id from the email (24 hexadecimal characters).")
        stored = self.store.jobs.open_mp3(file_id)
        if stored is None or stored.metadata.get("owner") != owner:
            raise NotFound("No such MP3.")
        response = Response(wrap_file(request.environ, stored, DOWNLOAD_BLOCK),
                            mimetype="audio/mpeg", direct_passthrough=True)
        response.headers["Content-Disposition"] = schemas.content_disposition(stored.filename)
        response.set_etag(str(file_id))
        response.headers["Cache-Control"] = "private, max-age=0"
        response.headers["Accept-Ranges"] = "bytes"
        response.content_length = stored.length
        return response.make_conditional(request, accept_ranges=True, complete_length=stored.length)

    def _job_json(self, job):
        return schemas.job_to_json(job, self.settings.RETENTION_HOURS)

    def _own_job(self, request, job_id, scope, owner=None):
        owner = owner or self._user(request, scope)
        if not schemas.is_job_id(job_id):
            raise InvalidId("A job id is 32 hexadecimal characters.")
        job = self.store.jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound("No such job.")
        return job
