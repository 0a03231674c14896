"""What the gateway reads from its configuration (defaults: config/gateway.yaml)."""
import ipaddress

from services.common.settings import Address, MongoSettings, Number, Rate, Setting, Text


class Networks(Setting):
    """Comma-separated addresses or CIDR networks; empty for none."""

    def parse(self, raw):
        return tuple(ipaddress.ip_network(item.strip(), strict=False)
                     for item in str(raw).split(",") if item.strip())


class GatewaySettings(MongoSettings):
    GATEWAY_METRICS_ADDRESS = Address()
    # the page's own origin besides the Host header's (CSRF check); https: makes the cookie Secure
    PUBLIC_URL = Text(optional=True)
    MAX_UPLOAD_BYTES = Number(int, minimum=1)
    AUTH_RPC_TIMEOUT = Number(float, minimum=0.1)
    NOTIFICATION_RPC_TIMEOUT = Number(float, minimum=0.1)
    # an upload still streaming after this long is taken for abandoned (gateway crash) and removed
    UPLOAD_TIMEOUT = Number(int, minimum=60)
    # seconds a client may stay silent mid-request (each socket read) before it is disconnected
    CLIENT_TIMEOUT = Number(float, minimum=0.1)
    # seconds a whole request on a non-upload route may take to arrive, headers included (408 after)
    REQUEST_TIMEOUT = Number(float, minimum=0.1)
    # bytes/s an upload's body must average, counted after UPLOAD_MIN_RATE_GRACE seconds (408
    # upload_timeout below it); 0: no minimum
    UPLOAD_MIN_RATE = Number(int, minimum=0)
    UPLOAD_MIN_RATE_GRACE = Number(float, minimum=0)
    LOGIN_RATE = Rate()
    REGISTER_RATE = Rate()
    # new uploads per account (POST /upload, tus POST /uploads)
    UPLOAD_RATE = Rate()
    # proxies whose X-Forwarded-For names the client (ingress, reverse proxy)
    TRUSTED_PROXIES = Networks(optional=True)
    # bytes one user may hold (stored MP3s, videos not yet converted or kept for a requeue)
    USER_QUOTA_BYTES = Number(int, minimum=1)
    # bytes the whole store may hold (uploads beyond get 507 storage_full); 0: no limit
    STORAGE_LIMIT_BYTES = Number(int, minimum=0)
    # a user's jobs uploading, queued or converting at once
    USER_MAX_ACTIVE_JOBS = Number(int, minimum=1)
    # finished jobs and their files are deleted this long after they finished
    RETENTION_HOURS = Number(float, minimum=0)
