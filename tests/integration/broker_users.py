"""The services' broker users of kubernetes/operators/broker-access.yaml, created on a test's own
vhost of the local RabbitMQ through the management API, under names unique to the test (users are
global on a broker), and removed afterwards."""
import secrets
import urllib.parse
import uuid

import pika

from devtools import broker_access
from services.common import constants as c
from services.common.container import own_uri_key

MANAGEMENT = "http://127.0.0.1:15672"
SERVICES = (c.GATEWAY, c.AUTH, c.CONVERTER, c.NOTIFICATION)


class BrokerUsers:
    def __init__(self, vhost, host="127.0.0.1", port=5672, scheme="pyamqp",
                 management=MANAGEMENT, admin=("guest", "guest")):
        self.vhost, self.host, self.port, self.scheme = vhost, host, port, scheme
        self.api = broker_access.ManagementApi(management, *admin)
        self.tag = uuid.uuid4().hex[:8]
        rules = broker_access.load()
        # user names unique to this test; the rules are the file's, unchanged
        self.names = {role: "%s-%s" % (role, self.tag) for role in rules["users"]}
        self.rules = dict(rules, users={self.names[role]: user for role, user in rules["users"].items()})
        self.passwords = {name: secrets.token_urlsafe(18) for name in self.rules["users"]}

    def create(self):
        broker_access.apply(self.api, self.rules, self.passwords, self.vhost)
        return self

    def remove(self):
        broker_access.remove_users(self.api, self.rules)

    def uri(self, role):
        name = self.names[role]
        return "%s://%s:%s@%s:%d/%s" % (self.scheme, name, self.passwords[name], self.host, self.port,
                                        urllib.parse.quote(self.vhost, safe=""))

    def service_env(self):
        """AMQP_URI_<SERVICE> for each service; AMQP_URI itself names a user that does not exist,
        so a service that fell back to it could not connect at all."""
        env = {own_uri_key(service): self.uri(service) for service in SERVICES}
        env["AMQP_URI"] = "%s://nobody-%s:unused@%s:%d/%s" % (
            self.scheme, self.tag, self.host, self.port, urllib.parse.quote(self.vhost, safe=""))
        env["DECLARE_EVENT_EXCHANGES"] = "false"
        return env

    def connection_users(self):
        """The user of every client connection on the vhost (management API)."""
        return [conn["user"] for conn in self.api.call("GET", "vhosts", self.vhost, "connections")]

    def pika_connection(self, role, **params):
        name = self.names[role]
        return pika.BlockingConnection(pika.ConnectionParameters(
            host=self.host, port=self.port, virtual_host=self.vhost,
            credentials=pika.PlainCredentials(name, self.passwords[name]),
            connection_attempts=1, **params))
