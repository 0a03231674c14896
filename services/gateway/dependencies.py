"""Gateway providers: auth and notification over RPC with a deadline, the broker health check and
the shared /healthz result."""
import time

import eventlet
from eventlet.semaphore import Semaphore
from kombu import Connection
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY
from nameko.exceptions import UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy

from services.common import constants as c
from services.gateway.exceptions import AuthUnavailable, BrokerUnavailable, NotificationUnavailable
from services.gateway.settings import GatewaySettings

HEALTH_TTL = 1.0  # seconds one /healthz result serves every caller


class AuthClient:
    """A service's RPC methods, each answering within `timeout` seconds or raising `unavailable`
    (AuthUnavailable for auth)."""

    def __init__(self, proxy, timeout, unavailable=AuthUnavailable, service=c.AUTH):
        self._proxy = proxy
        self._timeout = timeout
        self._unavailable = unavailable
        self._service = service

    def __getattr__(self, method):
        remote = getattr(self._proxy, method)

        def call(*args, **kwargs):
            try:
                with eventlet.Timeout(self._timeout):
                    return remote.call_async(*args, **kwargs).result()
            except eventlet.Timeout:
                raise self._unavailable("%s did not answer within %s s"
                                        % (self._service, self._timeout))
        return call


class AuthRpc(RpcProxy):
    """RpcProxy('auth') with a deadline. Requests expire in the queue at the same deadline, so a
    call the user already got a 503 for is not carried out when auth comes back."""

    service = c.AUTH
    unavailable = AuthUnavailable

    def __init__(self, **options):
        super().__init__(self.service, **options)

    def deadline(self, settings):
        return settings.AUTH_RPC_TIMEOUT

    def setup(self):
        self.timeout = self.deadline(GatewaySettings.of(self.container))
        self.options.setdefault("expiration", self.timeout)
        super().setup()

    def get_dependency(self, worker_ctx):
        return AuthClient(super().get_dependency(worker_ctx), self.timeout, self.unavailable,
                          self.service)


class NotificationClient(AuthClient):
    """notification's webhook methods: not running (no `rpc-notification` queue) is unavailable
    too, not auth's error."""

    def __getattr__(self, method):
        call = super().__getattr__(method)

        def guarded(*args, **kwargs):
            try:
                return call(*args, **kwargs)
            except UnknownService:
                raise self._unavailable("notification is not running") from None
        return guarded


class NotificationRpc(AuthRpc):
    """RpcProxy('notification') with NOTIFICATION_RPC_TIMEOUT: the webhooks' methods."""

    service = c.NOTIFICATION
    unavailable = NotificationUnavailable

    def deadline(self, settings):
        return settings.NOTIFICATION_RPC_TIMEOUT

    def get_dependency(self, worker_ctx):
        return NotificationClient(RpcProxy.get_dependency(self, worker_ctx), self.timeout,
                                  self.unavailable, self.service)


class BrokerCheck(DependencyProvider):
    """`check()` raises BrokerUnavailable unless the broker answers on this gateway's one health
    connection: opened on first use, reopened once after a failure, never one per call. Called by
    HealthCache's single check in flight only, so one green thread at a time uses it."""

    def setup(self):
        self.uri = self.container.config[AMQP_URI_CONFIG_KEY]
        self.ssl = self.container.config.get(AMQP_SSL_CONFIG_KEY)
        self.connection = None

    def check(self):
        for attempt in (1, 2):  # a connection dropped while idle gets one fresh try
            try:
                with eventlet.Timeout(3):
                    if self.connection is None:
                        self.connection = Connection(self.uri, ssl=self.ssl, connect_timeout=2)
                        self.connection.connect()
                    self.connection.channel().close()  # one round trip on the open connection
                return
            except (Exception, eventlet.Timeout) as exc:
                self._drop()
                if attempt == 2:
                    raise BrokerUnavailable("broker: %s" % (exc or type(exc).__name__))

    def _drop(self):
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:
                pass

    def stop(self):
        self._drop()

    def kill(self):
        self._drop()

    def get_dependency(self, worker_ctx):
        return self


class HealthCache(DependencyProvider):
    """The latest readiness result, shared by every caller for HEALTH_TTL seconds. One check runs
    at a time; callers arriving meanwhile wait for its result instead of starting their own, so no
    number of /healthz callers multiplies the checks of MongoDB, the broker and auth."""

    def setup(self):
        self.lock = Semaphore()
        self.result = None
        self.taken = None

    def _fresh(self):
        return self.taken is not None and time.monotonic() - self.taken < HEALTH_TTL

    def get(self, check):
        """`check()`'s result: the cached one while fresh, else a new one (computed once)."""
        if not self._fresh():
            with self.lock:
                if not self._fresh():
                    self.result = check()
                    self.taken = time.monotonic()
        return self.result

    def get_dependency(self, worker_ctx):
        return self
