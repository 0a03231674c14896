"""What the gateway reads from its configuration (defaults: config/gateway.yaml)."""
from services.common.settings import MongoSettings, Number


class GatewaySettings(MongoSettings):
    MAX_UPLOAD_BYTES = Number(int, minimum=1)
    AUTH_RPC_TIMEOUT = Number(float, minimum=0.1)
    # an upload still streaming after this long is taken for abandoned (gateway crash) and removed
    UPLOAD_TIMEOUT = Number(int, minimum=60)
    # bytes one user may hold (stored MP3s, videos not yet converted or kept for a requeue)
    USER_QUOTA_BYTES = Number(int, minimum=1)
    # a user's jobs uploading, queued or converting at once
    USER_MAX_ACTIVE_JOBS = Number(int, minimum=1)
    # finished jobs and their files are deleted this long after they finished
    RETENTION_HOURS = Number(float, minimum=0)
