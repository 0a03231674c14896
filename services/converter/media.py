"""ffmpeg and ffprobe on untrusted uploads: streamed through pipes, restricted to known demuxers."""
import contextlib
import json
import logging
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

from services.common.utils import die_with_parent
from services.converter.exceptions import ConversionError

log = logging.getLogger(__name__)

# demuxers ffmpeg may use on uploads: video/audio containers only, no playlists (hls, concat),
# no image sequences, nothing that opens other files or URLs.
FORMAT_WHITELIST = ",".join([
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "mpegts",
    "mpeg", "ogg", "asf", "wav", "mp3", "aac", "flac", "dv",
])
PIPE_BLOCK = 1024 * 1024
STDERR_KEEP = 4096

NOT_MEDIA = "The file is not a video or audio format we can read."
NO_AUDIO = "The video has no audio track, so there is nothing to put in an MP3."
TRUNCATED = "The file is incomplete: it ends before its media does (was the upload cut short?)."


class Encoder:
    def __init__(self, ffmpeg_bin="ffmpeg", ffprobe_bin="ffprobe", quality=2, timeout=1500,
                 max_duration=4 * 3600, tmp_dir=None):
        self.ffmpeg_bin = ffmpeg_bin
        self.ffprobe_bin = ffprobe_bin
        self.quality = quality
        self.timeout = timeout
        self.max_duration = max_duration
        self.tmp_dir = tmp_dir

    # -- commands ----------------------------------------------------------------------------------
    def command(self, source, target):
        """ffmpeg argv: audio only, libmp3lame VBR, capped in duration and size."""
        protocol = "pipe" if source == "pipe:0" else "file"
        stream = ffmpeg.input(source, format_whitelist=FORMAT_WHITELIST,
                              protocol_whitelist=protocol)
        stream = stream.output(
            target, format="mp3", acodec="libmp3lame", map="0:a:0", vn=None, sn=None, dn=None,
            t=self.max_duration + 1, fs=int((self.max_duration + 60) * 40000),
            **{"q:a": self.quality, "map_metadata": -1})
        return stream.global_args("-hide_banner", "-nostdin", "-v", "error").overwrite_output() \
            .compile(cmd=self.ffmpeg_bin)

    def probe_command(self, path, formats="mp3"):
        return [self.ffprobe_bin, "-v", "error", "-format_whitelist", formats,
                "-protocol_whitelist", "file", "-show_entries", "format=duration:stream=codec_type",
                "-of", "json", path]

    # -- running ----------------------------------------------------------------------------------
    def convert(self, stored, target, should_stop=lambda: False):
        """Convert the seekable `stored` file into the MP3 at `target`; returns its duration.

        The upload is piped into ffmpeg. An MP4/MOV whose index (moov) follows the media data cannot
        be decoded from a pipe (ffmpeg then writes an empty MP3 and exits 0), so such files, and any
        pipe attempt that yields no audio, are spooled to a temporary file first.
        """
        if not needs_seeking(stored):
            stored.seek(0)
            self._run(self.command("pipe:0", target), stored, should_stop)
            duration = self.duration(target)
            if duration > 0:
                return self._check_duration(duration)
        with spooled(stored, self.tmp_dir) as path:
            self._run(self.command(path, target), None, should_stop)
            duration = self.duration(target)
        if duration <= 0:
            raise ConversionError("No audio could be decoded from the upload.")
        return self._check_duration(duration)

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

    def _run(self, argv, stored, should_stop):
        log.debug("running %s", " ".join(argv))
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stored is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL))
        stderr = bytearray()
        feeder = eventlet.spawn(_feed, proc, stored) if stored is not None else None
        reader = eventlet.spawn(_drain, proc.stderr, stderr)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    proc.wait(timeout=1)  # green: polls every 10 ms without blocking the hub
                    break
                except subprocess.TimeoutExpired:
                    if should_stop():
                        raise ConversionAborted()
                    if time.monotonic() > deadline:
                        raise ConversionError("The conversion took longer than the limit of %s."
                                              % hms(self.timeout))
        finally:
            if proc.poll() is None:
                _kill(proc)
            if feeder is not None:
                feeder.kill()
            reader.wait()
        errors = stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise ConversionError(explain(errors))
        if "partial file" in errors:  # ffmpeg decodes what is there and exits 0
            raise ConversionError(TRUNCATED)


class ConversionAborted(Exception):
    pass


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
            for block in stored.iter_range(0, None, PIPE_BLOCK):
                out.write(block)
                eventlet.sleep(0)
        yield path


def _feed(proc, stored):
    try:
        for block in stored.iter_range(0, None, PIPE_BLOCK):
            proc.stdin.write(block)
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
        pass  # ffmpeg stopped reading: it failed or hit a cap; its exit status tells


def _drain(pipe, keep):
    while True:
        data = pipe.read(65536)
        if not data:
            return
        keep.extend(data)
        del keep[:-STDERR_KEEP]


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


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
