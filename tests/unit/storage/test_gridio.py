"""gridio.StoredFile over an in-memory chunks collection: reads in bounded batches, lets go when closed;
GrowingFile: the chunks of an upload still arriving, read as they land."""
import pytest

from services.storage import gridio
from services.storage.gridio import GrowingFile, UploadGone, UploadIdle


class Chunks:
    """The `find` of a GridFS chunks collection, counting the queries."""

    def __init__(self, data, chunk_size):
        self.docs = [{"n": n, "data": data[offset:offset + chunk_size]}
                     for n, offset in enumerate(range(0, len(data), chunk_size))]
        self.queries = 0

    def find(self, query, projection=None, sort=None, batch_size=None):
        self.queries += 1
        low, high = query["n"]["$gte"], query["n"]["$lt"]
        return [doc for doc in self.docs if low <= doc["n"] < high]


def stored(data, chunk_size=4):
    chunks = Chunks(data, chunk_size)
    return chunks, gridio.StoredFile(chunks, {"_id": "f", "length": len(data), "chunkSize": chunk_size})


def test_blocks_of_the_whole_file_in_batches_of_chunks(monkeypatch):
    monkeypatch.setattr(gridio, "BATCH_BYTES", 16)  # 4 chunks of 4 bytes a query
    data = bytes(range(50))
    chunks, mp3 = stored(data)
    assert b"".join(mp3.iter_range(block=7)) == data
    assert chunks.queries == 1 + 3  # the first chunk alone, then 12 chunks 4 a query


def test_the_head_is_read_without_the_batch_after_it():
    chunks, video = stored(bytes(range(50)))
    assert video.read(3) == bytes(range(3)) and chunks.queries == 1 and len(video._batch) == 1


def test_closing_lets_go_of_the_chunks_read_ahead():
    _, mp3 = stored(bytes(100))
    mp3.read(10)
    assert mp3._batch
    mp3.close()
    assert mp3.closed and mp3._batch == []


class Landing:
    """The part of a chunks collection GrowingFile uses."""

    def __init__(self):
        self.stored = {}

    def find(self, query, projection=None, sort=None, batch_size=None):
        low, high = query["n"]["$gte"], query["n"]["$lt"]
        return [{"n": n, "data": self.stored[n]} for n in sorted(self.stored) if low <= n < high]


class Upload:
    """An upload whose next chunk lands at each sleep of its reader."""

    def __init__(self, chunks, pieces):
        self.chunks, self.pieces, self.state = chunks, list(pieces), (True, None)
        self.sleeps = 0

    def sleep(self, seconds):
        self.sleeps += 1
        if self.pieces:
            self.chunks.stored[len(self.chunks.stored)] = self.pieces.pop(0)
        if not self.pieces and self.state is not None:
            self.state = (False, sum(len(data) for data in self.chunks.stored.values()))


def test_reads_chunks_as_they_land_and_ends_with_the_upload():
    chunks = Landing()
    upload = Upload(chunks, [b"a" * 4, b"b" * 4, b"c" * 4, b"d" * 2])
    growing = GrowingFile(chunks, "f", 4, lambda: upload.state, idle_limit=10, sleep=upload.sleep)
    assert b"".join(growing.iter_range()) == b"aaaabbbbccccdd"
    assert growing.length == 14 and growing.waited > 0 and upload.sleeps >= 4
    assert growing.wait_complete() == 14
    assert b"".join(growing.iter_range(5)) == b"bbbccccdd"


def test_a_short_chunk_is_the_last_only_once_the_upload_is_complete():
    chunks = Landing()
    chunks.stored = {0: b"a" * 4, 1: b"b" * 2}  # (a tus tail is never a stored chunk before the end)
    state = [(True, None)]

    def sleep(seconds):
        state[0] = (False, 6)
    growing = GrowingFile(chunks, "f", 4, lambda: state[0], idle_limit=10, sleep=sleep)
    assert b"".join(growing.iter_range()) == b"aaaabb"


def test_a_removed_upload_and_a_silent_one_stop_the_reader():
    chunks = Landing()
    chunks.stored = {0: b"a" * 4}
    gone = GrowingFile(chunks, "f", 4, lambda: None, idle_limit=10, sleep=lambda s: None)
    with pytest.raises(UploadGone):
        list(gone.iter_range())
    silent = GrowingFile(chunks, "f", 4, lambda: (True, None), idle_limit=1, sleep=lambda s: None)
    with pytest.raises(UploadIdle):
        list(silent.iter_range())
    with pytest.raises(UploadIdle):
        silent.wait_complete()
    assert silent.waited >= 1
