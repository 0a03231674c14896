"""The converter's pieces: ffmpeg argv and error sentences, MP4 layout sniffing, the job state
machine of one conversion (with mocked storage and encoder), and the event handler."""
import dataclasses
import io
import socket
import struct
from unittest import mock

import eventlet
import pytest
from bson import ObjectId
from nameko.testing.services import worker_factory
from pymongo.errors import AutoReconnect, PyMongoError

from services.common import constants as c
from services.converter.exceptions import ConversionAborted, ConversionError, TransientError
from services.common.jobs import Job
from services.common.leases import backoff
from services.common import logs
from services.converter.jobs import GAVE_UP, Conversion
from services.converter.media import args
from services.converter.media.args import FORMAT_WHITELIST
from services.converter.media.boxes import needs_seeking
from services.converter.media.encoder import Encoder, Result
from services.converter.media.tempfiles import temp_path
from services.converter.media.errors import NO_AUDIO, NOT_MEDIA, explain
from services.converter.service import ConverterService
from services.converter.settings import ConverterSettings
from services.converter.output import StoredMp3
from tests.configs import config_defaults


class BytesStored(io.BytesIO):
    """In-memory stand-in for services.storage.gridio.StoredFile: read/seek/tell/iter_range."""

    def __init__(self, data):
        super().__init__(data)
        self.length = len(data)

    def iter_range(self, start=0, end=None, block=1 << 20):
        end = self.length if end is None else min(end, self.length)
        self.seek(start)
        while self.tell() < end:
            yield self.read(min(block, end - self.tell()))


# --- explain() --------------------------------------------------------------------------------
# stderr as ffmpeg 5/6 writes it with `-v error` for the argv of args.encode
NO_AUDIO_STDERR = ("Stream map '0:a:0' matches no streams.\n"
                   "To ignore this, add a trailing '?' to the map.\n")
INVALID_DATA_STDERR = "pipe:0: Invalid data found when processing input\n"
WHITELIST_STDERR = ("[png_pipe @ 0x5600aee3aac0] Format not on whitelist '%s'\n"
                    "pipe:0: Invalid argument\n" % FORMAT_WHITELIST)
MOOV_STDERR = ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c1a3e700] moov atom not found\n"
               "/tmp/upload-x: Invalid data found when processing input\n")
OTHER_STDERR = ("[aac @ 0x55e1] channel element 2.0 is not allocated\n"
                "Error while decoding stream #0:1: Invalid data\n"
                "Conversion failed!\n")


@pytest.mark.parametrize("stderr, sentence", [
    (NO_AUDIO_STDERR, NO_AUDIO),
    ("Output file #0 does not contain any stream\n", NO_AUDIO),
    (INVALID_DATA_STDERR, NOT_MEDIA),
    (WHITELIST_STDERR, NOT_MEDIA),
    ("[hls @ 0x1] Protocol 'file' not on whitelist 'pipe'!\n", NOT_MEDIA),
    (MOOV_STDERR, NOT_MEDIA),
])
def test_explain_known_failures(stderr, sentence):
    assert explain(stderr) == sentence


def test_explain_other_failures_quote_the_last_line():
    sentence = explain(OTHER_STDERR)
    assert sentence == "The media could not be converted (Conversion failed!)."


def test_explain_is_always_a_bounded_sentence():
    assert explain("") == "The media could not be converted (unknown error)."
    assert explain("\n\n  \n") == "The media could not be converted (unknown error)."
    long = explain("x" * 5000 + "\n")
    assert long.startswith("The media could not be converted (") and long.endswith(").")
    assert len(long) < 260
    collapsed = explain("a   b\tc\n")
    assert "a b c" in collapsed


# --- needs_seeking() --------------------------------------------------------------------------
def box(kind, payload=b"", size=None):
    return struct.pack(">I4s", len(payload) + 8 if size is None else size, kind) + payload


def box64(kind, payload=b""):
    return struct.pack(">I4sQ", 1, kind, len(payload) + 16) + payload


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
MOOV = box(b"moov", box(b"mvhd", b"\x00" * 100))
MDAT = box(b"mdat", b"\xaa" * 5000)


