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
    # failed logins per window (LOGIN_LOCKOUT_SECONDS) from one client address, whatever the
    # accounts, and at one account from addresses it never logged in from
    LOGIN_CLIENT_MAX_FAILURES = Number(int, minimum=1)
    LOGIN_ACCOUNT_MAX_FAILURES = Number(int, minimum=1)
    # new accounts confirm their address before they can log in; links' lifetimes
    EMAIL_VERIFICATION = Flag()
    VERIFY_TTL_HOURS = Number(float, minimum=0.01)
    RESET_TTL_MINUTES = Number(float, minimum=1)
    # password hashes at once (logins, registrations); more get 503 busy at once
    HASH_CONCURRENCY = Number(int, minimum=1, env="AUTH_HASH_CONCURRENCY")
