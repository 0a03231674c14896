"""The services as real processes (`nameko run` with config/*.yaml and environment variables), for
tests that kill, stop and restart them. Started by devtools.stack from a clean environment: only
PATH, HOME, LANG, the values below and the test's own reach them."""
from devtools.stack import SERVICES, Stack, clean_env, free_metrics_env, free_port


class ProcessStack(Stack):
    def __init__(self, directory, env):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        values = dict(GATEWAY_ADDRESS="127.0.0.1:%d" % self.port, PUBLIC_URL=self.base,
                      AUTH_DB_URI="sqlite:///%s/auth.db" % directory, HEARTBEAT_DIR=directory,
                      LEASE_SECONDS=4, AUTH_RPC_TIMEOUT=3, PYTHONWARNINGS="ignore",
                      **free_metrics_env(),
                      # most tests register then log in at once, and upload more than UPLOAD_RATE
                      # allows; the tests of accounts turn verification on and set the rate
                      EMAIL_VERIFICATION="false", UPLOAD_RATE="100000/hour")
        values.update(env)
        super().__init__(directory, clean_env(**values))

    def start(self, *services):
        for service in services or SERVICES:
            self.start_service(service)
        return self

    def healthy(self, timeout=60):
        self.wait_healthy(self.base, timeout)
