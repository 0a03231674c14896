"""ffmpeg and ffprobe on untrusted uploads: streamed through pipes, restricted to known demuxers.

One conversion: probe the upload (streams, duration, tags, chapters; refused here when too long),
measure its loudness when asked (first pass of EBU R128 loudnorm), encode (or copy an MP3 stream),
grab a cover picture, then write the ID3 tag with mutagen (services/converter/tags.py). Nothing from
the upload's metadata reaches a command line or a path: argv holds only numbers and our own names.
"""
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import shutil
import signal
import struct
import tempfile
import time

import eventlet
import ffmpeg
from eventlet.green import subprocess

from services.common.options import AUTO, NONE, SAMPLE_RATES, ConversionOptions
from services.common.utils import die_with_parent, kill_group
from services.converter import tags as id3
from services.converter.exceptions import ConversionError, TransientError

log = logging.getLogger(__name__)

# demuxers ffmpeg may use on uploads: video/audio containers only, no playlists (hls, concat),
# no image sequences, nothing that opens other files or URLs.
FORMAT_WHITELIST = ",".join([
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "mpegts",
    "mpeg", "ogg", "asf", "wav", "mp3", "aac", "flac", "dv",
])
PIPE_BLOCK = 1024 * 1024
STDERR_KEEP = 4096
STDOUT_KEEP = 8 * 1024 * 1024  # ffprobe's JSON and a cover JPEG; anything bigger is cut
MAX_CHAPTERS = 256
COVER_PX = 600
COVER_AT = 0.10  # a video frame at this fraction of the duration when the upload has no picture

# EBU R128 target (contract: -16 LUFS integrated). A wide loudness range and -1 dBTP let loudnorm
# apply one linear gain to most material; it falls back to its dynamic mode otherwise.
LOUDNESS = {"I": -16, "TP": -1.0, "LRA": 20}
SILENCE_LUFS = -70.0

NOT_MEDIA = "The file is not a video or audio format we can read."
NO_AUDIO = "The video has no audio track, so there is nothing to put in an MP3."
TRUNCATED = "The file is incomplete: it ends before its media does (was the upload cut short?)."
STORAGE_FAILED = "Reading the upload from storage failed (%s)."


@dataclasses.dataclass
class Result:
    duration: float       # seconds of the MP3
    size: int             # bytes of the MP3, tags included
    passthrough: bool = False   # the upload's MP3 audio was copied, not re-encoded
    normalized: str = ""  # loudnorm's mode ("linear" or "dynamic") when normalised


@dataclasses.dataclass
class MediaInfo:
    """What ffprobe told about the upload (all untrusted but the numbers)."""
    duration: float = 0.0
    audio: list = dataclasses.field(default_factory=list)  # [{"codec", "sample_rate", "channels"}]
    video: int = -1     # absolute index of the first real video stream, -1 when none
    picture: int = -1   # absolute index of an attached picture, -1 when none
    tags: dict = dataclasses.field(default_factory=dict)
    chapters: list = dataclasses.field(default_factory=list)  # [(start, end, title)]

    @classmethod
    def from_probe(cls, data):
        info = cls(duration=_number(data.get("format", {}).get("duration")))
        for stream in data.get("streams", []):
            kind, index = stream.get("codec_type"), stream.get("index")
            if not isinstance(index, int):
                continue
            if kind == "audio":
                info.audio.append({"codec": stream.get("codec_name"),
                                   "sample_rate": int(_number(stream.get("sample_rate"))),
                                   "channels": int(_number(stream.get("channels"))),
                                   "tags": stream.get("tags") or {}})
            elif kind == "video" and (stream.get("disposition") or {}).get("attached_pic"):
                info.picture = index if info.picture < 0 else info.picture
            elif kind == "video" and info.video < 0:
                info.video = index
        info.tags = id3.pick_tags(data.get("format", {}).get("tags") or {})
        for chapter in data.get("chapters", [])[:MAX_CHAPTERS]:
            info.chapters.append((_number(chapter.get("start_time")), _number(chapter.get("end_time")),
                                  (chapter.get("tags") or {}).get("title", "")))
        return info


