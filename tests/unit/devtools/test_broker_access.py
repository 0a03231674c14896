"""The broker rules of kubernetes/operators/broker-access.yaml against the names nameko 2.14 and
the services really use, the definitions file made from them, and how a service picks its own
AMQP_URI_<SERVICE>. (tests/integration/test_broker_access.py runs them on the real broker.)"""
import base64
import inspect
import hashlib
import pathlib
import re
import uuid

import pytest
from nameko.rpc import RPC_QUEUE_TEMPLATE, RPC_REPLY_QUEUE_TEMPLATE, Rpc

from devtools import broker_access
from services.auth.service import AuthService
from services.common import constants as c
from services.common.container import ServiceContainer, broker_config
from services.common.messaging import CONSUMERS, queue_name
from services.gateway.service import GatewayService
from services.notification.service import NotificationService

RULES = broker_access.load()
USERS = RULES["users"]
ROOT = pathlib.Path(broker_access.ROOT)


def allowed(user, permission, name):
    return re.fullmatch(USERS[user][permission], name) is not None


def topic(user, exchange, permission, key):
    return re.fullmatch(USERS[user]["topics"][exchange][permission], key) is not None


def rpc_methods(cls):
    return {name for name, value in inspect.getmembers(cls)
            if any(isinstance(e, Rpc) for e in getattr(value, "nameko_entrypoints", ()))}


def gateway_calls_to(dependency):
    """Every `self.<dependency>.<method>` in the gateway's code (`auth`, `notification`)."""
    calls = set()
    for path in (ROOT / "services" / "gateway").rglob("*.py"):
        calls |= set(re.findall(r"\bself\.%s\.([a-z_]+)" % dependency, path.read_text()))
    return calls


def gateway_calls_to_auth():
    return gateway_calls_to("auth")


def event_queues(**match):
    return [(source, event, service, queue_name(source, event, service, method))
            for (source, event), consumers in CONSUMERS.items() for service, method in consumers
            if all({"source": source, "service": service}[k] == v for k, v in match.items())]


def test_every_user_has_topic_permissions_on_every_topic_exchange_it_may_use():
    exchanges = {"nameko-rpc"} | {e["name"] for e in RULES["exchanges"]}
    assert {e["name"] for e in RULES["exchanges"]} == {"%s.events" % s for s, _ in CONSUMERS}
    for name, user in USERS.items():
        reachable = {x for x in exchanges if allowed(name, "write", x) or allowed(name, "read", x)}
        assert reachable <= set(user["topics"]), (name, reachable - set(user["topics"]))
        assert "nameko-rpc" in user["topics"], name


