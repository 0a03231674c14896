"""One conversion, exactly once: claim the job, convert, store the MP3, finish the job.

A job is claimed with a compare-and-set on its record and a lease that a background green thread
renews. A converter that dies stops renewing; once the lease expires any converter's sweeper takes
the job over. Only the lease holder may finish the job, so a job gets one MP3 and one outcome.

A job queued while its upload still streams in (`upload_open`, see services/gateway/store/uploads.py)
is converted as its chunks land (Encoder.convert_stream over a GrowingFile), holding its converter
slot while it waits for them (at most UPLOAD_TIMEOUT without a byte, and a margin: then it is
released). It settles
only once the upload is complete; an upload removed meanwhile (deleted, abandoned) stops it with
nothing kept. When the stream yields no MP3 (a ConversionError, no audio) it converts again after
the last byte, as for any other upload.
"""
import logging
import time

import eventlet
from pymongo.errors import PyMongoError

from services.common import constants as c
from services.common.logs import bind
from services.common.leases import backoff, worker_id
from services.converter.exceptions import ConversionAborted, ConversionError, LeaseLost, TransientError

log = logging.getLogger(__name__)

GAVE_UP = ("The conversion was interrupted too many times; an operator can requeue it.")
# a streaming conversion waits UPLOAD_TIMEOUT and this much more for the next byte of its upload:
# the gateway's sweep (every 10 s) removes an abandoned upload first, and the conversion stops with
# it; only when no gateway sweeps is the job released (and its record's updated_at moved)
SWEEP_MARGIN = 30
OVER_QUOTA = ("The MP3 would be %d bytes and take you over your storage quota of %d bytes; delete "
              "some jobs, or convert with a lower bitrate or a shorter range.")


