"""The one place ffmpeg and ffprobe run: `Supervisor.run`.

Each process runs in its own session (killed as a group, and with its parent), its stdin fed from
storage by a green thread, its stdout and stderr drained by green threads into bounded buffers (or
stdout handed line by line to a callback: ffmpeg's -progress reports). The supervisor stops it when
the conversion's deadline passes or when `should_stop()` turns true.
"""
import dataclasses
import fcntl
import logging
import signal
import time

import eventlet
import eventlet.hubs
import eventlet.queue
from eventlet import patcher
from eventlet.green import subprocess

from services.common.utils import die_with_parent, kill_group
from services.converter.exceptions import ConversionAborted, ConversionError, TransientError
from services.converter.media import errors

log = logging.getLogger(__name__)

PIPE_BLOCK = 1024 * 1024
STDERR_KEEP = 4096
STDOUT_KEEP = 8 * 1024 * 1024  # ffprobe's JSON and a cover JPEG; anything bigger is cut
SIDE_BACKLOG = 8  # blocks a process beside the main one may fall behind before it is fed no more
SIDE_GRACE = 5  # seconds a process beside the main one may run on after it: then it is killed
READ_AHEAD = 4  # blocks read from storage ahead of the one being piped
PIPE_SIZE = 1024 * 1024  # a child's stdin pipe buffer (Linux's default is 64 KiB: 2 ms of ffmpeg)
_os_write = patcher.original("os").write  # see _write


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

    def __init__(self, timeout, should_stop=lambda: False, limits=None, idle=lambda: 0.0):
        self.timeout = timeout
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
        Raises ConversionAborted (should_stop), ConversionError (past the deadline) or
        TransientError (reading `feed` from storage failed: the processes are killed at once)."""
        children = [_Child(argv, feed is not None, on_line, self._preexec())]
        if beside is not None:
            children.append(_Child(beside, feed is not None, None, self._preexec()))
        failure, ended = [], []
        feeder = _Feeder(children, feed, failure, on_fed, replay=on_beside is not None) \
            if feed is not None else None

        def watch(child, on_exit):
            """on_exit gets child's Exit once it ended with all its output read; what it answers
            is started beside the main one, what it raises ends the run."""
            child.proc.wait()
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
                    side = _Child(side_argv, feed is not None, None, self._preexec())
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
            self._wait(children[0].proc)
            waited = 1
            while waited < len(children):  # they had the whole input too: done, or stuck
                batch = children[waited:]
                waited += len(batch)
                for child in batch:
                    if self._wait(child.proc, until=time.monotonic() + SIDE_GRACE):
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
        if ended:
            raise ended[0]
        if failure and isinstance(failure[0], ConversionAborted):  # the upload was removed
            raise failure[0]
        if failure:
            raise TransientError(errors.STORAGE_FAILED % (failure[0],)) from failure[0]
        main = children[0].exit()
        if beside is not None:
            main = dataclasses.replace(main, beside=children[1].exit())
        return main

    def _preexec(self):
        """In the child before exec: die with the converter, and the resource limits."""
        if self.limits is None:
            return die_with_parent(signal.SIGKILL)
        return self.limits.preexec(die_with_parent(signal.SIGKILL))

    def _wait(self, proc, until=None):
        """Until proc exits (or, with `until`, that monotonic time passes: it is then killed, and
        True returned)."""
        while True:
            try:
                proc.wait(timeout=0.5)  # green: polls every 10 ms without blocking the hub
                return False
            except subprocess.TimeoutExpired:
                if until is not None and time.monotonic() > until:
                    kill_group(proc)
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
        """An `on_line` for a pass over `span` seconds that covers [offset, offset + share];
        its `span` may be set later (0: unknown, only the pass's end is told)."""
        self.current = (offset, share)
        return _Reader(self, span, offset, share)

    def fed(self, fraction):
        """The share of an upload still arriving that the current pass was fed: ffmpeg (5.1)
        reports nothing while it waits for input, so its progress is also told this way (capped
        short of the pass's end, which only ffmpeg's report reaches)."""
        offset, share = self.current
        self.report(offset + share * min(fraction, 0.99))


class _Reader:
    """Progress.reader's `on_line`: ffmpeg's -progress lines of one pass."""

    def __init__(self, progress, span, offset, share):
        self.progress, self.span, self.offset, self.share = progress, span, offset, share
        self.held = False  # True: nothing is reported (the pass may yet be overruled)

    def __call__(self, line):
        key, _, value = line.partition(b"=")
        if key == b"out_time_us":
            try:
                seconds = int(value) / 1e6
            except ValueError:
                return
            self.progress.out_time = seconds
            if self.held:
                return
            if self.span:
                self.progress.report(self.offset + self.share * min(1.0, seconds / self.span))
        elif key == b"progress" and value.strip() == b"end" and not self.held:
            self.progress.report(self.offset + self.share)


class _Child:
    """One process of Supervisor.run: its stdout and stderr drained by green threads into bounded
    buffers (or stdout handed line by line to `on_line`)."""

    def __init__(self, argv, piped, on_line, preexec):
        log.debug("running %s", " ".join(argv))
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=preexec)
        if piped:
            _widen(self.proc.stdin)
        self.stderr, self.stdout = bytearray(), bytearray()
        self.watcher = None  # the green thread that gives its Exit to a callback, if any
        self.cut = False  # fed no more, or killed, before it ended on its own
        self.readers = [eventlet.spawn(_tail, self.proc.stderr, self.stderr),
                        eventlet.spawn(_lines, self.proc.stdout, on_line) if on_line
                        else eventlet.spawn(_head, self.proc.stdout, self.stdout)]

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


