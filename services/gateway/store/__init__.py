"""The gateway's part of the job record, split by what each store owns:

- `slots.Slots`: per-user active-job slots and the bytes held against the quota;
- `uploads.UploadStore`: uploads in progress (admission, the video's stream, the tus offsets) until
  they become queued jobs;
- `jobs.JobStore`: jobs users read and delete, retention, and the operators' requeue and summary.

GridFS is reached through the shared `FileStore` (services/storage). `GatewayStore` injects the
`GatewayStores` holding the three."""
from services.gateway.store.jobs import JobStore
from services.gateway.store.slots import Slots
from services.gateway.store.uploads import UploadStore
from services.storage.dependencies import MongoStore
from services.storage.files import FileStore


class GatewayStores:
    def __init__(self, db):
        self.db = db
        self.files = FileStore(db)
        self.slots = Slots(db)
        self.jobs = JobStore(db, self.files, self.slots)
        self.uploads = UploadStore(db, self.files, self.slots, self.jobs)

    def ensure_indexes(self):
        self.jobs.ensure_indexes()
        self.files.ensure_indexes()
        self.uploads.mark_open()

    def ping(self):
        self.db.command("ping")


class GatewayStore(MongoStore):
    def build(self, db, settings):
        return GatewayStores(db)
