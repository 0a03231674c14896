"""The one place ffmpeg and ffprobe run: `Supervisor.run` (the processes it runs are started by
`spawn`, here or ahead of the conversion by media/warm.py).

Each process runs in its own session (killed as a group), under the resource limits and killed
with the converter (limits.confined), its stdin fed from storage by a green thread (feed.py), its
stdout and stderr drained by green threads into bounded buffers (or stdout handed line by line to a
callback: ffmpeg's -progress reports, progress.py). The supervisor stops it when the conversion's
deadline passes or when `should_stop()` turns true.
"""
import contextlib
import dataclasses
import logging
import os
import time

import eventlet
from eventlet.event import Event
from eventlet.green import subprocess

from services.common.utils import kill_group
from services.converter.exceptions import ConversionAborted, ConversionError, TransientError
from services.converter.limits import confined
from services.converter.media import errors
from services.converter.media.boxes import NotPipeable
from services.converter.media.feed import Feeder, widen

log = logging.getLogger(__name__)

STDERR_KEEP = 4096
STDOUT_KEEP = 8 * 1024 * 1024  # ffprobe's JSON and a cover JPEG; anything bigger is cut
EXIT_WAIT = 0.01  # seconds between looks at a running process (see _Child.wait)
EXIT_POLL = 0.001  # the same once its pipes are closed: it is exiting
SIDE_GRACE = 5  # seconds a process beside the main one may run on after it: then it is killed


@dataclasses.dataclass(frozen=True)
class Exit:
    returncode: int
    errors: str    # the end of stderr (STDERR_KEEP bytes), decoded
    output: bytes  # the start of stdout (STDOUT_KEEP bytes); empty when read line by line
    beside: "Exit" = None  # the process run beside this one over the same input, if any
    cut: bool = False  # it was fed no more (it fell behind) or killed: it may not have seen all


class Overruled(Exception):
    """Raised by an `on_beside` callback of Supervisor.run when what the process beside told makes
    the main one pointless (it runs on a guess that proved wrong): the run ends, every process
    killed, and raises it. `args` are the callback's."""


class Supervisor:
    """Runs the processes of one conversion under one deadline: one pass after another, each
    pass one process (and at most one beside it over the same input)."""

    def __init__(self, timeout, should_stop=lambda: False, limits=None, idle=lambda: 0.0,
                 warm=None):
        self.timeout = timeout
        self.warm = warm  # warm.Warm: processes started ahead, taken when one has the argv run
        self.idle = idle  # seconds spent waiting for an upload still arriving: not counted
        self.limits = limits  # services.converter.limits.ChildLimits of every child, or None
        self.deadline = time.monotonic() + timeout
        self.should_stop = should_stop

    def run(self, argv, feed=None, on_line=None, on_fed=None, beside=None, on_beside=None):
        """Run argv until it exits and return its Exit. `feed`: a stored file (iter_range) piped
        into stdin, None for no stdin. `on_line` gets each stdout line instead of keeping it,
        `on_fed` the bytes piped so far after each block. `beside`: the argv of a second process
        over the same input, started with this one and fed the same blocks for as long as it
        reads (it may stop early: a cover frame), so the input is read once and both use the two
        cores; its Exit is the result's `beside`, also given to `on_beside` as soon as it ends
        while the main one still runs.
        `on_beside` may answer with (argv, on_exit): a process to start beside the main one, over
        the input from its start (the blocks fed so far are fed to it again, up to SIDE_BACKLOG of
        them: when more were, or the main one has ended, it is not started; one such process per
        run), whose Exit goes to `on_exit` in turn. It may raise ConversionError or Overruled: the
        run ends and raises it.
        Raises ConversionAborted (should_stop), ConversionError (past the deadline),
        TransientError (reading `feed` from storage failed: the processes are killed at once) or
        NotPipeable (the feed is a boxes.Piped that cannot be: the same)."""
        children = [_Child(argv, feed is not None, on_line, self.limits, warm=self.warm)]
        if beside is not None:
            try:
                children.append(_Child(beside, feed is not None, None, self.limits, idle=True,
                                       warm=self.warm))
            except BaseException:  # no process to be had (EAGAIN, EMFILE): none is left running
                children[0].close()
                children[0].drain()
                raise
        failure, ended = [], []
        feeder = Feeder(children, feed, failure, on_fed, replay=on_beside is not None) \
            if feed is not None else None

        def watch(child, on_exit):
            """on_exit gets child's Exit once it ended with all its output read; what it answers
            is started beside the main one, what it raises ends the run."""
            child.wait()
            child.drain()
            try:
                later = on_exit(child.exit())
            except (ConversionError, Overruled) as exc:
                ended.append(exc)
                for each in children:
                    each.close()
                return
            except Exception:  # the caller's business; the conversion goes on without it
                log.warning("on_beside failed", exc_info=True)
                return
            if later is not None and children[0].proc.poll() is None and \
                    (feeder is None or feeder.fed is not None):
                side_argv, then = later
                try:
                    side = _Child(side_argv, feed is not None, None, self.limits, idle=True)
                except OSError:  # no process to be had (EAGAIN, EMFILE): the main one goes on
                    log.warning("could not start %s", side_argv[0], exc_info=True)
                    return
                if feeder is not None and not feeder.join(side):  # more fed while it started
                    side.close()
                    side.drain()
                    return
                side.watcher = eventlet.spawn(watch, side, then)
                children.append(side)
        if on_beside and beside:
            children[1].watcher = eventlet.spawn(watch, children[1], on_beside)
        try:
            self._wait(children[0])
            waited = 1
            while waited < len(children):  # they had the whole input too: done, or stuck
                batch = children[waited:]
                waited += len(batch)
                for child in batch:
                    if self._wait(child, until=time.monotonic() + SIDE_GRACE):
                        child.cut = True
                for child in batch:  # ended: their callbacks may start one more
                    if child.watcher is not None:
                        self._join(child.watcher)
        finally:
            for child in children:
                if child.watcher is not None:
                    child.watcher.kill()
                child.close()
            if feeder is not None:
                feeder.kill()
            for child in children:
                child.drain()
        # the feed's failure first: what the processes it killed told (ended) is beside the point
        if failure and isinstance(failure[0], (ConversionAborted, NotPipeable)):  # the upload was
            raise failure[0]                                # removed, or must be spooled
        if failure:
            raise TransientError(errors.STORAGE_FAILED % (failure[0],)) from failure[0]
        if ended:
            raise ended[0]
        main = children[0].exit()
        if beside is not None:
            main = dataclasses.replace(main, beside=children[1].exit())
        return main

    def _wait(self, child, until=None):
        """Until the child exits (or, with `until`, that monotonic time passes: it is then killed,
        and True returned)."""
        while True:
            try:
                child.wait(timeout=0.5)
                return False
            except subprocess.TimeoutExpired:
                if until is not None and time.monotonic() > until:
                    kill_group(child.proc)
                    return True
                self._check()

    def _join(self, thread):
        """Until the green thread ends (a callback given an Exit), under the same deadline."""
        while not thread.dead:
            with eventlet.Timeout(0.5, False):
                thread.wait()
            if not thread.dead:
                self._check()

    def _check(self):
        if self.should_stop():
            raise ConversionAborted()
        if time.monotonic() - self.idle() > self.deadline:
            raise errors.too_slow(self.timeout)


