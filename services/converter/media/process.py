"""The one place ffmpeg and ffprobe run: `Supervisor.run`.

Each process runs in its own session (killed as a group, and with its parent), its stdin fed from
storage by a green thread, its stdout and stderr drained by green threads into bounded buffers (or
stdout handed line by line to a callback: ffmpeg's -progress reports). The supervisor stops it when
the conversion's deadline passes or when `should_stop()` turns true.
"""
import dataclasses
import logging
import os
import signal
import time

import eventlet
from eventlet.green import subprocess

from services.common.utils import die_with_parent, kill_group
from services.converter.exceptions import ConversionAborted, TransientError
from services.converter.media import errors

log = logging.getLogger(__name__)

PIPE_BLOCK = 1024 * 1024
STDERR_KEEP = 4096
STDOUT_KEEP = 8 * 1024 * 1024  # ffprobe's JSON and a cover JPEG; anything bigger is cut


@dataclasses.dataclass(frozen=True)
class Exit:
    returncode: int
    errors: str    # the end of stderr (STDERR_KEEP bytes), decoded
    output: bytes  # the start of stdout (STDOUT_KEEP bytes); empty when read line by line


class Supervisor:
    """Runs the processes of one conversion, one at a time, under one deadline."""

    def __init__(self, timeout, should_stop=lambda: False, limits=None, idle=lambda: 0.0):
        self.timeout = timeout
        self.idle = idle  # seconds spent waiting for an upload still arriving: not counted
        self.limits = limits  # services.converter.limits.ChildLimits of every child, or None
        self.deadline = time.monotonic() + timeout
        self.should_stop = should_stop

    def run(self, argv, feed=None, on_line=None, on_fed=None):
        """Run argv until it exits and return its Exit. `feed`: a stored file (iter_range) piped
        into stdin, None for no stdin. `on_line` gets each stdout line instead of keeping it,
        `on_fed` the bytes piped so far after each block.
        Raises ConversionAborted (should_stop), ConversionError (past the deadline) or
        TransientError (reading `feed` from storage failed: the process is killed at once)."""
        log.debug("running %s", " ".join(argv))
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=self._preexec())
        stderr, stdout, failure = bytearray(), bytearray(), []
        feeder = eventlet.spawn(_feed, proc, feed, failure, on_fed) if feed is not None else None
        readers = [eventlet.spawn(_tail, proc.stderr, stderr),
                   eventlet.spawn(_lines, proc.stdout, on_line) if on_line
                   else eventlet.spawn(_head, proc.stdout, stdout)]
        try:
            self._wait(proc)
        finally:
            if proc.poll() is None:
                kill_group(proc)
            if feeder is not None:
                feeder.kill()
            for reader in readers:
                reader.wait()
        if failure and isinstance(failure[0], ConversionAborted):  # the upload was removed
            raise failure[0]
        if failure:
            raise TransientError(errors.STORAGE_FAILED % (failure[0],)) from failure[0]
        return Exit(proc.returncode, stderr.decode("utf-8", "replace"), bytes(stdout))

    def _preexec(self):
        """In the child before exec: die with the converter, and the resource limits."""
        if self.limits is None:
            return die_with_parent(signal.SIGKILL)
        return self.limits.preexec(die_with_parent(signal.SIGKILL))

    def _wait(self, proc):
        while True:
            try:
                proc.wait(timeout=0.5)  # green: polls every 10 ms without blocking the hub
                return
            except subprocess.TimeoutExpired:
                if self.should_stop():
                    raise ConversionAborted()
                if time.monotonic() - self.idle() > self.deadline:
                    raise errors.too_slow(self.timeout)


class Progress:
    """ffmpeg's -progress reports of one conversion as a rising fraction for `on_progress`."""

    def __init__(self, on_progress=None):
        self.on_progress = on_progress or (lambda fraction: None)
        self.reported = 0.0
        self.current = (0.0, 1.0)  # (offset, share) of the pass whose reader was made last
        self.out_time = 0.0  # seconds encoded, from ffmpeg's last report

    def report(self, fraction):
        fraction = min(1.0, max(0.0, fraction))
        if fraction > self.reported:
            self.reported = fraction
            try:
                self.on_progress(fraction)
            except Exception:  # a failed progress write must not stop us reading ffmpeg's stdout
                log.warning("progress callback failed", exc_info=True)

    def reader(self, span, offset, share):
        """An `on_line` for a pass over `span` seconds that covers [offset, offset + share]."""
        self.current = (offset, share)

        def on_line(line):
            key, _, value = line.partition(b"=")
            if key == b"out_time_us":
                try:
                    seconds = int(value) / 1e6
                except ValueError:
                    return
                self.out_time = seconds
                if span:
                    self.report(offset + share * min(1.0, seconds / span))
            elif key == b"progress" and value.strip() == b"end":
                self.report(offset + share)
        return on_line

    def fed(self, fraction):
        """The share of an upload still arriving that the current pass was fed: ffmpeg (5.1)
        reports nothing while it waits for input, so its progress is also told this way (capped
        short of the pass's end, which only ffmpeg's report reaches)."""
        offset, share = self.current
        self.report(offset + share * min(fraction, 0.99))


def _feed(proc, stored, failure, on_fed=None):
    """Pipes `stored` into proc's stdin. A storage error is ours, not the upload's: it is recorded
    in `failure` and the process killed at once, so the attempt ends now as a transient failure
    instead of ffmpeg waiting on an open stdin until the timeout. `stored` may be an upload still
    arriving (a GrowingFile, whose blocks come as they land)."""
    blocks = stored.iter_range(0, None, PIPE_BLOCK)
    fed = 0
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
        fed += len(block)
        if on_fed is not None:
            on_fed(fed)
    try:
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
        pass


def _tail(pipe, keep):
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


def _lines(pipe, on_line):
    for line in iter(pipe.readline, b""):
        on_line(line.strip()[:200])
