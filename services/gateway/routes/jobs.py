"""A user's jobs: GET /jobs, GET and DELETE /jobs/<id>, GET /download of the MP3, and POST
/jobs/archive of many MP3s as one ZIP."""
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file
from zipstream import ZipStream

from services.common import constants as c
from services.common.scopes import JOBS_READ, JOBS_WRITE
from services.common.utils import utcnow
from services.gateway import schemas
from services.gateway.entrypoints import http, json_body, json_response
from services.gateway.exceptions import InvalidId, NotFound, NotReady
from services.storage.files import parse_file_id

DOWNLOAD_BLOCK = 1024 * 1024


class JobRoutes:
    """Mixin of GatewayService: uses its `store`, `settings` and `_user` (caller.py)."""

    @http("GET", "/jobs")
    def list_jobs_http(self, request):
        owner = self._user(request, JOBS_READ)
        return json_response({"jobs": [self._job_json(j) for j in self.store.jobs.for_owner(owner)]})

    @http("GET", "/jobs/<job:job_id>")
    def get_job(self, request, job_id):
        return json_response(self._job_json(self._own_job(request, job_id, JOBS_READ)))

    @http("DELETE", "/jobs/<job:job_id>")
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
            stored = self._job_mp3(request, fid, owner)
        else:
            file_id = parse_file_id(fid)
            if file_id is None:
                raise InvalidId("fid must be the MP3 id from the email (24 hexadecimal characters).")
            stored = self._own_mp3(file_id, owner)
        if not stored.has_head():  # being deleted (a job deleted or expired): gone, not a 500
            raise NotFound("No such MP3.")
        response = Response(wrap_file(request.environ, stored, DOWNLOAD_BLOCK),
                            mimetype="audio/mpeg", direct_passthrough=True)
        response.headers["Content-Disposition"] = schemas.content_disposition(stored.filename)
        response.set_etag(str(stored.file_id))
        response.headers["Cache-Control"] = "private, max-age=0"
        response.headers["Accept-Ranges"] = "bytes"
        response.content_length = stored.length
        return response.make_conditional(request, accept_ranges=True, complete_length=stored.length)

    @http("POST", "/jobs/archive")
    def archive(self, request):
        """The MP3s of finished jobs as one ZIP, streamed as it is built: stored (MP3s do not
        compress), sizes known up front (so a Content-Length), ZIP64 past 4 GiB, each MP3 read
        from GridFS as its turn comes. Every id is checked before the first byte goes out."""
        owner = self._user(request, JOBS_READ)
        job_ids = schemas.parse(schemas.ArchiveBody, json_body(request)).job_ids
        mp3s = [self._job_mp3(request, job_id, owner, named=True) for job_id in job_ids]
        archive = ZipStream(sized=True)
        for name, mp3 in zip(schemas.archive_names([mp3.filename for mp3 in mp3s]), mp3s):
            archive.add(read_once(mp3), name, size=mp3.length)
        response = Response(archive, mimetype="application/zip", direct_passthrough=True)
        response.content_length = len(archive)
        response.headers["Content-Disposition"] = schemas.content_disposition(
            "mp3svc-%s.zip" % utcnow().strftime("%Y-%m-%d"))
        return response

    def _job_mp3(self, request, job_id, owner, named=False):
        """The open MP3 of `owner`'s finished job (404, 409 `not_ready` otherwise); `named`: the
        messages name the job (one of many)."""
        job = self._own_job(request, job_id, JOBS_READ, owner, named)
        which = " " + job_id if named else ""
        if job.status != c.DONE:
            raise NotReady("The job%s is %s; its MP3 is not ready." % (which, job.status))
        return self._own_mp3(job.mp3_id, owner, which)

    def _own_mp3(self, file_id, owner, which=""):
        stored = self.store.jobs.open_mp3(file_id)
        if stored is None or stored.metadata.get("owner") != owner:
            raise NotFound("No such MP3%s." % (" (job%s)" % which if which else ""))
        return stored

    def _job_json(self, job):
        return schemas.job_to_json(job, self.settings.RETENTION_HOURS)

    def _own_job(self, request, job_id, scope, owner=None, named=False):
        owner = owner or self._user(request, scope)
        if not schemas.is_job_id(job_id):
            raise InvalidId("A job id is 32 hexadecimal characters.")
        job = self.store.jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound("No such job%s." % (" " + job_id if named else ""))
        return job


def read_once(stored, block=DOWNLOAD_BLOCK):
    """A stored file's bytes in blocks, then closed (it lets go of what it read ahead)."""
    try:
        yield from stored.iter_range(block=block)
    finally:
        stored.close()
