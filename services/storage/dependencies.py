"""The MongoDB provider every service's store is built on: one MongoClient per container, released
when the container stops, and the service's own narrow store injected into its workers."""
from nameko.extensions import DependencyProvider
from pymongo import MongoClient

from services.common.settings import MongoSettings
from services.storage.files import FileStore


class MongoStore(DependencyProvider):
    """Subclasses say what their workers get: `build(db, settings)` returns the store object, which
    may have `ensure_indexes()`. `settings_class` is the service's Settings (MongoSettings or a
    subclass of it)."""

    settings_class = MongoSettings
    server_timeout_ms = 3000

    def setup(self):
        self.settings = self.settings_class.of(self.container)
        self.client = None
        self.store = None

    def start(self):
        # connect=False: the client connects on first use, so a container starts while MongoDB is
        # down and its requests fail fast (serverSelectionTimeoutMS) instead of hanging.
        self.client = MongoClient(
            self.settings.MONGO_URI, connect=False, tz_aware=False,
            serverSelectionTimeoutMS=self.server_timeout_ms,
            connectTimeoutMS=self.server_timeout_ms, socketTimeoutMS=60000,
            appname=self.container.service_name)
        db = self.client[self.settings.MONGO_DB]
        self.store = self.build(db, self.settings)
        try:
            self.store.ensure_indexes()
        except Exception:  # MongoDB down at start: indexes are created on the next start
            pass

    def build(self, db, settings):
        raise NotImplementedError

    def stop(self):
        if self.client is not None:
            self.client.close()
            self.client = None

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.store


class Files(MongoStore):
    """Injects the GridFS `FileStore` alone (tools and tests)."""

    def build(self, db, settings):
        return FileStore(db)