class _Child:
    """One process of Supervisor.run: its stdout and stderr drained by green threads into bounded
    buffers (or stdout handed line by line to `on_line`). One beside the main one (`idle`) runs
    under SCHED_IDLE: it takes the CPU the main one leaves. (On two cores the probe's and the
    cover's 0.2 s of CPU, with the converter and MongoDB feeding ffmpeg, had the encoding wait
    for a core 31-154 ms of a 1-minute conversion; 23-34 ms since, and jobs per minute with both
    cores busy the same: docs/performance.md.)"""

    def __init__(self, argv, piped, on_line, limits, idle=False, warm=None):
        log.debug("running %s", " ".join(argv))
        self.proc = (warm.take(argv, piped, idle) if warm is not None else None) or \
            spawn(argv, piped, limits, idle)
        self.stderr, self.stdout = bytearray(), bytearray()
        self.watcher = None  # the green thread that gives its Exit to a callback, if any
        self.cut = False  # fed no more, or killed, before it ended on its own
        self.readers = [eventlet.spawn(_tail, self.proc.stderr, self.stderr),
                        eventlet.spawn(_lines, self.proc.stdout, on_line) if on_line
                        else eventlet.spawn(_head, self.proc.stdout, self.stdout)]
        self.closed = Event()  # sent once every reader reached its pipe's end
        self._open_pipes = len(self.readers)
        for reader in self.readers:
            reader.link(self._pipe_closed)

    def wait(self, timeout=None):
        """Its exit status once it exited, and whatever it left running killed (its group: a
        process holding its pipes, say); raises subprocess.TimeoutExpired after `timeout` seconds.
        Its stdout and stderr reach their end as it exits: until then it is looked at every
        EXIT_WAIT (as the green Popen.wait does), from then on every EXIT_POLL. (The end of every
        conversion waited 5 ms on average, up to 10, for Popen.wait's next look.)"""
        end = None if timeout is None else time.monotonic() + timeout
        while self.proc.returncode is None:
            if _exited(self.proc.pid):  # not reaped yet, so its group id is not anyone else's
                kill_group(self.proc)    # and reaped
                break
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.proc.args, timeout)
            if self.closed.ready():
                eventlet.sleep(EXIT_POLL)
            else:
                self.closed.wait(EXIT_WAIT if left is None else min(EXIT_WAIT, left))
        return self.proc.returncode

    def _pipe_closed(self, _reader):
        self._open_pipes -= 1
        if self._open_pipes == 0:
            self.closed.send()

    def close(self):
        """Kill it (its whole group) when it still runs."""
        if self.proc.poll() is None:
            kill_group(self.proc)

    def drain(self):
        for reader in self.readers:
            reader.wait()

    def exit(self):
        return Exit(self.proc.returncode, self.stderr.decode("utf-8", "replace"), bytes(self.stdout),
                    cut=self.cut)


def spawn(argv, piped, limits, idle=False):
    """The Popen of argv in its own session, under `limits`, its stdin a pipe when `piped` (else
    /dev/null), its stdout and stderr pipes. `idle`: under SCHED_IDLE (a process beside the main
    one)."""
    argv, preexec_fn = confined(argv, limits)
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=preexec_fn)
    if idle:  # set before ffmpeg starts its threads (they inherit it): it is still loading
        with contextlib.suppress(OSError):  # it has exited already
            os.sched_setscheduler(proc.pid, os.SCHED_IDLE, os.sched_param(0))
    if piped:
        widen(proc.stdin)
    return proc


def _exited(pid):
    """True once the child `pid` exited, leaving it to be reaped (a zombie until then)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already
        return True


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