@pytest.mark.parametrize("layout, expected", [
    ([FTYP, MOOV, MDAT], False),
    ([FTYP, MDAT, MOOV], True),
    ([FTYP, box(b"free", b"\x00" * 32), MOOV, MDAT], False),
    ([FTYP, box(b"wide"), MDAT, MOOV], True),
    ([MOOV, MDAT], False),
    ([MDAT, MOOV], True),
    # a 64-bit "largesize" box before moov must be skipped by its 64-bit size
    ([FTYP, box64(b"free", b"\x00" * 70000), MOOV, MDAT], False),
    ([FTYP, box64(b"mdat", b"\xbb" * 70000), MOOV], True),
    # size 0: the box runs to the end of the file, so nothing (no moov) follows
    ([FTYP, box(b"mdat", b"\xcc" * 100, size=0)], True),
    # no moov at all, or a corrupt size: let ffmpeg's file path report it
    ([FTYP], True),
    ([FTYP, box(b"junk", b"", size=3)], True),
])
def test_needs_seeking_on_box_layouts(layout, expected):
    stored = BytesStored(b"".join(layout))
    stored.seek(1234)
    assert needs_seeking(stored) is expected


@pytest.mark.parametrize("data", [
    b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\x1aE\xdf\xa3" + b"\x00" * 40, b"ID3\x04" + b"\x00" * 40,
    b"\x00" * 7, b"OggS" + b"\x00" * 60, b"\xff\xfb\x90\x64" * 50,
], ids=["empty", "wav", "matroska", "mp3-id3", "tiny", "ogg", "mp3-frames"])
def test_needs_seeking_false_for_non_mp4(data):
    assert needs_seeking(BytesStored(data)) is False


@pytest.mark.parametrize("faststart, expected", [(True, False), (False, True)])
def test_needs_seeking_on_real_mp4(media, faststart, expected):
    path = media.video("layout-%s.mp4" % faststart, duration=1.0, faststart=faststart)
    with open(path, "rb") as handle:
        assert needs_seeking(BytesStored(handle.read())) is expected


# --- Encoder -------------------------------------------------------------------------------------
def test_command_restricts_demuxers_and_protocols_before_the_input():
    argv = args.encode(args.Tools(ffmpeg="/usr/bin/ffmpeg", quality=4), "pipe:0", "/tmp/out.mp3")
    assert argv[0] == "/usr/bin/ffmpeg"
    i = argv.index("-i")
    assert argv[i + 1] == "pipe:0"
    fw, pw = argv.index("-format_whitelist"), argv.index("-protocol_whitelist")
    assert fw < i and pw < i
    assert argv[fw + 1] == FORMAT_WHITELIST
    assert argv[pw + 1] == "pipe"
    for unsafe in ("hls", "concat", "image2", "lavfi", "http", "tcp"):
        assert unsafe not in argv[fw + 1].split(",") + argv[pw + 1].split(",")
    assert argv[argv.index("-map") + 1] == "0:a:0"
    assert "libmp3lame" in argv
    assert argv[argv.index("-q:a") + 1] == "4"
    assert "-vn" in argv and "-nostdin" in argv
    assert argv.count("-i") == 1
    assert "/tmp/out.mp3" in argv[i + 2:]


def test_command_on_a_spooled_file_allows_only_file_protocol():
    argv = args.encode(args.Tools(), "/tmp/upload-abc", "/tmp/out.mp3")
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"
    assert argv[argv.index("-i") + 1] == "/tmp/upload-abc"


def test_command_caps_duration_and_size():
    argv = args.encode(args.Tools(max_duration=600), "pipe:0", "/tmp/out.mp3")
    assert float(argv[argv.index("-t") + 1]) <= 601
    assert int(argv[argv.index("-fs") + 1]) > 0


def test_probe_command_is_restricted_too():
    argv = args.probe(args.Tools(ffprobe="ffprobe"), "/tmp/out.mp3")
    assert argv[argv.index("-format_whitelist") + 1] == "mp3"
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"
    assert argv[-1] == "/tmp/out.mp3"


