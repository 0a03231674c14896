"""One upload's way in, the same for POST /upload and for a tus upload's last PATCH:

    admit (active-job cap, quota) -> store the video -> queue the job -> dispatch its event

An upload in a container ffmpeg decodes as it arrives (services/common/containers.py, sniffed on its
first bytes) is queued at its first stored chunk instead, and its event dispatched then: a converter
converts it while the rest arrives (store/uploads.py `stream`, `stream_form`); its last byte only
closes it. An MP4 whose moov comes last, or anything unknown, is queued at its last byte. (POST
/upload queues with the option fields sent before the file; one sent after it changes the stored
options at the last byte, and the converter then converts again from the whole upload.)

When the event cannot be dispatched (the broker is away), the upload still succeeds: the job is
queued with `due_at`, and the converter's sweeper dispatches it again once it is due
(services/converter). The client gets 202 (204 for tus), so it does not send the video again (no
duplicate job), and the stored video is not thrown away (no lost job).
"""
import dataclasses
import logging
import time

from pymongo.errors import PyMongoError
from werkzeug.exceptions import ClientDisconnected

from services.common import constants as c
from services.common.containers import SNIFF_BYTES, streamable
from services.storage.files import CHUNK_SIZE
from services.gateway import metrics, schemas, tus
from services.gateway.exceptions import NotFound, UploadExpired
from services.gateway.multipart import MultipartReceiver
from services.gateway.store.uploads import resumable_fields

log = logging.getLogger(__name__)
READ_BLOCK = 256 * 1024
RENEW_EVERY = 3.0   # seconds between renewals of a PATCH's writer claim (and liveness)
WRITER_LEASE = 10.0


class SniffingSink:
    """An upload's video file that, once its first chunk is stored, hands its first bytes to
    `on_head` (once); `streamed` is what that returned."""

    def __init__(self, video, on_head):
        self.video = video
        self.on_head = on_head
        self.head = bytearray()
        self.streamed = False

    def write(self, data):
        if self.head is not None and len(self.head) < SNIFF_BYTES:
            self.head += data[:SNIFF_BYTES - len(self.head)]
        self.video.write(data)
        if self.head is not None and self.video.size >= CHUNK_SIZE:
            head, self.head = bytes(self.head), None
            self.streamed = self.on_head(head)


def video_uploaded(job):
    """The payload of the `video_uploaded` event of a queued job (identifiers, never bytes)."""
    return job.event(video_id=str(job.video_id))


