"""The GridFS file store: write, open and delete files by id, in bounded memory.

Two buckets: the uploaded videos and the MP3s. Any GridFS reader reads what this writes.
"""
import time

from bson import ObjectId
from bson.errors import InvalidId

from services.common import constants as c
from services.storage.gridio import ChunkAppender, FileWriter, GrowingFile, PlacedFile, StoredFile, \
    delete_file

CHUNK_SIZE = 1024 * 1024
TOUCH_SECONDS = 5.0   # an upload in progress refreshes its record at most this often
BUCKETS = (c.VIDEOS_BUCKET, c.MP3S_BUCKET)


def parse_file_id(value):
    """A file id from the outside world, or None when it is not one."""
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None


class Upload:
    """A file being streamed into GridFS. `commit()` keeps it, `abort()` leaves nothing behind.

    `touch` (optional) is called while bytes arrive, at most every TOUCH_SECONDS, so a long or slow
    upload still in progress is not taken for one abandoned by a crashed gateway."""

    def __init__(self, writer, touch=None):
        self._writer = writer
        self._touch = touch
        self._touched = time.monotonic()
        self.file_id = writer.file_id
        self.committed = False

    @property
    def size(self):
        return self._writer.length

    def write(self, data):
        self._writer.write(data)
        if self._touch is not None and time.monotonic() - self._touched >= TOUCH_SECONDS:
            self._touched = time.monotonic()
            self._touch()

    def commit(self, filename=None):
        """Keep the file (named `filename` when given: a name known only once the bytes arrived)."""
        if filename is not None:
            self._writer.filename = filename
        self._writer.close()
        self.committed = True

    def abort(self):
        if not self.committed:
            self._writer.abort()


class FileStore:
    def __init__(self, db):
        self.db = db

    def ensure_indexes(self):
        for bucket in BUCKETS:
            self.db[bucket + ".chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)
            self.db[bucket + ".files"].create_index([("filename", 1), ("uploadDate", 1)])

    def create(self, bucket, filename, metadata, touch=None, file_id=None):
        """An `Upload` of a new file (id `file_id`, or a new one); its id is known at once, the file
        exists once committed."""
        writer = FileWriter(self.db[bucket + ".files"], self.db[bucket + ".chunks"],
                            file_id or ObjectId(), filename, metadata, CHUNK_SIZE)
        return Upload(writer, touch)

    def place(self, bucket, filename, metadata, chunk_size=CHUNK_SIZE):
        """A `PlacedFile`: a new file whose chunks may be stored in any order (an MP3 stored while
        ffmpeg writes it, its head last); it exists once closed."""
        return PlacedFile(self.db[bucket + ".files"], self.db[bucket + ".chunks"], ObjectId(),
                          filename, metadata, chunk_size)

    def append(self, bucket, file_id, offset, tail):
        """A `ChunkAppender` continuing the uncommitted file file_id at offset (resumable uploads);
        `tail` is what the previous appender's `tail` was when it stopped at that offset."""
        return ChunkAppender(self.db[bucket + ".files"], self.db[bucket + ".chunks"], file_id,
                             CHUNK_SIZE, offset, tail)

    def open(self, bucket, file_id):
        """A seekable `StoredFile`, or None when there is no such file. Only open files whose
        record says they were committed: nx-27017 shows an empty placeholder for one in progress."""
        doc = self.db[bucket + ".files"].find_one({"_id": file_id})
        if doc is None:
            return None
        return StoredFile(self.db[bucket + ".chunks"], doc)

    def growing(self, bucket, file_id, state, idle_limit, expected=None, sleep=time.sleep):
        """A `GrowingFile`: the chunks of file_id (`expected` bytes, when announced) read as they
        land while `state()` says its upload is open (see GrowingFile)."""
        return GrowingFile(self.db[bucket + ".chunks"], file_id, CHUNK_SIZE, state, idle_limit, sleep,
                           expected=expected)

    def ids_of(self, bucket, owner):
        """The ids of every file of `owner` (by its metadata), committed or being written."""
        files = self.db[bucket + ".files"]
        return [doc["_id"] for doc in files.find({"metadata.owner": owner}, projection={"_id": 1})]

    def totals(self, bucket):
        """(files, bytes) stored in `bucket`."""
        lengths = [doc.get("length") or 0 for doc in self.db[bucket + ".files"].find(
            {}, projection={"length": 1})]
        return len(lengths), sum(lengths)

    def delete(self, bucket, file_id):
        if file_id is not None:
            delete_file(self.db[bucket + ".files"], self.db[bucket + ".chunks"], file_id)
