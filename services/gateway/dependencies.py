"""Gateway providers: auth over RPC with a deadline, and the broker health check."""
import eventlet
from kombu import Connection
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy

from services.common import constants as c
from services.gateway.exceptions import AuthUnavailable, BrokerUnavailable
from services.gateway.settings import GatewaySettings


class AuthClient:
    """auth's RPC methods, each answering within `timeout` seconds or raising AuthUnavailable."""

    def __init__(self, proxy, timeout):
        self._proxy = proxy
        self._timeout = timeout

    def __getattr__(self, method):
        remote = getattr(self._proxy, method)

        def call(*args, **kwargs):
            try:
                with eventlet.Timeout(self._timeout):
                    return remote.call_async(*args, **kwargs).result()
            except eventlet.Timeout:
                raise AuthUnavailable("auth did not answer within %s s" % self._timeout)
        return call


class AuthRpc(RpcProxy):
    """RpcProxy('auth') with a deadline. Requests expire in the queue at the same deadline, so a
    call the user already got a 503 for is not carried out when auth comes back."""

    def __init__(self, **options):
        super().__init__(c.AUTH, **options)

    def setup(self):
        self.timeout = GatewaySettings.of(self.container).AUTH_RPC_TIMEOUT
        self.options.setdefault("expiration", self.timeout)
        super().setup()

    def get_dependency(self, worker_ctx):
        return AuthClient(super().get_dependency(worker_ctx), self.timeout)


class BrokerCheck(DependencyProvider):
    """`check()` raises BrokerUnavailable unless a fresh AMQP connection opens within 2 s."""

    def setup(self):
        self.uri = self.container.config[AMQP_URI_CONFIG_KEY]

    def check(self):
        try:
            with eventlet.Timeout(3):
                with Connection(self.uri, connect_timeout=2) as conn:
                    conn.connect()
        except (Exception, eventlet.Timeout) as exc:
            raise BrokerUnavailable("broker: %s" % (exc or type(exc).__name__))

    def get_dependency(self, worker_ctx):
        return self