class Encoder:
    def __init__(self, ffmpeg_bin="ffmpeg", ffprobe_bin="ffprobe", quality=2, timeout=1500,
                 max_duration=4 * 3600, tmp_dir=None, progress_period=1.0):
        self.progress_period = progress_period  # seconds between ffmpeg's -progress reports
        self.ffmpeg_bin = ffmpeg_bin
        self.ffprobe_bin = ffprobe_bin
        self.quality = quality
        self.timeout = timeout
        self.max_duration = max_duration
        self.tmp_dir = tmp_dir

    # -- commands ----------------------------------------------------------------------------------
    def _input(self, source, **kwargs):
        protocol = "pipe" if source == "pipe:0" else "file"
        return ffmpeg.input(source, format_whitelist=FORMAT_WHITELIST, protocol_whitelist=protocol,
                            **kwargs)

    def _compile(self, stream, *extra):
        return stream.global_args("-hide_banner", "-nostdin", "-nostats", *extra).overwrite_output() \
            .compile(cmd=self.ffmpeg_bin)

    def _audio(self, source, options):
        return self._input(source)["a:%d" % options.track]

    def _limits(self, options=None):
        """Output options: the trim and the caps. The trim is on the output side (ffmpeg inserts
        sample-accurate trim filters): an input-side seek on a pipe makes some demuxers (Matroska)
        read the whole input looking for an index and then fail."""
        limit = self.max_duration + 1
        kwargs = {"fs": int((self.max_duration + 60) * 40000)}
        if options is not None and options.start:
            kwargs["ss"] = options.start
        if options is not None and options.end is not None:
            limit = min(limit, round(options.end - (options.start or 0), 3))
        kwargs["t"] = limit
        return kwargs

    def command(self, source, target, options=None, info=None, loudness=None):
        """ffmpeg argv: the chosen audio only, to MP3 (VBR quality, CBR bitrate or a copy), capped in
        duration and size, with live progress on stdout and no tags (mutagen writes those)."""
        options = options or ConversionOptions()
        info = info or MediaInfo()
        audio = self._audio(source, options)
        kwargs = dict(self._limits(options), format="mp3", vn=None, sn=None, dn=None, map_metadata=-1,
                      map_chapters=-1, id3v2_version=0, write_id3v1=0)
        if self.copies(options, info):
            kwargs["acodec"] = "copy"
        else:
            kwargs["acodec"] = "libmp3lame"
            if options.bitrate:
                kwargs["b:a"] = "%dk" % options.bitrate
            else:
                kwargs["q:a"] = self.quality if options.quality is None else options.quality
            source_audio = info.audio[options.track] if options.track < len(info.audio) else {}
            rate = options.sample_rate or nearest_rate(source_audio.get("sample_rate"))
            if rate and (loudness or rate != source_audio.get("sample_rate")):
                kwargs["ar"] = rate
            if options.channels:
                kwargs["ac"] = options.channels
            elif source_audio.get("channels", 0) > 2:
                kwargs["ac"] = 2
            if loudness:
                audio = audio.filter("loudnorm", **loudnorm_args(loudness))
        return self._compile(audio.output(target, **kwargs), "-v", "error", *self._progress_args())

    def measure_command(self, source, options):
        """First loudnorm pass: measures the chosen audio, prints JSON on stderr (hence -v info)."""
        audio = self._audio(source, options).filter("loudnorm", print_format="json", **LOUDNESS)
        out = audio.output("-", format="null", vn=None, sn=None, dn=None, **self._limits(options))
        return self._compile(out, "-v", "info", *self._progress_args())

    def _progress_args(self):
        return ("-progress", "pipe:1", "-stats_period", "%g" % self.progress_period)

    def cover_command(self, source, stream_index, at=None, keyframes=False):
        """One JPEG of at most COVER_PX on stdout from stream `stream_index` (an int from the probe),
        at `at` seconds (output side, as for the trim). `keyframes` decodes key frames only: much
        faster on a pipe (everything before `at` is read anyway), but there may be none after `at`."""
        seek = {"ss": round(float(at), 3)} if at is not None else {}
        picture = self._input(source, **({"skip_frame": "nokey"} if keyframes else {}))
        picture = picture["%d" % int(stream_index)].filter(
            "scale", w="min(%d,iw)" % COVER_PX, h="min(%d,ih)" % COVER_PX,
            force_original_aspect_ratio="decrease")
        out = picture.output("pipe:1", format="image2pipe", vcodec="mjpeg", pix_fmt="yuvj420p",
                             **seek, **{"frames:v": 1, "q:v": 4, "an": None, "sn": None, "dn": None})
        return self._compile(out, "-v", "error")

    def probe_command(self, path, formats="mp3"):
        return [self.ffprobe_bin, "-v", "error", "-format_whitelist", formats,
                "-protocol_whitelist", "pipe" if path == "pipe:0" else "file",
                "-show_format", "-show_streams", "-show_chapters", "-of", "json", path]

    def copies(self, options, info):
        """Copy the stream when the chosen audio is MP3 already and no option changes the audio."""
        track = info.audio[options.track] if options.track < len(info.audio) else {}
        return track.get("codec") == "mp3" and not options.reencode

    # -- running ----------------------------------------------------------------------------------
    def convert(self, stored, target, options=None, should_stop=lambda: False, on_progress=None):
        """Convert the seekable `stored` file into the MP3 at `target` as `options` (the job's
        normalised options dict) ask; returns a Result.

        The upload is piped into ffmpeg. An MP4/MOV whose index (moov) follows the media data cannot
        be decoded from a pipe (ffmpeg then writes an empty MP3 and exits 0), so such files, and any
        pipe attempt that yields no audio, are spooled to a temporary file first.
        Raises ConversionError (the upload's fault, a sentence), TransientError (storage failed
        while reading the upload: retry) or ConversionAborted (should_stop() turned true).
        """
        options = ConversionOptions.model_validate(options or {})
        run = _Run(self, stored, should_stop, on_progress or (lambda fraction: None))
        if not needs_seeking(stored):
            result = run.convert("pipe:0", target, options)
            if result is not None:
                return result
        with spooled(stored, self.tmp_dir) as path:
            result = run.convert(path, target, options)
        if result is None:
            raise ConversionError("No audio could be decoded from the upload.")
        return result

    def _check_duration(self, duration):
        if duration > self.max_duration:
            raise ConversionError("The media is longer than the limit of %s." % hms(self.max_duration))
        return duration

    def duration(self, path):
        out = self._check_output(self.probe_command(path))
        try:
            info = json.loads(out or "{}")
            return float(info.get("format", {}).get("duration") or 0)
        except ValueError:
            return 0.0

    def _check_output(self, argv):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with eventlet.Timeout(60):
                out, _ = proc.communicate()
        except eventlet.Timeout:
            proc.kill()
            proc.wait()
            return ""
        return out.decode("utf-8", "replace") if proc.returncode == 0 else ""

    def _run(self, argv, stored, should_stop, deadline=None, on_line=None):
        """Runs argv fed with `stored` (None: no stdin) until it exits; returns (exit status,
        stderr tail, stdout head). `on_line` gets each stdout line instead of keeping it."""
        log.debug("running %s", " ".join(argv))
        deadline = deadline or time.monotonic() + self.timeout
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stored is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL))
        stderr, stdout, failure = bytearray(), bytearray(), []
        feeder = eventlet.spawn(_feed, proc, stored, failure) if stored is not None else None
        readers = [eventlet.spawn(_drain, proc.stderr, stderr),
                   eventlet.spawn(_read_lines, proc.stdout, on_line) if on_line
                   else eventlet.spawn(_head, proc.stdout, stdout)]
        try:
            while True:
                try:
                    proc.wait(timeout=0.5)  # green: polls every 10 ms without blocking the hub
                    break
                except subprocess.TimeoutExpired:
                    if should_stop():
                        raise ConversionAborted()
                    if time.monotonic() > deadline:
                        raise ConversionError("The conversion took longer than the limit of %s."
                                              % hms(self.timeout))
        finally:
            if proc.poll() is None:
                kill_group(proc)
            if feeder is not None:
                feeder.kill()
            for reader in readers:
                reader.wait()
        if failure:
            raise TransientError(STORAGE_FAILED % (failure[0],)) from failure[0]
        return proc.returncode, stderr.decode("utf-8", "replace"), bytes(stdout)

    def _check(self, returncode, errors):
        if returncode != 0:
            raise ConversionError(explain(errors))
        if "partial file" in errors:  # ffmpeg decodes what is there and exits 0
            raise ConversionError(TRUNCATED)