class Intake:
    """The upload use case, over the gateway's stores, its settings and its event dispatcher."""

    def __init__(self, stores, settings, dispatch):
        self.uploads = stores.uploads
        self.settings = settings
        self.dispatch = dispatch

    def admit(self, owner, announced, **fields):
        """An `Admission` for an upload of `announced` bytes (None: unknown), before a byte is stored:
        TooManyJobs past USER_MAX_ACTIVE_JOBS, QuotaExceeded past USER_QUOTA_BYTES, StorageFull
        past STORAGE_LIMIT_BYTES."""
        return self.uploads.admit(owner, announced, self.settings.USER_QUOTA_BYTES,
                                  self.settings.USER_MAX_ACTIVE_JOBS,
                                  self.settings.STORAGE_LIMIT_BYTES, **fields)

    # POST /upload ---------------------------------------------------------------------------------
    def receive_form(self, owner, request):
        """A multipart upload streamed into storage and queued: its `Job`."""
        admission = self.admit(owner, request.content_length)
        video = self.uploads.open_file(admission)  # held to the quota while streaming
        receiver = MultipartReceiver(self.settings.MAX_UPLOAD_BYTES)
        sink = SniffingSink(video, lambda head: self._stream_form(admission, receiver, head))
        try:
            form = receiver.receive(request, sink)
            options = schemas.options_from(form.fields, ignore=())
            video.commit(form.filename)
        except BaseException:
            try:
                video.abort()
                self.uploads.discard(admission.job_id)
            except PyMongoError:  # MongoDB is what failed; the upload sweeper cleans up later
                pass
            raise
        end = self.uploads.close if sink.streamed else self.uploads.queue
        job = end(admission.job_id, form.size, filename=form.filename, options=options)
        if job is None:  # swept as abandoned while it streamed (UPLOAD_TIMEOUT), or deleted
            self.uploads.discard(admission.job_id, video_id=admission.video_id)
            raise UploadExpired("The upload took longer than the server allows; send it again.")
        if sink.streamed:
            metrics.closed(job)
            return self._closed(job)
        return self._dispatched(job)

    def _stream_form(self, admission, receiver, head):
        """Queue a POST /upload now when its first bytes show a container that decodes as it
        arrives (with the options sent before the file); True when it was."""
        if not streamable(head) or receiver.filename is None:
            return False
        try:
            options = schemas.options_from(receiver.fields_so_far(), ignore=())
        except Exception:  # told at the end, when the whole form is checked
            return False
        job = self.uploads.stream_form(admission.job_id, receiver.filename, options)
        if job is None:  # swept or discarded meanwhile: the end tells
            return False
        log.info("upload %s: a stream, converted as it arrives", job.id)
        self._dispatched(job)
        return True

    # tus ------------------------------------------------------------------------------------------
    def create_resumable(self, owner, filename, length, options):
        """A new resumable upload of `length` bytes, admitted as POST /upload is: its job id."""
        return self.admit(owner, length, **resumable_fields(filename, length, options)).job_id

    def append(self, upload, offset, stream):
        """One PATCH: the body from `offset` stored, the offset recorded at each stored chunk (a
        client that goes away keeps what arrived); the last byte queues the job. The upload's state
        after it (a `Resumable`)."""
        if not upload.uploading:  # complete already: a repeated last PATCH
            return upload
        claim = self.uploads.claim(upload, offset, self._writer_lease())
        if claim is None:
            raise tus.OffsetMismatch("Another request is sending this upload, or moved it on "
                                     "meanwhile; ask with HEAD and continue from there.")
        try:
            return self._append(upload, offset, stream, claim)
        finally:
            try:
                self.uploads.release(upload, claim)
            except PyMongoError:  # the claim expires by itself
                pass

    def _writer_lease(self):
        """Seconds a PATCH's claim lives unless renewed (every RENEW_EVERY while bytes arrive): a
        PATCH cut off by a gateway crash holds its upload no longer, and one whose client went
        silent that long may be taken over by the client's next PATCH (it then gets 409)."""
        return WRITER_LEASE

    def _append(self, upload, offset, stream, claim):
        fresh = self.uploads.find(upload.id, upload.owner, tail=True)  # the tail, once claimed
        if fresh is None:
            raise NotFound("The upload was deleted or expired while it was being sent.")
        if not fresh.uploading or fresh.offset != offset:
            raise tus.OffsetMismatch("Another request moved this upload on meanwhile; ask with HEAD "
                                     "and continue from there.")
        appender = self.uploads.appender(fresh)
        saved, upload = self._receive(stream, fresh, appender, claim)
        if appender.offset < upload.length:
            self._save(upload, claim, saved, appender.offset, appender.tail)
            return upload.moved_to(appender.offset)
        job = self.uploads.finish(upload, appender, claim)
        if job is None:
            self._lost(upload)
        if upload.streaming:  # queued, and its event sent, at its first chunk
            metrics.closed(job)
            self._closed(job)
        else:
            self._dispatched(job)
        return upload.moved_to(upload.length, job.status)

    def _receive(self, stream, upload, appender, claim):
        """Stream the body into GridFS, renewing the claim every few seconds while bytes arrive;
        returns the offset recorded and the upload's state (streaming once its first chunk, in a
        container that decodes from a stream, is stored)."""
        saved = appender.offset
        head = bytearray() if upload.offset == 0 and not upload.streaming else None
        renewed = time.monotonic()
        while appender.offset < upload.length:
            try:
                block = stream.read(min(READ_BLOCK, upload.length - appender.offset))
            except (ClientDisconnected, OSError) as exc:
                log.info("upload %s: the client went away at byte %d (%s)", upload.id, appender.offset,
                         type(exc).__name__)
                break
            if not block:
                break
            if time.monotonic() - renewed >= RENEW_EVERY:
                self.uploads.renew(upload, claim, self._writer_lease())
                renewed = time.monotonic()
            if head is not None and len(head) < SNIFF_BYTES:
                head += block[:SNIFF_BYTES - len(head)]
            if appender.write(block):
                self._save(upload, claim, saved, appender.stored, b"")
                saved = appender.stored
                if head is not None:
                    upload = self._stream(upload, claim, bytes(head))
                    head = None
        return saved, upload

    def _stream(self, upload, claim, head):
        """Queue the upload now when its first bytes show a container that decodes as it arrives;
        its state after."""
        if not streamable(head):
            return upload
        job = self.uploads.stream(upload, claim)
        if job is None:
            self._lost(upload)
        log.info("upload %s: a stream of %d bytes, converted as it arrives", upload.id, upload.length)
        self._dispatched(job)
        return dataclasses.replace(upload, status=job.status)

    def _save(self, upload, claim, old, new, tail):
        if not self.uploads.save_offset(upload, claim, old, new, tail):
            self._lost(upload)

    def _lost(self, upload):
        """This PATCH may no longer write: the upload is gone (terminated, expired) or another PATCH
        took over."""
        if self.uploads.find(upload.id, upload.owner) is None:
            self.uploads.drop_video(upload.video_id)  # chunks this PATCH wrote after the removal
            raise NotFound("The upload was deleted or expired while it was being sent.")
        raise tus.OffsetMismatch("Another request took over this upload; ask with HEAD and continue "
                                 "from there.")

    # the end of both ------------------------------------------------------------------------------
    def _dispatched(self, job):
        """The queued job's event sent; when it cannot be, the converter's sweeper sends it later."""
        metrics.queued(job)
        return self._wake(job)

    def _closed(self, job):
        """A streamed upload's last byte: a job no converter took while it streamed (its owner had
        another converting, services/converter/fairness.py) is woken for again now."""
        return self._wake(job) if job.status == c.QUEUED else job

    def _wake(self, job):
        try:
            self.dispatch(c.VIDEO_UPLOADED, video_uploaded(job))
        except Exception:
            log.warning("job %s queued, its event not dispatched yet (the converter's sweeper "
                        "dispatches it again)", job.id, exc_info=True)
        return job