@pytest.mark.parametrize("faststart", [True, False])
def test_convert_real_media_through_pipe_or_spool(media, tmp_path, faststart):
    path = media.video("convert-%s.mp4" % faststart, duration=2.0, faststart=faststart)
    with open(path, "rb") as handle:
        stored = BytesStored(handle.read())
    target = tmp_path / "out.mp3"
    result = Encoder(tmp_dir=str(tmp_path)).convert(stored, str(target))
    assert abs(result.duration - 2.0) < 0.2 and result.size == target.stat().st_size
    assert target.read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp3"]  # spool removed


def test_convert_real_video_without_audio(media, tmp_path):
    path = media.video("silent.mp4", duration=1.0, audio=False)
    with open(path, "rb") as handle:
        stored = BytesStored(handle.read())
    with pytest.raises(ConversionError) as info:
        Encoder(tmp_dir=str(tmp_path)).convert(stored, str(tmp_path / "out.mp3"))
    assert info.value.args[0] == NO_AUDIO


@pytest.fixture(autouse=True)
def fresh_log_context():
    """A conversion binds its job id to the running green thread's log context (a worker's, in
    the service); here that is the test's own, so clear it for the tests that follow."""
    yield
    logs.current().clear()


# --- Conversion ------------------------------------------------------------------------------
JOB_ID = "c" * 32
OUTCOME = "e" * 32


def make_job(**fields):
    doc = {"_id": JOB_ID, "owner": "me@example.com", "filename": "clip.mp4",
           "status": c.CONVERTING, "video_id": ObjectId(), "attempts": 1, "mp3_id": None,
           "error": None}
    doc.update(fields)
    return Job.from_doc(doc)


class Harness:
    """Mock storage/encoder around a real `StoredMp3` whose PlacedFile is a mock; the encoder
    writes the audio and hands the output the tag, as the real one does."""

    def __init__(self, tmp_path, job=None, tag=b"ID3" + b"\x01" * 97, audio=b"\xff\xfb" * 1450):
        self.job = make_job() if job is None else job
        self.mp3_id = ObjectId()
        self.placed = mock.Mock(file_id=self.mp3_id, chunk_size=1024)  # the PlacedFile
        self.outputs = []
        self.storage = mock.Mock(name="store")
        self.storage.claim_next.return_value = self.job
        self.storage.open_video.return_value = BytesStored(b"video bytes")

        def mp3_output(job, worker, path, should_stop):
            self.outputs.append(StoredMp3(lambda: self.placed, path, should_stop))
            return self.outputs[-1]
        self.storage.mp3_output.side_effect = mp3_output
        self.storage.complete.side_effect = lambda job_id, worker, mp3_id, duration, size: \
            dataclasses.replace(self.job, status=c.DONE, mp3_id=mp3_id, duration=duration,
                                mp3_size=size, outcome_id=OUTCOME)
        self.storage.fail.side_effect = lambda job_id, worker, error: dataclasses.replace(
            self.job, status=c.FAILED, error=error, outcome_id=OUTCOME)
        self.storage.unannounced.return_value = []
        self.storage.usage_after.return_value = 0
        self.encoder = mock.Mock(name="encoder")
        self.encoder.target.side_effect = lambda: temp_path(str(tmp_path), suffix=".mp3")
        self.prepared = []  # at each prepare(): whether the job was settled done
        self.encoder.prepare.side_effect = lambda: self.prepared.append(self.storage.complete.called)
        self.tag, self.audio = tag, audio
        self.mp3 = tag + audio

        def convert(video, target, options, should_stop, on_progress, output):
            output.reset()
            output.begin(len(self.tag))
            with open(target, "wb") as out:
                out.write(self.audio)
            on_progress(0.5)
            size = output.finish(self.tag)
            on_progress(1.0)  # ffmpeg's last report: the outcome writes it
            return Result(duration=3.5, size=size, passthrough=False, normalized="")
        self.encoder.convert.side_effect = convert
        self.conversion = Conversion(self.storage, self.encoder, lease=30, max_attempts=5)

    def written(self):
        chunks = dict(call.args for call in self.placed.put.call_args_list)
        for call in self.placed.put_all.call_args_list:
            for n, data in call.args[0]:
                assert n not in chunks
                chunks[n] = data
        assert sorted(chunks) == list(range(len(chunks)))
        return b"".join(chunks[n] for n in sorted(chunks))