class _Run:
    """The steps of one conversion over one input (the pipe, or the spooled file)."""

    def __init__(self, encoder, stored, should_stop, on_progress):
        self.encoder = encoder
        self.stored = stored
        self.should_stop = should_stop
        self.on_progress = on_progress
        self.deadline = time.monotonic() + encoder.timeout
        self.reported = 0.0
        self.out_time = 0.0  # seconds encoded, from ffmpeg's last -progress report

    def _exec(self, argv, source, on_line=None):
        feed = self.stored if source == "pipe:0" else None
        if feed is not None:
            feed.seek(0)
        return self.encoder._run(argv, feed, self.should_stop, self.deadline, on_line)

    def convert(self, source, target, options):
        """The Result, or None when a pipe yielded no audio (the caller retries from a file)."""
        enc = self.encoder
        info = self.probe(source)
        if info.duration:
            enc._check_duration(info.duration)
        if info.audio and options.track >= len(info.audio):
            raise ConversionError("The upload has %d audio track(s): there is no audio_track %d."
                                  % (len(info.audio), options.track))
        if info.duration and (options.start or 0) >= info.duration:
            raise ConversionError("The trim starts at %s s, after the end of the media (%.3f s)."
                                  % (options.start, info.duration))
        span = expected_span(info.duration, options)
        loudness = None
        if options.normalize:
            loudness = self.measure(source, options, span)
        self.encode(enc.command(source, target, options, info, loudness), source, span,
                    0.5 if options.normalize else 0.0)
        probed = enc.duration(target)
        if probed <= 0:
            return None
        enc._check_duration(probed)
        # the MP3's frames hold the encoder's delay and padding (and the Xing frame) on top of the
        # audio; ffmpeg's last out_time is within one frame of what a player shows, and a trim is
        # sample-accurate, so the expected span is exact when the audio lasts that long
        duration = probed
        if 0 < self.out_time <= probed + 1:
            duration = round(min(self.out_time, span) if span else self.out_time, 3)
        picture = self.cover(source, info, options)
        frames = id3.frames_for(info.tags if options.with_tags else {},
                                info.chapters if options.with_tags else [], options, picture, duration)
        id3.write(target, frames)
        self.progress(1.0)
        return Result(duration=duration, size=os.path.getsize(target),
                      passthrough=enc.copies(options, info),
                      normalized=loudness.get("mode", "") if loudness else "")

    def probe(self, source):
        argv = self.encoder.probe_command(source, FORMAT_WHITELIST)
        returncode, errors, out = self._exec(argv, source)
        if returncode != 0:
            log.info("probe failed (%s); ffmpeg will tell why", errors.strip()[-200:])
            return MediaInfo()
        try:
            data = json.loads(out.decode("utf-8", "replace"))
        except ValueError:
            return MediaInfo()
        info = MediaInfo.from_probe(data)
        if not info.audio and data.get("streams"):
            raise ConversionError(NO_AUDIO)
        return info

    def measure(self, source, options, span):
        returncode, errors, _ = self._exec(self.encoder.measure_command(source, options), source,
                                           self._progress_reader(span, 0.0, 0.5))
        self.encoder._check(returncode, errors)
        measured = parse_loudnorm(errors)
        if measured is None or measured["input_i"] < SILENCE_LUFS:
            return None  # silence (or nothing measured): no gain to apply
        return measured

    def encode(self, argv, source, span, offset):
        returncode, errors, _ = self._exec(argv, source, self._progress_reader(span, offset, 1.0 - offset))
        self.encoder._check(returncode, errors)

    def cover(self, source, info, options):
        """JPEG bytes of the cover picture, or None."""
        choice = options.cover if options.cover is not None else AUTO
        if choice == NONE:
            return None
        if choice == AUTO and info.picture >= 0:
            index, at = info.picture, None
        elif info.video >= 0:
            index = info.video
            at = choice if choice != AUTO else round(info.duration * COVER_AT, 3)
            if info.duration and at >= info.duration:
                return None
        else:
            return None
        for keyframes in ([True, False] if at else [False]):
            argv = self.encoder.cover_command(source, index, at, keyframes)
            returncode, errors, out = self._exec(argv, source)
            if returncode == 0 and out.startswith(b"\xff\xd8"):
                return out
        log.info("no cover picture: %s", errors.strip()[-200:])
        return None

    def progress(self, fraction):
        fraction = min(1.0, max(0.0, fraction))
        if fraction > self.reported:
            self.reported = fraction
            try:
                self.on_progress(fraction)
            except Exception:  # a failed progress write must not stop us reading ffmpeg's stdout
                log.warning("progress callback failed", exc_info=True)

    def _progress_reader(self, span, offset, share):
        def on_line(line):
            key, _, value = line.partition(b"=")
            if key == b"out_time_us":
                try:
                    seconds = int(value) / 1e6
                except ValueError:
                    return
                self.out_time = seconds
                if span:
                    self.progress(offset + share * min(1.0, seconds / span))
            elif key == b"progress" and value.strip() == b"end":
                self.progress(offset + share)
        return on_line