class _Feeder:
    """Pipes `stored` into the children's stdins, for as long as each reads: the first child (the
    main one) sets the pace; one beside it is fed by its own green thread from a short backlog and
    is fed no more (its stdin closed) once it falls behind, so it never holds the main one up.
    A storage error is ours, not the upload's: it is recorded in `failure` and the processes killed
    at once, so the attempt ends now as a transient failure instead of ffmpeg waiting on an open
    stdin until the timeout. `stored` may be an upload still arriving (a GrowingFile, whose blocks
    come as they land). `on_fed` tells the bytes the main child was fed. With `replay`, the first
    SIDE_BACKLOG blocks are kept, so that a process started later may `join` from the start."""

    def __init__(self, children, stored, failure, on_fed=None, replay=False):
        self.main, self.sides = children[0], [_Backlog(child) for child in children[1:]]
        self.fed = [] if replay else None  # the blocks fed so far, while a side may still join
        self.ended = False
        self.thread = eventlet.spawn(self._feed, children, stored, failure, on_fed)

    def join(self, child):
        """Feed `child` too, from the first block (once: the blocks kept go to it); False when
        too many were fed to replay."""
        if self.fed is None:
            return False
        side, self.fed = _Backlog(child, self.fed), None
        if self.ended:
            side.end()
        else:
            self.sides.append(side)
        return True

    def kill(self):
        self.thread.kill()

    def _feed(self, children, stored, failure, on_fed):
        blocks = _ReadAhead(stored.iter_range(0, None, PIPE_BLOCK), READ_AHEAD)
        fed, feeding = 0, True
        try:
            while feeding or any(side.open for side in self.sides):
                try:
                    block = next(blocks)
                except StopIteration:
                    break
                except Exception as exc:  # pymongo's AutoReconnect, a missing GridFS chunk, ...
                    failure.append(exc)
                    for child in children:
                        child.close()
                    return
                if self.fed is not None:
                    self.fed.append(block)
                    if len(self.fed) > SIDE_BACKLOG:
                        self.fed = None
                for side in self.sides:
                    side.offer(block)
                if feeding:
                    feeding = _write(self.main.proc.stdin, block)
                    fed += len(block)
                    if feeding and on_fed is not None:
                        on_fed(fed)
            if feeding:
                _close(self.main.proc.stdin)
        finally:
            self.ended = True
            blocks.close()
            for side in self.sides:
                side.end()


class _ReadAhead:
    """`blocks`, read by a green thread up to `depth` blocks ahead of the consumer: the next storage
    query (BATCH_CHUNKS chunks) runs while the blocks before it are piped, where reading on demand
    left ffmpeg waiting on an empty pipe for every query (measured: ~0.3 s per 160 MB from
    nx-27017). An error reading is raised to the consumer where its block would have been.
    `close()` stops the reader (from the consumer's green thread)."""

    def __init__(self, blocks, depth):
        self.queue = eventlet.queue.LightQueue(depth)
        self.reader = eventlet.spawn(self._read, blocks)

    def _read(self, blocks):
        try:
            for block in blocks:
                self.queue.put((block, None))
        except Exception as exc:
            self.queue.put((None, exc))
            return
        self.queue.put((None, None))

    def __iter__(self):
        return self

    def __next__(self):
        block, error = self.queue.get()
        if error is not None:
            raise error
        if block is None:
            raise StopIteration
        return block

    def close(self):
        self.reader.kill()


class _Backlog:
    """Feeds a process beside the main one from a queue, and cuts it once it falls SIDE_BACKLOG
    blocks behind (not counting `replay`, the blocks it is given again on joining late)."""

    def __init__(self, child, replay=()):
        self.child = child
        self.stdin = child.proc.stdin
        self.open = True
        self.queue = eventlet.queue.LightQueue()
        self.replayed = len(replay)  # of the blocks queued, those given again
        for block in replay:
            self.queue.put_nowait(block)
        self.writer = eventlet.spawn(self._write)

    def offer(self, block):
        if self.open:
            if self.queue.qsize() >= SIDE_BACKLOG + self.replayed:
                self._cut()
            else:
                self.queue.put_nowait(block)

    def end(self):
        """The input ended (or the feed stopped): close its stdin once it has the backlog."""
        if self.open:
            self.open = False
            self.queue.put_nowait(None)

    def _cut(self):
        """It falls behind: it gets no more (its stdin closed), having what the input gave so far."""
        self.open = False
        self.child.cut = True
        self.writer.kill()
        _close(self.stdin)

    def _write(self):
        while True:
            block = self.queue.get()
            self.replayed = max(0, self.replayed - 1)
            if block is None or not _write(self.stdin, block):
                self.open = False
                _close(self.stdin)
                return


def _write(pipe, block):
    """Write `block` into a child's stdin, waiting (green) while the pipe is full; False when the
    process stopped reading: it failed, hit a cap or has what it needs. Not pipe.write: under
    eventlet's monkey patching that ends in eventlet's os.write, which takes EPIPE for "try again"
    and spins on a pipe whose reader exited (measured: 0.3-0.4 s of CPU per cover process)."""
    view = memoryview(block)
    try:
        fd = pipe.fileno()
        while view:
            try:
                view = view[_os_write(fd, view):]
            except BlockingIOError:
                eventlet.hubs.trampoline(fd, write=True)
    except (OSError, ValueError, eventlet.hubs.IOClosed):  # EPIPE, a closed pipe
        return False
    return True


def _widen(pipe):
    """A PIPE_SIZE buffer for a child's stdin: it reads on while the feeder waits for storage.
    Best effort: an unprivileged process may be held below it (/proc/sys/fs/pipe-max-size)."""
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


def _close(pipe):
    try:
        pipe.close()
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