def test_conversion_done(tmp_path):
    h = Harness(tmp_path)
    outcome, job = h.conversion.run()
    assert outcome == c.DONE
    assert job.mp3_id == h.mp3_id and job.duration == 3.5
    h.storage.claim_next.assert_called_once_with(h.conversion.worker, 30)
    h.storage.complete.assert_called_once_with(JOB_ID, h.conversion.worker, h.mp3_id, 3.5,
                                               len(h.mp3))
    assert h.written() == h.mp3
    h.placed.finish.assert_called_once_with(len(h.mp3))
    h.storage.drop_video.assert_called_once_with(h.job)
    h.storage.drop_partial.assert_called_once_with(h.job)  # an earlier attempt's, if any
    h.storage.fail.assert_not_called()
    assert list(tmp_path.iterdir()) == []  # the temporary MP3 is gone
    eventlet.sleep(0)  # the next conversion's processes are started once this one is settled
    assert h.prepared == [True]


@pytest.mark.parametrize("error", [ConversionError(NO_AUDIO), TransientError("storage"),
                                   ConversionAborted()])
def test_the_next_conversions_processes_are_started_whatever_the_outcome(tmp_path, error):
    h = Harness(tmp_path)
    h.encoder.convert.side_effect = error
    h.conversion.run()
    assert h.prepared == []
    eventlet.sleep(0)
    assert h.prepared == [False]


def test_conversion_passes_options_and_records_progress(tmp_path):
    h = Harness(tmp_path, job=make_job(options={"bitrate": 128}))
    assert h.conversion.run()[0] == c.DONE
    assert h.encoder.convert.call_args.args[2] == {"bitrate": 128}
    h.storage.progress.assert_called_once_with(JOB_ID, h.conversion.worker, 0.5)


def test_conversion_not_claimed_does_nothing(tmp_path):
    h = Harness(tmp_path)
    h.storage.claim_next.return_value = None
    assert h.conversion.run() == (None, None)
    h.storage.open_video.assert_not_called()
    h.encoder.convert.assert_not_called()
    h.storage.fail.assert_not_called()
    h.storage.complete.assert_not_called()


def test_conversion_error_fails_the_job_with_the_sentence(tmp_path):
    h = Harness(tmp_path)
    h.encoder.convert.side_effect = ConversionError(NO_AUDIO)
    outcome, job = h.conversion.run()
    assert outcome == c.FAILED
    assert job.error == NO_AUDIO
    h.storage.fail.assert_called_once_with(JOB_ID, h.conversion.worker, NO_AUDIO)
    h.placed.finish.assert_not_called()
    h.storage.release.assert_not_called()
    # the upload's fault: its video is deleted at once (not kept for a requeue, not in the quota)
    h.storage.drop_video.assert_called_once_with(job)


def test_conversion_error_but_lease_lost_meanwhile_settles_nothing(tmp_path):
    h = Harness(tmp_path)
    h.encoder.convert.side_effect = ConversionError(NOT_MEDIA)
    h.storage.fail.side_effect = None
    h.storage.fail.return_value = None
    assert h.conversion.run() == (None, None)


def test_missing_video_fails_the_job(tmp_path):
    h = Harness(tmp_path)
    h.storage.open_video.return_value = None
    outcome, job = h.conversion.run()
    assert outcome == c.FAILED and "no longer stored" in job.error
    h.encoder.convert.assert_not_called()


@pytest.mark.parametrize("failing, error", [
    ("open_video", AutoReconnect("connection reset")),
    ("put", PyMongoError("no primary")),
    ("convert", OSError(28, "No space left on device")),
    ("convert", TransientError("disk")),
])
def test_transient_failure_releases_the_job_without_failing_it(tmp_path, failing, error):
    h = Harness(tmp_path)
    target = {"convert": h.encoder, "put": h.placed}.get(failing, h.storage)
    getattr(target, failing).side_effect = error
    if failing == "put":  # the chunks stored one by one while encoding, and those at the end
        h.placed.put_all.side_effect = error
    assert h.conversion.run() == (None, None)
    h.storage.fail.assert_not_called()
    h.storage.complete.assert_not_called()
    h.storage.release.assert_called_once_with(
        JOB_ID, h.conversion.worker, backoff(h.job.attempts), str(error))
    if failing == "put":
        h.placed.abort.assert_called_once_with()  # what was stored of the MP3 is gone
    h.placed.finish.assert_not_called()