class Conversion:
    def __init__(self, store, encoder, lease, max_attempts, quota=None, upload_timeout=21600):
        self.store = store
        self.upload_timeout = upload_timeout  # seconds a streaming upload may stay silent
        self.quota = quota  # USER_QUOTA_BYTES; None: not checked
        self.encoder = encoder
        self.lease = lease
        self.max_attempts = max_attempts
        self.worker = worker_id()
        self.lost = False
        self.timings = {}  # seconds from the claim: "ffmpeg" (encoded), "stored" (job done)

    def run(self):
        """Claim the next job (the fairest, see fairness.py) and convert it. Returns
        ("done"|"failed", job) when this call settled the job, else (None, job or None)."""
        job = self.store.claim_next(self.worker, self.lease)
        if job is None:
            return None, None  # nothing queued: other converters took it all
        bind(job_id=job.id)  # the job this worker converts, whichever event woke it
        return self._run(job)

    def _run(self, job):
        job_id = job.id
        if job.attempts > self.max_attempts:
            return self._fail(job, GAVE_UP)
        started = time.monotonic()
        renewer = eventlet.spawn(self._renew, job_id)
        mp3, kept = None, False
        try:
            self.store.drop_partial(job)
            with self.encoder.target() as target:
                # the MP3 goes into storage while ffmpeg writes it (services/converter/output.py)
                mp3 = self.store.mp3_output(job, self.worker, target, should_stop=lambda: self.lost)
                result = self._streamed(job, target, mp3) if job.upload_open else None
                if result is None:
                    video = self.store.open_video(job)
                    if video is None:
                        return self._fail(job, "The uploaded video is no longer stored.")
                    result = self.encoder.convert(
                        video, target, job.options, should_stop=lambda: self.lost,
                        on_progress=lambda fraction: self._progress(job.id, fraction), output=mp3)
                self.timings["ffmpeg"] = time.monotonic() - started
                self._check_quota(job, result.size)
                if self.lost:
                    raise LeaseLost()
                mp3.commit()
            finished = self.store.complete(job_id, self.worker, mp3.file_id, result.duration,
                                           result.size)
            if finished is None:
                raise LeaseLost()
            kept = True
            self.timings["stored"] = time.monotonic() - started
            self._drop_video(job)
            return c.DONE, finished
        except ConversionError as exc:  # the upload's fault: its video goes at once
            self._drop(mp3)
            return self._fail(job, exc.args[0], drop_video=True)
        except (LeaseLost, ConversionAborted) as exc:
            log.warning("job %s: %s; dropping our result", job_id,
                        exc.args[0] if exc.args else "lease lost to another converter")
            return None, None
        except (PyMongoError, OSError, TransientError) as exc:
            log.warning("job %s: transient failure, retrying later: %s", job_id, exc)
            self._drop(mp3)
            try:
                self.store.release(job_id, self.worker, backoff(job.attempts), str(exc))
            except PyMongoError:
                pass  # the lease expires and the sweeper takes the job
            return None, None
        finally:
            renewer.kill()
            if not kept:  # whatever ended the conversion, nothing of its MP3 is left
                self._drop(mp3)
            # for the next one, once settled; in a green thread of its own: Popen may yield, and
            # the outcome need not wait for it
            eventlet.spawn_n(self.encoder.prepare)

    def _streamed(self, job, target, mp3):
        """Convert while the upload arrives, then wait for its last byte; the Result, or None to
        convert again from the whole upload (the stream yielded no MP3)."""
        stream = self.store.open_stream(job, self.upload_timeout + SWEEP_MARGIN)
        try:
            result = self.encoder.convert_stream(
                stream, target, job.options, should_stop=lambda: self.lost,
                on_progress=lambda fraction: self._progress(job.id, fraction), output=mp3)
        except ConversionError as exc:
            log.info("job %s: converting as it arrived failed (%s); converting after its last "
                     "byte", job.id, exc.args[0])
            result = None
        stream.wait_complete()
        if result is not None and self.store.options_of(job.id) != job.options:
            log.info("job %s: options changed by the upload's last fields; converting again", job.id)
            return None
        return result

    def _check_quota(self, job, size):
        """MP3s count in the quota when stored: one that would take its owner over it is not (a
        ConversionError, so the job fails with the reason and its video goes). One no bigger than
        the whole stored video whose place it takes in the count cannot: the video was admitted
        within the quota. Only the others cost a look at the owner's jobs (1.5-3 ms on nx-27017,
        at the end of every conversion before this)."""
        if self.quota is None or (not job.upload_open and job.size is not None and size <= job.size):
            return
        if self.store.usage_after(job, size) > self.quota:
            raise ConversionError(OVER_QUOTA % (size, self.quota))

    def _fail(self, job, reason, drop_video=False):
        """Settle the job as failed. A failure caused by the upload (not media, no audio, too long)
        also deletes its video; one for the system's reasons (GAVE_UP) keeps it for a requeue."""
        finished = self.store.fail(job.id, self.worker, reason)
        if finished is None:
            return None, None
        if drop_video:
            self._drop_video(finished)
        return c.FAILED, finished

    def _drop_video(self, job):
        """The video of a job just settled goes. The outcome stands whatever happens here: should
        MongoDB fail (nx-27017 takes seconds to delete a 1 GB video, past the socket timeout), the
        video stays, and counts in the quota, until retention deletes it with the job."""
        try:
            self.store.drop_video(job)
        except PyMongoError as exc:
            log.warning("job %s: settled, but its video could not be deleted: %s", job.id, exc)

    def _drop(self, mp3):
        """Nothing of our MP3 is left, committed or not."""
        if mp3 is None:
            return
        try:
            mp3.abort()
        except PyMongoError:
            pass

    def _progress(self, job_id, fraction):
        """ffmpeg's progress (about once a second) onto the job record, for GET /jobs/<id>. Not
        its end: the outcome writes that, and writing ffmpeg's last report held up noticing its exit."""
        if fraction >= 1.0:
            return
        try:
            self.store.progress(job_id, self.worker, fraction)
        except PyMongoError:
            pass  # a missed progress update is no reason to stop converting

    def _renew(self, job_id):
        while True:
            eventlet.sleep(max(1.0, self.lease / 3.0))
            try:
                if not self.store.renew(job_id, self.worker, self.lease):
                    self.lost = True
                    return
            except PyMongoError:
                pass  # keep converting; if MongoDB stays away the lease expires
