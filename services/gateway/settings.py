"""What the gateway reads from its configuration (defaults: config/gateway.yaml)."""
from services.common.settings import MongoSettings, Number


class GatewaySettings(MongoSettings):
    MAX_UPLOAD_BYTES = Number(int, minimum=1)
    AUTH_RPC_TIMEOUT = Number(float, minimum=0.1)
    # an upload still streaming after this long is taken for abandoned (gateway crash) and removed
    UPLOAD_TIMEOUT = Number(int, minimum=60)
