"""gridio.StoredFile over an in-memory chunks collection: reads in bounded batches, lets go when closed."""
from services.storage import gridio


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


def test_blocks_of_the_whole_file_in_batches_of_chunks():
    data = bytes(range(50))
    chunks, mp3 = stored(data)
    assert b"".join(mp3.iter_range(block=7)) == data
    assert chunks.queries == -(-13 // gridio.BATCH_CHUNKS)  # 13 chunks, BATCH_CHUNKS a query


def test_closing_lets_go_of_the_chunks_read_ahead():
    _, mp3 = stored(bytes(100))
    mp3.read(10)
    assert mp3._batch
    mp3.close()
    assert mp3.closed and mp3._batch == []