def test_rpc_rules():
    reply = str(uuid.uuid4())
    for service, cls in ((c.GATEWAY, GatewayService), (c.AUTH, AuthService),
                         (c.NOTIFICATION, NotificationService)):
        queue = RPC_QUEUE_TEMPLATE.format(service)
        for perm in ("configure", "write", "read"):
            assert allowed(service, perm, queue) and allowed(service, perm, "nameko-rpc")
        assert topic(service, "nameko-rpc", "read", "%s.*" % service)  # rpc-<service>'s binding
        assert topic(service, "nameko-rpc", "write", reply)  # answers
        for other in USERS:
            if other != service:
                assert not allowed(other, "read", queue), (other, queue)  # only the owner consumes
                assert not topic(other, "nameko-rpc", "read", "%s.*" % service), other
        assert rpc_methods(cls), service
    # the gateway calls auth (its reply queue, the methods it uses, and nothing ops-only)
    gateway_reply = RPC_REPLY_QUEUE_TEMPLATE.format(c.GATEWAY, reply)
    assert all(allowed(c.GATEWAY, p, gateway_reply) for p in ("configure", "write", "read"))
    assert topic(c.GATEWAY, "nameko-rpc", "read", reply)
    calls = gateway_calls_to_auth()
    assert {"login", "validate_token", "register"} <= calls
    for method in calls:
        assert topic(c.GATEWAY, "nameko-rpc", "write", "auth.%s" % method), method
    for method in rpc_methods(AuthService) - calls:
        assert not topic(c.GATEWAY, "nameko-rpc", "write", "auth.%s" % method), method
    assert not topic(c.GATEWAY, "nameko-rpc", "write", "gateway.summary")
    # the gateway calls notification's webhook methods, each of which it uses and nothing else
    calls = gateway_calls_to("notification")
    assert {"create_webhook", "list_webhooks", "delete_webhook", "list_deliveries",
            "delete_webhooks_of"} <= calls
    assert calls == rpc_methods(NotificationService), calls ^ rpc_methods(NotificationService)
    for method in calls:
        assert topic(c.GATEWAY, "nameko-rpc", "write", "notification.%s" % method), method
    assert not topic(c.GATEWAY, "nameko-rpc", "write", "notification.anything_else")
    assert not topic("ops", "nameko-rpc", "write", "notification.create_webhook")
    # ops (nameko shell) calls every RPC of the gateway and auth's, except what only the web uses
    ops_reply = RPC_REPLY_QUEUE_TEMPLATE.format("standalone_rpc_proxy", reply)
    assert all(allowed("ops", p, ops_reply) for p in ("configure", "write", "read"))
    for method in rpc_methods(GatewayService):
        assert topic("ops", "nameko-rpc", "write", "gateway.%s" % method), method
    for method in ("create_user", "disable_user", "enable_user", "delete_user", "summary"):
        assert topic("ops", "nameko-rpc", "write", "auth.%s" % method), method
    for method in ("login", "validate_token", "register"):
        assert not topic("ops", "nameko-rpc", "write", "auth.%s" % method), method


def test_the_converter_has_no_rpc_and_notification_only_answers():
    for perm in ("configure", "write", "read"):
        assert not allowed(c.CONVERTER, perm, "nameko-rpc")
    for name in (c.CONVERTER, c.NOTIFICATION):
        for perm in ("configure", "write", "read"):
            for service in (c.AUTH, c.GATEWAY):
                assert not allowed(name, perm, RPC_QUEUE_TEMPLATE.format(service))
        for key in ("auth.validate_token", "auth.create_user", "gateway.delete_user",
                    "notification.create_webhook"):
            assert not topic(name, "nameko-rpc", "write", key)
    assert not topic(c.CONVERTER, "nameko-rpc", "write", str(uuid.uuid4()))
    assert topic(c.NOTIFICATION, "nameko-rpc", "write", str(uuid.uuid4()))  # its answers


def test_event_rules():
    for source, event, service, queue in event_queues():
        exchange = "%s.events" % source
        # the consumer declares and binds its queue and consumes it, without configure on the
        # exchange (declared ahead)
        assert allowed(service, "configure", queue) and allowed(service, "write", queue)
        assert allowed(service, "read", queue) and allowed(service, "read", exchange)
        assert not allowed(service, "configure", exchange)
        assert topic(service, exchange, "read", event)
        # the dispatcher publishes and declares the queue ahead of its consumer
        assert allowed(source, "write", exchange) and topic(source, exchange, "write", event)
        assert allowed(source, "configure", queue) and allowed(source, "write", queue)
        assert not allowed(source, "read", queue), "only the consumer reads its queue"
        for other in set(USERS) - {service}:
            assert not allowed(other, "read", queue), (other, queue)
    # redispatch: the converter re-publishes video_uploaded, notification its own events
    assert topic(c.CONVERTER, "gateway.events", "write", c.VIDEO_UPLOADED)
    assert not topic(c.CONVERTER, "gateway.events", "write", "something_else")
    assert topic(c.NOTIFICATION, "converter.events", "write", c.MP3_READY)
    assert not allowed(c.AUTH, "write", "gateway.events")


