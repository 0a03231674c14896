"""ffmpeg's start out of a conversion's time: the processes of the most common conversion, started
ahead and waiting on their stdin.

ffmpeg and ffprobe each load some 200 shared libraries before they read a byte: 60-80 ms of CPU,
paid by every conversion, where a 1-minute video encodes in about 0.6 s (docs/performance.md). The
conversion with the default options, fed through a pipe, runs the same two argvs every time but for
the MP3's path: the encoding `args.encode(PIPE, path)` and the probe beside it. So the converter
keeps one of each started, blocked on reading their stdin, and a conversion whose argv is one of
them takes that process instead of starting its own (`take`, from process._Child). The encoding's
path is handed out with it (`target`): a conversion with other options runs its own ffmpeg on that
path, and the waiting one is killed, unfed, as that one starts; none is started again until a
conversion runs the default encoding (on a path of its own), so a run of conversions with other
options does not start and kill an ffmpeg each (60-80 ms of CPU taken from the others). What was
taken is started again once the conversion has settled (`refill`, when the container starts too),
off its time. Nothing else changes: the same argv, the same limits, the same session and
scheduling as a process started for the conversion (process.spawn). Memory: an ffmpeg waiting
holds about 9 MB of its own (47 MB resident, the rest Debian's libraries, shared).
"""
import contextlib
import logging
import os
import signal
import tempfile

import eventlet

from services.converter.media import args
from services.converter.media.process import spawn
from services.converter.media.tempfiles import temp_path

log = logging.getLogger(__name__)


class Warm:
    def __init__(self, tools, limits, tmp_dir):
        self.tools, self.limits, self.tmp_dir = tools, limits, tmp_dir
        self.ready = {}   # (argv, piped, idle) -> Popen, waiting on its stdin
        self.path = None  # the waiting encoding's MP3, not handed out yet
        self.handed = set()  # the paths of the conversions running, until their first encoding
        self.wanted = True  # an encoding waits: the last conversion ran the default one
        self.starting = set()  # keys of the processes being started
        self.closed = False

    def refill(self):
        """Start what is not waiting: the probe, and the encoding with a path of its own while the
        conversions run it. Best effort: a process that cannot be started is started by the
        conversion that runs it."""
        if self.closed:
            return
        if self.path is None and self.wanted:
            try:
                fd, path = tempfile.mkstemp(prefix="warm-", suffix=".mp3", dir=self.tmp_dir)
                os.close(fd)
                self.path = path
                self._start(self._encoding(path), idle=False)
            except Exception:
                log.warning("could not start an encoding ahead", exc_info=True)
        try:
            self._start(args.probe(self.tools, args.PIPE, args.FORMAT_WHITELIST), idle=True)
        except Exception:
            log.warning("could not start a probe ahead", exc_info=True)

    def _encoding(self, path):
        return args.encode(self.tools, args.PIPE, path)

    def _start(self, argv, idle):
        key = _key(argv, True, idle)
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
        """The waiting process started with argv (piped, idle), or None. A conversion's first
        encoding (the argv with its path) tells whether an encoding is worth keeping waiting; one
        unlike the waiting one's leaves that one unfed: it is killed at once."""
        for path in self.handed.intersection(argv):
            self.handed.discard(path)
            waiting = self._encoding(path)
            self.wanted = list(argv) == waiting
            if not self.wanted:
                _release(self.ready.pop(_key(waiting, True, False), None))
        proc = self.ready.pop(_key(argv, piped, idle), None)
        if proc is not None and proc.poll() is not None:  # died waiting: the caller starts one
            log.warning("%s started ahead had ended (%s)", argv[0], proc.returncode)
            _release(proc)
            return None
        return proc

    @contextlib.contextmanager
    def target(self):
        """A path for one conversion's MP3, removed on exit: the waiting encoding's, which it takes
        if it runs that argv (else that process is killed, never fed), or a new one."""
        path, self.path = self.path, None
        with contextlib.ExitStack() as stack:
            if path is None:
                path = stack.enter_context(temp_path(self.tmp_dir, suffix=".mp3"))
            else:
                stack.callback(_unlink, path)
                stack.callback(lambda: _release(self.ready.pop(
                    _key(self._encoding(path), True, False), None)))
            self.handed.add(path)
            stack.callback(self.handed.discard, path)
            yield path

    def close(self):
        """Kill every waiting process and remove the waiting encoding's path; start none again."""
        self.closed = True
        while self.ready:
            _release(self.ready.popitem()[1])
        if self.path is not None:
            _unlink(self.path)
            self.path = None


def _key(argv, piped, idle):
    return tuple(argv), piped, idle


def _unlink(path):
    with contextlib.suppress(OSError):
        os.unlink(path)


def _release(proc):
    """Kill a process never fed (its session); reaped and its pipes closed in the background."""
    if proc is None:
        return
    if proc.returncode is None:  # not reaped: its pid (and group) is still its own
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    eventlet.spawn_n(_reap, proc)


def _reap(proc):
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