class ConversionAborted(Exception):
    pass


def expected_span(duration, options):
    """Seconds of audio the MP3 will hold (0 when unknown), for progress fractions."""
    end = options.end if options.end is not None else duration
    if duration:
        end = min(end, duration)
    return max(0.0, (end or 0.0) - (options.start or 0.0))


def nearest_rate(rate):
    if not rate:
        return None
    return min(SAMPLE_RATES, key=lambda candidate: (abs(candidate - rate), -candidate))


def parse_loudnorm(stderr):
    """loudnorm's print_format=json block from the end of ffmpeg's stderr, numbers as floats."""
    start, end = stderr.rfind("{"), stderr.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(stderr[start:end + 1])
        measured = {key: float(data[key]) for key in
                    ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")}
    except (ValueError, KeyError, TypeError):
        return None
    if not all(math.isfinite(value) for value in measured.values()):
        return None
    return measured


def loudnorm_args(measured):
    args = dict(LOUDNESS, measured_I=measured["input_i"], measured_TP=measured["input_tp"],
                measured_LRA=measured["input_lra"], measured_thresh=measured["input_thresh"],
                offset=measured["target_offset"], linear="true", print_format="none")
    # the mode loudnorm will pick (its own rule): linear when the gain keeps the true peak under TP
    gain = LOUDNESS["I"] - measured["input_i"]
    linear = measured["input_tp"] + gain <= LOUDNESS["TP"] and measured["input_lra"] <= LOUDNESS["LRA"]
    measured["mode"] = "linear" if linear else "dynamic"
    return args


@contextlib.contextmanager
def temp_path(directory, suffix="", prefix="tmp"):
    """A temporary file's path, removed on exit whatever happened."""
    fd, path = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=directory)
    os.close(fd)
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