def test_transient_failure_after_the_mp3_was_stored_deletes_it(tmp_path):
    h = Harness(tmp_path, job=make_job(attempts=3))
    h.storage.complete.side_effect = AutoReconnect("primary stepped down")
    assert h.conversion.run() == (None, None)
    h.placed.finish.assert_called_once_with(len(h.mp3))
    h.placed.abort.assert_called_once_with()
    h.storage.release.assert_called_once_with(
        JOB_ID, h.conversion.worker, backoff(3), "primary stepped down")
    h.storage.drop_video.assert_not_called()


def test_a_failure_once_the_job_is_done_leaves_its_mp3_and_outcome(tmp_path):
    """Deleting the converted video is the last step: MongoDB failing there (nx-27017 took longer
    than the socket timeout to delete a 1 GB video) once deleted the MP3 of a done job."""
    h = Harness(tmp_path)
    h.storage.drop_video.side_effect = AutoReconnect("timed out")
    outcome, job = h.conversion.run()
    assert outcome == c.DONE and job.mp3_id == h.mp3_id
    h.placed.finish.assert_called_once_with(len(h.mp3))
    h.placed.abort.assert_not_called()
    h.storage.release.assert_not_called()
    h.storage.fail.assert_not_called()


def test_release_failing_too_is_swallowed(tmp_path):
    h = Harness(tmp_path)
    h.storage.open_video.side_effect = AutoReconnect("down")
    h.storage.release.side_effect = AutoReconnect("still down")
    assert h.conversion.run() == (None, None)


def test_backoff_grows_and_is_capped():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(20) == 300 and backoff(0) == 5


@pytest.mark.parametrize("attempts", [6, 50])
def test_too_many_attempts_gives_up(tmp_path, attempts):
    h = Harness(tmp_path, job=make_job(attempts=attempts))
    outcome, job = h.conversion.run()
    assert outcome == c.FAILED
    assert job.error == GAVE_UP
    h.storage.fail.assert_called_once_with(JOB_ID, h.conversion.worker, GAVE_UP)
    h.encoder.convert.assert_not_called()
    h.storage.drop_video.assert_not_called()  # the system's fault: kept for an operator's requeue


def test_last_allowed_attempt_still_converts(tmp_path):
    h = Harness(tmp_path, job=make_job(attempts=5))
    assert h.conversion.run()[0] == c.DONE


def test_lease_lost_at_completion_deletes_the_committed_mp3(tmp_path):
    h = Harness(tmp_path)
    h.storage.complete.side_effect = None
    h.storage.complete.return_value = None  # another converter holds the job now
    assert h.conversion.run() == (None, None)
    h.placed.finish.assert_called_once_with(len(h.mp3))  # it was committed, and then deleted
    h.placed.abort.assert_called_once_with()
    h.storage.drop_video.assert_not_called()  # the new holder still needs it
    h.storage.fail.assert_not_called()
    h.storage.release.assert_not_called()


def test_lease_lost_while_storing_aborts_the_upload(tmp_path):
    h = Harness(tmp_path)
    convert = h.encoder.convert.side_effect

    def losing(*args, **kwargs):
        result = convert(*args, **kwargs)
        h.conversion.lost = True  # what the renewer does when renew_lease matches nothing
        assert kwargs["should_stop"]()
        return result
    h.encoder.convert.side_effect = losing
    assert h.conversion.run() == (None, None)
    h.placed.abort.assert_called_once_with()
    h.placed.finish.assert_not_called()
    h.storage.complete.assert_not_called()


def test_conversion_aborted_by_encoder_settles_nothing(tmp_path):
    h = Harness(tmp_path)
    h.encoder.convert.side_effect = ConversionAborted()
    assert h.conversion.run() == (None, None)
    h.storage.fail.assert_not_called()
    h.storage.release.assert_not_called()


def test_each_conversion_has_its_own_worker_id(tmp_path):
    a, b = Harness(tmp_path).conversion, Harness(tmp_path).conversion
    assert a.worker != b.worker
    assert a.worker.startswith(socket.gethostname())


