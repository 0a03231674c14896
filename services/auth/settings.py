"""What auth reads from its configuration (defaults: config/auth.yaml)."""
from services.common.settings import Address, Flag, Number, ServiceSettings, Text

MIN_SECRET_BYTES = 32


class AuthSettings(ServiceSettings):
    AUTH_METRICS_ADDRESS = Address()
    JWT_SECRET = Text(min_bytes=MIN_SECRET_BYTES)
    JWT_TTL = Number(int, minimum=60)
    ALLOW_REGISTRATION = Flag()
    LOGIN_MAX_FAILURES = Number(int, minimum=1)
    LOGIN_LOCKOUT_SECONDS = Number(int, minimum=1)
    # password hashes at once (logins, registrations); more get 503 busy at once
    HASH_CONCURRENCY = Number(int, minimum=1, env="AUTH_HASH_CONCURRENCY")