def test_definitions_carry_the_same_rules():
    passwords = {name: "pw-%s-0123456789" % name for name in USERS}
    defs = broker_access.definitions(RULES, passwords, vhost="/")
    assert [u["name"] for u in defs["users"]] == list(USERS) and "guest" not in USERS
    for user in defs["users"]:
        raw = base64.b64decode(user["password_hash"])
        salt, digest = raw[:4], raw[4:]
        assert digest == hashlib.sha256(salt + passwords[user["name"]].encode()).digest()
    perms = {p["user"]: p for p in defs["permissions"]}
    for name, user in USERS.items():
        assert {k: perms[name][k] for k in ("configure", "write", "read")} == \
            {k: user[k] for k in ("configure", "write", "read")}
    topics = {(t["user"], t["exchange"]): (t["write"], t["read"]) for t in defs["topic_permissions"]}
    assert topics == {(name, x): (p["write"], p["read"]) for name, user in USERS.items()
                      for x, p in user["topics"].items()}
    assert {e["name"] for e in defs["exchanges"]} == {"gateway.events", "converter.events", "auth.events"}


def test_definitions_command_needs_every_password(tmp_path, capsys):
    for name in USERS:
        (tmp_path / ("amqp-%s-password" % name)).write_text("x" * 24 + "\n")
    broker_access.main(["definitions", "--passwords-dir", str(tmp_path)])
    assert '"topic_permissions"' in capsys.readouterr().out
    (tmp_path / "amqp-ops-password").unlink()
    with pytest.raises(SystemExit, match="no password for broker user ops"):
        broker_access.main(["definitions", "--passwords-dir", str(tmp_path)])


# --- AMQP_URI_<SERVICE> and AMQP_SSL ------------------------------------------------------

def test_a_service_uses_its_own_uri_else_amqp_uri():
    config = {"AMQP_URI": "pyamqp://shared@h/", "AMQP_URI_GATEWAY": "pyamqp://gw@h/",
              "AMQP_URI_AUTH": "", "AMQP_SSL_CA": ""}
    assert broker_config(config, c.GATEWAY) == {"AMQP_URI": "pyamqp://gw@h/", "AMQP_SSL": None}
    assert broker_config(config, c.AUTH)["AMQP_URI"] == "pyamqp://shared@h/"
    assert broker_config(config, c.CONVERTER)["AMQP_URI"] == "pyamqp://shared@h/"


def test_tls_options_for_amqps_or_a_ca():
    ssl = broker_config({"AMQP_URI": "amqps://u:p@broker.mp3svc.svc:5671/"}, c.AUTH)["AMQP_SSL"]
    assert ssl == {"context": {"cafile": None, "check_hostname": True},
                   "server_hostname": "broker.mp3svc.svc"}
    ssl = broker_config({"AMQP_URI": "amqps://u:p@localhost:5671/", "AMQP_SSL_CA": "/ca.pem"},
                        c.AUTH)["AMQP_SSL"]
    assert ssl["context"]["cafile"] == "/ca.pem"


def test_the_container_resolves_on_a_copy_of_the_config():
    config = {"AMQP_URI": "pyamqp://shared@h/", "AMQP_URI_AUTH": "pyamqp://auth@h/"}
    container = ServiceContainer(AuthService, config)
    assert container.config["AMQP_URI"] == "pyamqp://auth@h/"
    assert config["AMQP_URI"] == "pyamqp://shared@h/"  # other services of the same runner


def test_every_service_config_names_the_container_and_its_own_uri():
    for service in (c.GATEWAY, c.AUTH, c.CONVERTER, c.NOTIFICATION):
        text = (ROOT / "config" / ("%s.yaml" % service)).read_text()
        assert "SERVICE_CONTAINER_CLS: services.common.container.ServiceContainer" in text
        assert '${AMQP_URI_%s:}' % service.upper() in text