@contextlib.contextmanager
def spooled(stored, directory):
    """The stored file copied to a local temporary file, for inputs that need seeking."""
    with temp_path(directory, prefix="upload-") as path:
        with open(path, "wb") as out:
            try:
                for block in stored.iter_range(0, None, PIPE_BLOCK):
                    out.write(block)
                    eventlet.sleep(0)
            except OSError:
                raise
            except Exception as exc:  # the storage's error (pymongo, gridfs): ours, retried
                raise TransientError(STORAGE_FAILED % (exc,)) from exc
        yield path


def _feed(proc, stored, failure):
    """Pipes `stored` into proc's stdin. A storage error is ours, not the upload's: it is recorded
    in `failure` and ffmpeg killed at once, so the attempt ends now as a transient failure instead
    of ffmpeg waiting on an open stdin until the timeout."""
    blocks = stored.iter_range(0, None, PIPE_BLOCK)
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            break
        except Exception as exc:  # pymongo's AutoReconnect, a missing GridFS chunk, ...
            failure.append(exc)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            return
        try:
            proc.stdin.write(block)
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
            return  # ffmpeg stopped reading: it failed, hit a cap or has what it needs
    try:
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
        pass


def _drain(pipe, keep):
    while True:
        data = pipe.read(65536)
        if not data:
            return
        keep.extend(data)
        del keep[:-STDERR_KEEP]


def _head(pipe, keep):
    while True:
        data = pipe.read(65536)
        if not data:
            return
        if len(keep) < STDOUT_KEEP:
            keep.extend(data[:STDOUT_KEEP - len(keep)])


def _read_lines(pipe, on_line):
    for line in iter(pipe.readline, b""):
        on_line(line.strip()[:200])


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number >= 0 else 0.0


def explain(stderr):
    """A sentence for a person from ffmpeg's error output."""
    text = stderr.lower()
    if "matches no streams" in text or "does not contain any stream" in text \
            or "output file #0 does not contain" in text:
        return NO_AUDIO
    if ("invalid data found" in text or "whitelist" in text or "invalid argument" in text
            or "could not find codec parameters" in text or "moov atom not found" in text
            or "unknown format" in text):
        return NOT_MEDIA
    last = [line for line in stderr.strip().splitlines() if line.strip()][-1:]
    detail = re.sub(r"\s+", " ", last[0])[:200] if last else "unknown error"
    detail = re.sub(r"(/[^\s:/]+)+/?", "<file>", detail)  # no server paths in a user's email
    return "The media could not be converted (%s)." % detail


def needs_seeking(stored):
    """True for an MP4/MOV whose moov box comes after its mdat (not decodable from a pipe)."""
    head = stored.read(12) if stored.seek(0) == 0 else b""
    if len(head) < 8 or head[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return False
    position = 0
    for _ in range(1000):
        stored.seek(position)
        header = stored.read(16)
        if len(header) < 8:
            return True  # no moov at all: let the file path produce the error
        size, kind = struct.unpack(">I4s", header[:8])
        if size == 1 and len(header) == 16:
            size = struct.unpack(">Q", header[8:16])[0]
        if kind == b"moov":
            return False
        if kind == b"mdat" or size == 0:
            return True
        if size < 8:
            return True
        position += size
    return True


def hms(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return "%d h %02d min" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%d min" % (seconds // 60)
    return "%d s" % seconds


def which(binary):
    return shutil.which(binary) or binary
