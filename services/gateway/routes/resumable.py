"""Resumable uploads: a tus 1.0.0 server (core, creation, termination, expiration) at /uploads.

The upload URL's id is the job id. PATCH bodies stream into the video's GridFS chunks (a
`ChunkAppender`, one chunk in memory); the offset and the bytes of the unfinished last chunk live in
the job record, moved in one update after the chunks they claim are stored, so a gateway that
crashes mid-PATCH never claims bytes it did not store, and any replica, or a restarted gateway,
takes the next PATCH. When the last byte lands the job is queued as after `POST /upload`.
"""
import datetime
import logging

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Response

from services.common import constants as c
from services.common.jobs import as_datetime
from services.common.utils import utcnow
from services.gateway import schemas, tus
from services.gateway.entrypoints import HttpEntrypoint
from services.gateway.exceptions import EmptyFile, InvalidId, NotFound, UploadFinished

log = logging.getLogger(__name__)

UPLOADS = "/uploads"
UPLOAD = UPLOADS + "/<string:upload_id>"
READ_BLOCK = 256 * 1024
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
    """Mixin of GatewayService: uses its `settings`, `jobs`, `_user` and `_dispatch_job`."""

    @tus_http("OPTIONS", UPLOADS)
    def tus_options(self, request):
        return Response(status=204, headers=tus.options_headers(self.settings.MAX_UPLOAD_BYTES))

    @tus_http("POST", UPLOADS)
    def tus_create(self, request):
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        owner = self._user(request)
        length = tus.parse_length(request.headers.get("Upload-Length"), self.settings.MAX_UPLOAD_BYTES)
        if length == 0:
            raise EmptyFile("The upload is empty (Upload-Length: 0).")
        metadata = tus.parse_metadata(request.headers.get("Upload-Metadata"))
        filename = schemas.clean_filename(metadata.get("filename") or metadata.get("name"))
        options = schemas.options_from(
            {key: value for key, value in metadata.items() if key not in CLIENT_KEYS}, ignore=())
        self.limits.hit("upload", request, key=owner)  # UPLOAD_RATE per account
        job_id = self.jobs.create_upload(owner, filename, length, options, self.settings.USER_QUOTA_BYTES,
                                         self.settings.USER_MAX_ACTIVE_JOBS)
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
        upload = self._own_upload(request, upload_id, tail=True)
        length = upload["upload_length"]
        offset = tus.parse_offset(request.headers.get("Upload-Offset"), upload["upload_offset"])
        if request.content_length is None:
            raise tus.InvalidHeader("A PATCH must have a Content-Length.")
        tus.check_chunk(offset, request.content_length, length)
        if upload["status"] != c.UPLOADING:  # complete already: a repeated last PATCH
            return Response(status=204, headers=self._state_headers(upload))
        claim = self.jobs.claim_upload(upload_id, offset)
        if claim is None:
            raise tus.OffsetMismatch("Another request moved this upload on meanwhile; ask with HEAD "
                                     "and continue from there.")
        appender = self.jobs.upload_appender(upload)
        saved = self._receive(request.stream, upload, appender, claim)
        if appender.offset < length:
            self._save(upload, claim, saved, appender.offset, appender.tail)
            return Response(status=204, headers=self._state_headers(
                dict(upload, upload_offset=appender.offset, updated_at=utcnow())))
        job = self.jobs.finish_upload(upload, appender, claim)
        if job is None:
            self._lost(upload)
        try:
            self._dispatch_job(job)
        except Exception:  # the job is queued with due_at: its event is dispatched again later
            log.warning("job %s queued, its event not dispatched yet", job.id, exc_info=True)
        return Response(status=204, headers=tus.response_headers(offset=length))

    @tus_http("DELETE", UPLOAD)
    def tus_terminate(self, request, upload_id):
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        upload = self._own_upload(request, upload_id)
        if upload["status"] != c.UPLOADING or not self.jobs.terminate_upload(upload_id):
            raise UploadFinished("This upload is complete: it is job %s now (GET /jobs/%s)."
                                 % (upload_id, upload_id))
        return Response(status=204, headers=tus.response_headers())

    # --- helpers ----------------------------------------------------------------------------
    def _own_upload(self, request, upload_id, tail=False):
        owner = self._user(request)
        if not schemas.is_job_id(upload_id):
            raise InvalidId("An upload id is 32 hexadecimal characters.")
        upload = self.jobs.find_upload(upload_id, owner, tail)
        if upload is None:
            raise NotFound("No such upload: it expired, was deleted, or is not yours.")
        return upload

    def _receive(self, stream, upload, appender, claim):
        """Stream the body into GridFS, recording the offset at each stored chunk; a client that goes
        away keeps what arrived. Returns the offset recorded."""
        saved = appender.offset
        while appender.offset < upload["upload_length"]:
            try:
                block = stream.read(min(READ_BLOCK, upload["upload_length"] - appender.offset))
            except (ClientDisconnected, OSError) as exc:
                log.info("upload %s: the client went away at byte %d (%s)", upload["_id"], appender.offset,
                         type(exc).__name__)
                break
            if not block:
                break
            if appender.write(block):
                self._save(upload, claim, saved, appender.stored, b"")
                saved = appender.stored
        return saved

    def _save(self, upload, claim, old, new, tail):
        if not self.jobs.save_offset(upload["_id"], claim, old, new, tail):
            self._lost(upload)

    def _lost(self, upload):
        """This PATCH may no longer write: the upload is gone (terminated, expired) or another PATCH
        took over."""
        if self.jobs.find_upload(upload["_id"], upload["owner"]) is None:
            self.jobs.drop_video(upload["video_id"])  # chunks this PATCH wrote after the removal
            raise NotFound("The upload was deleted or expired while it was being sent.")
        raise tus.OffsetMismatch("Another request took over this upload; ask with HEAD and continue "
                                 "from there.")

    def _upload_expires(self, updated_at):
        return updated_at + datetime.timedelta(seconds=self.settings.UPLOAD_TIMEOUT)

    def _state_headers(self, upload, length=False):
        uploading = upload["status"] == c.UPLOADING
        offset = upload["upload_offset"] if uploading else upload["upload_length"]
        expires = self._upload_expires(as_datetime(upload["updated_at"])) if uploading else None
        return tus.response_headers(offset=offset, length=upload["upload_length"] if length else None,
                                    expires=expires)
