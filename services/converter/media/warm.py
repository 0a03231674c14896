"""ffmpeg's start out of a conversion's time: the processes of the most common conversion, started
ahead and waiting on their stdin.

ffmpeg and ffprobe each load some 200 shared libraries before they read a byte: 60-80 ms of CPU,
paid by every conversion, where a 1-minute video encodes in about 0.6 s (docs/performance.md). The
conversion with the default options, fed through a pipe, runs the same two argvs every time but for
the MP3's path: the encoding `args.encode(PIPE, path)` and the probe beside it. So the converter
keeps one of each started, blocked on reading their stdin, and a conversion whose argv is one of
them takes that process instead of starting its own (`take`, from process._Child). The encoding's
path is handed out with it (`target`): a conversion with other options runs its own ffmpeg on that
path and the waiting one is killed, unfed. What was taken is started again once the conversion has
settled (`refill`), off its time. Nothing else changes: the same argv, the same limits, the same
session and scheduling as a process started for the conversion (process.spawn).
"""
import contextlib
import logging
import os
import signal
import tempfile

import eventlet

from services.common.utils import kill_group
from services.converter.media import args
from services.converter.media.process import spawn
from services.converter.media.tempfiles import temp_path

log = logging.getLogger(__name__)


class Warm:
    def __init__(self, tools, limits, tmp_dir):
        self.tools, self.limits, self.tmp_dir = tools, limits, tmp_dir
        self.ready = {}   # (argv, piped, idle) -> Popen, waiting on its stdin
        self.path = None  # the waiting encoding's MP3, not handed out yet
        self.starting = set()  # keys of the processes being started
        self.closed = False

    def refill(self):
        """Start what is not waiting: the probe, and the encoding with a path of its own. Best
        effort: a process that cannot be started is started by the conversion that runs it."""
        if self.closed:
            return
        try:
            if self.path is None:
                fd, path = tempfile.mkstemp(prefix="warm-", suffix=".mp3", dir=self.tmp_dir)
                os.close(fd)
                self.path = path
                self._start(args.encode(self.tools, args.PIPE, path), idle=False)
            self._start(args.probe(self.tools, args.PIPE, args.FORMAT_WHITELIST), idle=True)
        except OSError:
            log.warning("could not start a process ahead", exc_info=True)

    def _start(self, argv, idle):
        key = (tuple(argv), True, idle)
        if key in self.ready or key in self.starting:  # (Popen may yield to another refill)
            return
        self.starting.add(key)
        try:
            proc = spawn(argv, True, self.limits, idle)
        finally:
            self.starting.discard(key)
        if self.closed or (not idle and self.path not in argv):  # closed, or its path handed out
            _release(proc)
        else:
            self.ready[key] = proc

    def take(self, argv, piped, idle):
        """The waiting process started with argv (piped, idle), or None."""
        proc = self.ready.pop((tuple(argv), piped, idle), None)
        if proc is not None and proc.poll() is not None:  # died waiting: the caller starts one
            log.warning("%s started ahead had ended (%s)", argv[0], proc.returncode)
            _release(proc)
            return None
        return proc

    @contextlib.contextmanager
    def target(self):
        """A path for one conversion's MP3, removed on exit: the waiting encoding's, which it takes
        if it runs that argv (else that process is killed on exit, never fed), or a new one."""
        path, self.path = self.path, None
        if path is None:
            with temp_path(self.tmp_dir, suffix=".mp3") as path:
                yield path
            return
        try:
            yield path
        finally:
            _release(self.ready.pop((tuple(args.encode(self.tools, args.PIPE, path)), True, False),
                     None))
            with contextlib.suppress(OSError):
                os.unlink(path)

    def close(self):
        """Kill every waiting process and remove the waiting encoding's path; start none again."""
        self.closed = True
        while self.ready:
            _release(self.ready.popitem()[1])
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


def _release(proc):
    """Kill a process never fed (its session); reaped and its pipes closed in the background."""
    if proc is None:
        return
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    eventlet.spawn_n(_reap, proc)


def _reap(proc):
    kill_group(proc)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
