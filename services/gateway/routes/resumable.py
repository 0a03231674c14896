"""Resumable uploads: a tus 1.0.0 server (core, creation, termination, expiration) at /uploads.

The upload URL's id is the job id. PATCH bodies stream into the video's GridFS chunks (a
`ChunkAppender`, one chunk in memory); the offset and the bytes of the unfinished last chunk live in
the job record, moved in one update after the chunks they claim are stored, so a gateway that
crashes mid-PATCH never claims bytes it did not store, and any replica, or a restarted gateway,
takes the next PATCH. When the last byte lands the job is queued as after `POST /upload`
(services/gateway/intake.py; the offsets: store/uploads.py).
"""
import datetime

from werkzeug.wrappers import Response

from services.common.scopes import JOBS_WRITE
from services.common.utils import utcnow
from services.gateway import schemas, tus
from services.gateway.entrypoints import HttpEntrypoint
from services.gateway.exceptions import EmptyFile, InvalidId, NotFound, UploadFinished

UPLOADS = "/uploads"
UPLOAD = UPLOADS + "/<string:upload_id>"
# Upload-Metadata keys tus clients add on their own (tus-js-client, Uppy): not conversion options
CLIENT_KEYS = ("filename", "filetype", "name", "type", "relativePath")


class TusEntrypoint(HttpEntrypoint):
    """The gateway's HTTP entrypoint whose error answers also carry the tus headers."""

    def response_from_exception(self, exc):
        response = super().response_from_exception(exc)
        response.headers.update(tus.response_headers())
        if isinstance(exc, tus.UnsupportedVersion):
            response.headers.update(tus.version_headers())
        return response


tus_http = TusEntrypoint.decorator


class ResumableRoutes:
    """Mixin of GatewayService: uses its `settings`, `store`, `_user` and `_intake`."""

    @tus_http("OPTIONS", UPLOADS)
    def tus_options(self, request):
        return Response(status=204, headers=tus.options_headers(self.settings.MAX_UPLOAD_BYTES))

    @tus_http("POST", UPLOADS)
    def tus_create(self, request):
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        owner = self._user(request, JOBS_WRITE)
        length = tus.parse_length(request.headers.get("Upload-Length"), self.settings.MAX_UPLOAD_BYTES)
        if length == 0:
            raise EmptyFile("The upload is empty (Upload-Length: 0).")
        metadata = tus.parse_metadata(request.headers.get("Upload-Metadata"))
        filename = schemas.clean_filename(metadata.get("filename") or metadata.get("name"))
        options = schemas.options_from(
            {key: value for key, value in metadata.items() if key not in CLIENT_KEYS}, ignore=())
        self.limits.hit("upload", request, key=owner)  # UPLOAD_RATE per account
        job_id = self._intake().create_resumable(owner, filename, length, options)
        return Response(status=201, headers=tus.response_headers(
            location="%s/%s" % (UPLOADS, job_id), expires=self._upload_expires(utcnow())))

    @tus_http("HEAD", UPLOAD)
    def tus_head(self, request, upload_id):
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        upload = self._own_upload(request, upload_id)
        return Response(status=200, headers=self._state_headers(upload, length=True))

    @tus_http("PATCH", UPLOAD, max_body=None)  # bounded by Upload-Length (tus.check_chunk)
    def tus_patch(self, request, upload_id):
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        tus.check_content_type(request.headers.get("Content-Type"))
        upload = self._own_upload(request, upload_id)  # its stored tail only once claimed (intake)
        offset = tus.parse_offset(request.headers.get("Upload-Offset"), upload.offset)
        if request.content_length is None:
            raise tus.InvalidHeader("A PATCH must have a Content-Length.")
        tus.check_chunk(offset, request.content_length, upload.length)
        upload = self._intake().append(upload, offset, request.stream)
        return Response(status=204, headers=self._state_headers(upload))

    @tus_http("DELETE", UPLOAD)
    def tus_terminate(self, request, upload_id):
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        upload = self._own_upload(request, upload_id)
        if not upload.uploading or not self.store.uploads.terminate(upload_id):
            raise UploadFinished("This upload is complete: it is job %s now (GET /jobs/%s)."
                                 % (upload_id, upload_id))
        return Response(status=204, headers=tus.response_headers())

    # --- helpers ----------------------------------------------------------------------------
    def _own_upload(self, request, upload_id, tail=False):
        owner = self._user(request, JOBS_WRITE)
        if not schemas.is_job_id(upload_id):
            raise InvalidId("An upload id is 32 hexadecimal characters.")
        upload = self.store.uploads.find(upload_id, owner, tail)
        if upload is None:
            raise NotFound("No such upload: it expired, was deleted, or is not yours.")
        return upload

    def _upload_expires(self, updated_at):
        return updated_at + datetime.timedelta(seconds=self.settings.UPLOAD_TIMEOUT)

    def _state_headers(self, upload, length=False):
        """Upload-Offset (the whole length once complete), Upload-Length and Upload-Expires."""
        if not upload.uploading:
            return tus.response_headers(offset=upload.length, length=upload.length if length else None)
        return tus.response_headers(offset=upload.offset, length=upload.length if length else None,
                                    expires=self._upload_expires(upload.updated_at))