# --- ConverterService -------------------------------------------------------------------------
SETTINGS = ConverterSettings.load(dict(config_defaults(), LEASE_SECONDS=30, MAX_ATTEMPTS=5))
PAYLOAD = {"job_id": JOB_ID, "video_id": str(ObjectId()), "owner": "me@example.com",
           "filename": "clip.mp4"}


def make_service(h):
    return worker_factory(ConverterService, jobs=h.storage, encoder=h.encoder,
                          dispatch=mock.Mock(name="dispatch"), settings=SETTINGS)


def test_handler_dispatches_mp3_ready_with_identifiers_only(tmp_path):
    h = Harness(tmp_path)
    service = make_service(h)
    assert service.handle_video_uploaded(dict(PAYLOAD)) is None
    service.dispatch.assert_called_once_with(c.MP3_READY, {
        "job_id": JOB_ID, "mp3_id": str(h.mp3_id), "owner": "me@example.com",
        "filename": "clip.mp4", "outcome_id": OUTCOME})
    payload = service.dispatch.call_args.args[1]
    assert all(isinstance(value, str) for value in payload.values())


def test_handler_dispatches_conversion_failed(tmp_path):
    h = Harness(tmp_path)
    h.encoder.convert.side_effect = ConversionError(NOT_MEDIA)
    service = make_service(h)
    service.handle_video_uploaded(dict(PAYLOAD))
    service.dispatch.assert_called_once_with(c.CONVERSION_FAILED, {
        "job_id": JOB_ID, "owner": "me@example.com", "filename": "clip.mp4", "error": NOT_MEDIA,
        "outcome_id": OUTCOME})


def test_handler_dispatches_nothing_when_not_claimed(tmp_path):
    h = Harness(tmp_path)
    h.storage.claim_next.return_value = None
    service = make_service(h)
    service.handle_video_uploaded(dict(PAYLOAD))
    service.dispatch.assert_not_called()


@pytest.mark.parametrize("where", ["claim", "convert", "dispatch", "payload"])
def test_handler_never_raises(tmp_path, where):
    h = Harness(tmp_path)
    service = make_service(h)
    payload = dict(PAYLOAD)
    if where == "claim":
        h.storage.claim_next.side_effect = RuntimeError("unexpected")
    elif where == "convert":
        h.encoder.convert.side_effect = ValueError("ffmpeg-python blew up")
    elif where == "dispatch":
        service.dispatch.side_effect = ConnectionError("broker away")
    else:
        payload = {"unexpected": "shape"}
    assert service.handle_video_uploaded(payload) is None
    if where == "dispatch":
        service.dispatch.assert_called_once()  # the job itself was settled before the dispatch
        h.storage.complete.assert_called_once()
    elif where != "payload":
        service.dispatch.assert_not_called()


def test_sweep_hands_due_jobs_to_the_queue_and_converts_nothing(tmp_path):
    """Issue 8: the sweeper used to run whole conversions inside nameko's timer (no sweeps while
    it converted, and on top of CONVERTER_WORKERS ffmpeg processes). It only re-dispatches now."""
    h = Harness(tmp_path)
    h.storage.due.return_value = [h.job]
    h.storage.take_due.return_value = True
    service = make_service(h)
    service.sweep()
    h.encoder.convert.assert_not_called()
    h.storage.claim_next.assert_not_called()
    service.dispatch.assert_not_called()
    service.redispatch.assert_called_once_with(c.GATEWAY, c.VIDEO_UPLOADED, {
        "job_id": JOB_ID, "video_id": str(h.job.video_id), "owner": "me@example.com",
        "filename": "clip.mp4"})


def test_sweep_skips_jobs_another_sweeper_took_and_never_raises(tmp_path):
    h = Harness(tmp_path)
    h.storage.due.return_value = [h.job]
    h.storage.take_due.return_value = False
    service = make_service(h)
    service.sweep()
    service.redispatch.assert_not_called()
    h.storage.due.side_effect = AutoReconnect("down")
    assert service.sweep() is None


