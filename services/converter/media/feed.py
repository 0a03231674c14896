"""Feeding ffmpeg's stdin from storage: the upload read ahead of the pipe, the main process setting
the pace, processes beside it fed from a backlog (and cut when they fall behind), and one process
started late given the first blocks again (process.Supervisor.run)."""
import fcntl

import eventlet
import eventlet.hubs
import eventlet.queue
from eventlet import patcher

PIPE_BLOCK = 1024 * 1024
SIDE_BACKLOG = 8  # blocks a process beside the main one may fall behind before it is fed no more
READ_AHEAD = 4  # blocks read from storage ahead of the one being piped
PIPE_SIZE = 1024 * 1024  # a child's stdin pipe buffer (Linux's default is 64 KiB: 2 ms of ffmpeg)
_os_write = patcher.original("os").write  # see _write


class Feeder:
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
        self.thread = eventlet.spawn(self._feed, stored, failure, on_fed)

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

    def _feed(self, stored, failure, on_fed):
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
                    for child in [self.main] + [side.child for side in self.sides]:
                        child.cut = True  # what they tell is not about the whole input
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
    query (gridio.BATCH_BYTES of chunks) runs while the blocks before it are piped, where reading
    on demand left ffmpeg waiting on an empty pipe for every query (measured: ~0.3 s per 160 MB
    from nx-27017). An error reading is raised to the consumer where its block would have been.
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


def widen(pipe):
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
