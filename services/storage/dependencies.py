"""GridFS/MongoDB DependencyProvider: one MongoClient per container, a `Storage` per worker."""
from nameko.extensions import DependencyProvider
from pymongo import MongoClient

from services.common import constants as c
from services.storage.client import Storage

DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017/"
DEFAULT_MONGO_DB = "mp3svc"


class GridFSStorage(DependencyProvider):
    """Injects a `services.storage.client.Storage`: videos, MP3s and job records by domain verb."""

    def __init__(self, server_timeout_ms=3000):
        self.server_timeout_ms = server_timeout_ms
        self.client = None
        self.storage = None

    def setup(self):
        config = self.container.config
        self.uri = config.get(c.CFG_MONGO_URI) or DEFAULT_MONGO_URI
        self.db_name = config.get(c.CFG_MONGO_DB) or DEFAULT_MONGO_DB

    def start(self):
        # connect=False: the client connects on first use, so a container starts while MongoDB is
        # down and its requests fail fast (serverSelectionTimeoutMS) instead of hanging.
        self.client = MongoClient(
            self.uri, connect=False, tz_aware=False,
            serverSelectionTimeoutMS=self.server_timeout_ms,
            connectTimeoutMS=self.server_timeout_ms,
            socketTimeoutMS=60000,
            appname=self.container.service_name)
        self.storage = Storage(self.client[self.db_name])
        try:
            self.storage.ensure_indexes()
        except Exception:  # MongoDB down at start: indexes are created on the next start
            pass

    def stop(self):
        self._close()

    def kill(self):
        self._close()

    def _close(self):
        if self.client is not None:
            self.client.close()
            self.client = None

    def get_dependency(self, worker_ctx):
        return self.storage