@pytest.mark.parametrize("case", ["taken_over", "lost", "requeued", "another_sweeper"])
def test_sweep_announces_outcomes_notification_has_not_taken_over(tmp_path, case):
    """The outcome event may never have left (the converter died after finishing the job) or may
    have been lost: until notification's record names the outcome, it is announced again."""
    h = Harness(tmp_path)
    h.storage.due.return_value = []
    job = make_job(status=c.DONE, mp3_id=ObjectId(), outcome_id=OUTCOME,
                   notify_outcome=OUTCOME if case == "taken_over" else "an earlier outcome")
    if case == "requeued":
        job = dataclasses.replace(job, status=c.QUEUED)
    h.storage.unannounced.return_value = [job]
    h.storage.take_unannounced.return_value = case != "another_sweeper"
    service = make_service(h)
    service.sweep()
    if case in ("taken_over", "requeued"):
        h.storage.announced.assert_called_once_with(job)
        service.redispatch.assert_not_called()
    elif case == "lost":
        h.storage.announced.assert_not_called()
        service.redispatch.assert_called_once_with(c.CONVERTER, c.MP3_READY, {
            "job_id": JOB_ID, "mp3_id": str(job.mp3_id), "owner": "me@example.com",
            "filename": "clip.mp4", "outcome_id": OUTCOME})
    else:
        service.redispatch.assert_not_called()
    h.encoder.convert.assert_not_called()
    service.dispatch.assert_not_called()


def test_the_announcing_sweep_runs_even_when_the_due_sweep_fails(tmp_path):
    h = Harness(tmp_path)
    h.storage.due.side_effect = AutoReconnect("down")
    h.storage.unannounced.return_value = [make_job(status=c.FAILED, error="x", outcome_id=OUTCOME)]
    h.storage.take_unannounced.return_value = True
    service = make_service(h)
    assert service.sweep() is None
    assert service.redispatch.call_args.args[1] == c.CONVERSION_FAILED


# --- fair sharing ----------------------------------------------------------------------------
def test_fair_order_least_busy_then_served_longest_ago():
    import datetime
    from services.converter.fairness import order
    t0 = datetime.datetime(2026, 1, 1)
    served = {"a": t0 + datetime.timedelta(seconds=5), "b": t0}
    assert order(["a", "b", "c"], {}, served) == ["c", "b", "a"]      # never served first
    assert order(["d", "c"], {}, served) == ["d", "c"]                # then the oldest job's
    assert order(["a", "b", "c"], {"c": 1, "b": 1}, served) == ["a", "c", "b"]


def test_an_mp3_over_the_owners_quota_is_not_stored(tmp_path):
    h = Harness(tmp_path)
    h.conversion.quota = 5000
    h.storage.usage_after.side_effect = lambda job, size: 4000 + size   # 4000 held elsewhere
    outcome, job = h.conversion.run()
    assert outcome == c.FAILED and "quota of 5000 bytes" in job.error and "3000 bytes" in job.error
    h.storage.usage_after.assert_called_once_with(h.job, len(h.mp3))
    h.placed.finish.assert_not_called()
    h.placed.abort.assert_called_once_with()  # what was stored while it was encoded is gone
    h.storage.drop_video.assert_called_once()
    h.storage.usage_after.side_effect = lambda job, size: size           # nothing else held
    h2 = Harness(tmp_path)
    h2.conversion.quota = 5000
    assert h2.conversion.run()[0] == c.DONE


@pytest.mark.parametrize("fields, looked", [
    ({"size": 3000}, False),                       # the MP3 (3000 bytes) takes the video's place
    ({"size": 2999}, True),                        # bigger than its video: the owner's jobs count
    ({"size": None}, True),                        # the video's size unknown
    ({"size": 9000, "upload_open": True}, True),   # converted while it streamed in
])
def test_only_an_mp3_bigger_than_its_video_looks_at_the_owners_usage(tmp_path, fields, looked):
    h = Harness(tmp_path, job=make_job(**fields))
    h.conversion.quota = 5000
    h.storage.usage_after.side_effect = lambda job, size: 9000 + size    # over, were it looked at
    outcome, job = h.conversion.run()
    assert h.storage.usage_after.called == looked
    assert outcome == (c.FAILED if looked else c.DONE)
