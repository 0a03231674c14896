"""Temporary files of a conversion, removed whatever happens: the MP3 being made, and the upload
spooled to disk when it cannot be decoded from a pipe."""
import contextlib
import os
import tempfile

import eventlet

from services.converter.exceptions import TransientError
from services.converter.media.errors import STORAGE_FAILED
from services.converter.media.feed import PIPE_BLOCK


@contextlib.contextmanager
def temp_path(directory, suffix="", prefix="tmp"):
    """A temporary file's path, removed on exit whatever happened."""
    fd, path = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=directory)
    os.close(fd)
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


@contextlib.contextmanager
def spooled(stored, directory):
    """The stored file copied to a local temporary file, for inputs that need seeking."""
    with temp_path(directory, prefix="upload-") as path:
        with open(path, "wb") as out:
            try:
                for block in stored.iter_range(0, None, PIPE_BLOCK):
                    out.write(block)
                    eventlet.sleep(0)
            except OSError:
                raise
            except Exception as exc:  # the storage's error (pymongo, gridfs): ours, retried
                raise TransientError(STORAGE_FAILED % (exc,)) from exc
        yield path
