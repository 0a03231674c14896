"""Where the MP3 goes while ffmpeg writes it.

ffmpeg writes the audio into a local file; the MP3 is the ID3 tag followed by that audio. The tag's
size is known early: at the start, or once the cover's process beside the encoder has its picture
(services/converter/media/encoder.py). `StoredMp3` then stores the MP3 into GridFS while ffmpeg is
still writing it: every chunk that begins HEAD_ROOM bytes or more past the tag holds audio ffmpeg
will not touch again and is stored as soon as the file has it; the chunks before, the tag and the
head of the audio (where ffmpeg rewrites its Xing frame when it ends), are stored last, then the
files document on `commit()`. Should the finished tag not have the size planned (a cover found only
after the encode), the MP3 is stored again from the start, as it was before this was streamed.
`LocalMp3` (no store: the bench, the tests of the encoder alone) puts the tag in front of the file.

Both have the same verbs for the encoder: `reset()` before each attempt (what an earlier attempt
stored goes, and so does its file), `begin(head)` when the tag's size is known, `finish(tag)` once
ffmpeg is done (returns the MP3's size).
"""
import os

import eventlet
from eventlet import tpool

# the MP3's GridFS chunks: 64 KiB, where uploads have 1 MiB. What is left to store once ffmpeg ends
# is the head chunk, the last one and what ffmpeg wrote since the last look (POLL): nx-27017 stores
# about 15 ms a MiB, and a 1-minute conversion's end took 9-12 ms with GridFS's default 255 KiB
# chunks, 5-7 ms with these (bench/profile.py --mongo-uri)
CHUNK_SIZE = 64 * 1024
# audio bytes left for the end after the tag: ffmpeg rewrites its Xing frame, the first frame of
# the audio (at most 1441 bytes: 320 kbit/s at 32 kHz), when it ends
HEAD_ROOM = 8 * 1024
POLL = 0.025  # seconds between looks at the file ffmpeg writes
# chunks stored in one round trip once ffmpeg is done (usually the last one or two and the head:
# 5-9 ms one by one at the end of a 1-minute conversion, 3-4 ms at once), and at most this many,
# so memory stays flat should the whole MP3 be stored again
PUT_AT_ONCE = 16


class LocalMp3:
    """The MP3 at `path` itself: the tag written in front of the audio when ffmpeg is done."""

    head = None  # no size is planned: the tag is written as it comes

    def __init__(self, path):
        self.path = path

    def reset(self):
        _empty(self.path)

    def begin(self, head):
        pass

    def finish(self, tag):
        if tag:
            tpool.execute(_prepend, self.path, tag)  # a copy of the whole file: off the green hub
        return os.path.getsize(self.path)


def _empty(path):
    with open(path, "wb"):
        pass


def _prepend(path, head):
    temporary = path + ".tagged"
    with open(path, "rb") as audio, open(temporary, "wb") as out:
        out.write(head)
        while True:
            block = audio.read(1 << 20)
            if not block:
                break
            out.write(block)
    os.replace(temporary, path)


class StoredMp3:
    """The MP3 stored as ffmpeg writes its audio to `path`: `place()` gives the new GridFS file (a
    storage.gridio.PlacedFile) its chunks go into. `should_stop()` true (the lease is lost) stops
    it. For the job: `file_id`, `size`, `commit()` (the file exists from then on) and `abort()`
    (nothing is left), as an upload has."""

    def __init__(self, place, path, should_stop=lambda: False, poll=POLL, head_room=HEAD_ROOM):
        self._place = place
        self.path = path
        self._should_stop = should_stop
        self._poll = poll
        self._head_room = head_room
        self._file = None
        self._follower = None
        self._error = None
        self._halting = False
        self._busy = False  # storing a chunk (else waiting for the file to hold the next one)
        self._next = 0   # the next chunk to store
        self.head = None  # the tag's planned size, once begun
        self.size = None
        self.committed = False

    @property
    def file_id(self):
        return self._file.file_id if self._file is not None else None

    # the encoder's verbs ---------------------------------------------------------------------
    def reset(self):
        """A new attempt: nothing of the earlier one stays, stored or local."""
        self.abort()
        _empty(self.path)  # so no old byte is taken for ffmpeg's new ones

    def begin(self, head):
        """The tag will take `head` bytes: the audio goes into storage as ffmpeg writes it."""
        if self.head is not None:
            return
        self._start(head)
        self._follower = eventlet.spawn(self._follow)

    def finish(self, tag):
        """ffmpeg is done: the chunks not stored yet, the first ones last. Returns the MP3's size."""
        self._halt()
        if self._error is not None:
            raise self._error
        if self.head != len(tag):  # not begun, or a tag of another size: every chunk again
            self.abort()
            self._start(len(tag))
        audio = os.path.getsize(self.path)
        pieces = []

        def put(n, data):
            nonlocal pieces
            pieces.append((n, data))
            if len(pieces) == PUT_AT_ONCE:  # the whole MP3 when the tag's size changed
                self._file.put_all(pieces)
                pieces = []
        with open(self.path, "rb") as source:
            while True:  # the rest of the audio
                data = self._chunk(source, self._next, audio)
                if not data:
                    break
                put(self._next, data)
                self._next += 1
            for n in range(self._first_streamed()):  # then the head, the tag in front
                data = self._chunk(source, n, audio, tag)
                if data:
                    put(n, data)
        self._file.put_all(pieces)
        self.size = len(tag) + audio
        return self.size

    # the job's verbs -------------------------------------------------------------------------
    def commit(self):
        self._file.finish(self.size)
        self.committed = True

    def abort(self):
        """Nothing stored is left (nor is a file that was committed)."""
        self._halt()  # a chunk being stored lands before the delete, not after it
        if self._file is not None:
            self._file.abort()
        self._file, self.head, self.size, self._error, self.committed = None, None, None, None, False

    # inside ----------------------------------------------------------------------------------
    def _start(self, head):
        self._file = self._place()
        self.head = head
        self._next = self._first_streamed()
        self._halting = False

    def _first_streamed(self):
        """The first chunk that holds only audio ffmpeg will not rewrite."""
        size = self._file.chunk_size
        return (self.head + self._head_room + size - 1) // size

    def _follow(self):
        """Store each chunk once ffmpeg's file holds all of it, until halted."""
        source = None
        try:
            while not self._halting and not self._should_stop():
                if source is None:
                    source = open(self.path, "rb")  # emptied by reset(): ffmpeg opens it again
                audio = os.fstat(source.fileno()).st_size
                if audio >= (self._next + 1) * self._file.chunk_size - self.head:  # all written
                    self._busy = True
                    self._file.put(self._next, self._chunk(source, self._next, audio))
                    self._busy = False
                    self._next += 1
                else:
                    eventlet.sleep(self._poll)
        except Exception as exc:  # a storage error: raised by finish()
            self._error = exc
        finally:
            if source is not None:
                source.close()

    def _halt(self):
        """Stop following: at once when it waits for the file, after the chunk it stores."""
        if self._follower is not None:
            self._halting = True
            if self._busy:
                self._follower.wait()
            else:
                self._follower.kill()
            self._follower = None

    def _chunk(self, source, n, audio, tag=b""):
        """Chunk n of the MP3: `tag` (the planned `head` bytes) and the audio file of `audio`
        bytes after it; shorter at the end, b"" past it. Chunks from the first streamed one on
        hold audio only."""
        size = self._file.chunk_size
        start = n * size
        head = tag[start:start + size]
        offset = max(0, start - self.head)
        length = max(0, min(size - len(head), audio - offset))
        return head + (os.pread(source.fileno(), length, offset) if length else b"")
