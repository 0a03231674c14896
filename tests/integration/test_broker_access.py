"""Least privilege on the broker: the whole flow with every service on its own RabbitMQ user (the
rules of kubernetes/operators/broker-access.yaml on the real local broker), then a plain AMQP
client (pika) shows what the converter's and the notification's users cannot do."""
import re

import pika
import pika.exceptions
import pytest

from services.common import constants as c
from tests.conftest import JWT_SECRET
from tests.helpers import wait_until
from tests.integration.accounts import verified_token
from tests.integration.broker_users import SERVICES, BrokerUsers
from tests.integration.conftest import Api
from tests.integration.processes import ProcessStack

ACCESS_REFUSED = 403


@pytest.fixture
def users(rabbit_config):
    users = BrokerUsers(rabbit_config["vhost"]).create()
    try:
        yield users
    finally:
        users.remove()


@pytest.fixture
def procs(tmp_path, users, mongo_uri, mongo_db, mail_sink):
    env = dict(users.service_env(), MONGO_URI=mongo_uri, MONGO_DB=mongo_db, JWT_SECRET=JWT_SECRET,
               SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port,
               EMAIL_VERIFICATION="true")  # auth's account_email reaches notification too
    stack = ProcessStack(tmp_path, env).start()
    stack.mail = mail_sink
    try:
        stack.healthy(timeout=90)
        yield stack
    finally:
        stack.stop()


def refused(users, role, action):
    """Run `action(channel)` as `role`; the broker's refusal (code, text), or None if allowed."""
    conn = users.pika_connection(role)
    try:
        channel = conn.channel()
        channel.confirm_delivery()  # a refused publish closes the channel before the confirm
        action(channel)
        return None
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code, exc.reply_text
    finally:
        if conn.is_open:
            conn.close()


def publish(exchange, routing_key):
    return lambda channel: channel.basic_publish(exchange, routing_key, b"{}",
                                                 pika.BasicProperties(reply_to="x"))


def consume(queue):
    return lambda channel: channel.basic_consume(queue, lambda *args: None)


def test_flow_with_a_broker_user_per_service_and_what_they_cannot_do(procs, users, media):
    # registration goes through auth -> auth.events -> notification (the verification email)
    token = verified_token(procs, "least@example.com")
    api = Api(procs.base)
    response = api.upload(token, media.video("least.mp4", duration=2.0))
    assert response.status_code == 202, response.text
    job = api.wait_job(token, response.json()["job_id"], timeout=120)
    assert job["status"] == "done", job
    mails = procs.mail.wait_for(2)  # the verification email and the MP3's
    assert any(job["mp3_id"] in procs.mail.text_of(mail) for mail in mails)
    # the webhook routes: gateway -> notification over RPC and back (a literal public address, made
    # after the job finished: nothing is resolved, nothing is ever posted)
    hooks = api.url("/webhooks")
    made = api.http.post(hooks, headers={"Authorization": "Bearer " + token},
                         json={"url": "https://93.184.215.14/in", "events": ["job.finished"]})
    assert made.status_code == 201, made.text
    listed = api.http.get(hooks, headers={"Authorization": "Bearer " + token})
    assert [hook["id"] for hook in listed.json()["webhooks"]] == [made.json()["id"]]
    assert api.http.delete("%s/%s" % (hooks, made.json()["id"]),
                           headers={"Authorization": "Bearer " + token}).status_code == 204

    # every service connected with its own user; nobody as guest or through AMQP_URI
    expected = {users.names[service] for service in SERVICES}

    def all_connected():
        seen = set(users.connection_users())
        return seen if expected <= seen else None
    connected = wait_until(all_connected, 60, interval=0.5, message="the services' connections")
    assert connected == expected, connected
    assert "guest" not in connected
    # from here on nothing consumes: what the checks below publish stays in its queue
    procs.stop_all()

    # the converter and notification cannot call any RPC of auth or the gateway, nor answer them
    for role in (c.CONVERTER, c.NOTIFICATION):
        for key in ("auth.validate_token", "auth.create_user", "gateway.delete_user",
                    "gateway.requeue_job"):
            outcome = refused(users, role, publish("nameko-rpc", key))
            print("%s publish nameko-rpc %s -> %s" % (role, key, outcome))
            assert outcome and outcome[0] == ACCESS_REFUSED, (role, key, outcome)
            assert re.search(r"ACCESS_REFUSED.*nameko-rpc", outcome[1]), outcome
        for queue in ("rpc-auth", "rpc-gateway"):
            outcome = refused(users, role, consume(queue))
            print("%s consume %s -> %s" % (role, queue, outcome))
            assert outcome and outcome[0] == ACCESS_REFUSED, (role, queue, outcome)
            assert "queue '%s'" % queue in outcome[1], outcome
    # only auth consumes rpc-auth, only notification rpc-notification: not the gateway, not ops
    for role in (c.GATEWAY, "ops"):
        for queue in ("rpc-auth", "rpc-notification"):
            outcome = refused(users, role, consume(queue))
            print("%s consume %s -> %s" % (role, queue, outcome))
            assert outcome and outcome[0] == ACCESS_REFUSED, (role, queue, outcome)
    # nobody but the gateway calls notification's webhook methods
    for role in (c.CONVERTER, c.AUTH, "ops"):
        outcome = refused(users, role, publish("nameko-rpc", "notification.create_webhook"))
        print("%s publish nameko-rpc notification.create_webhook -> %s" % (role, outcome))
        assert outcome and outcome[0] == ACCESS_REFUSED, (role, outcome)
    # the gateway may publish to nameko-rpc, but its topic permission stops the ops-only calls
    outcome = refused(users, c.GATEWAY, publish("nameko-rpc", "auth.create_user"))
    print("gateway publish nameko-rpc auth.create_user -> %s" % (outcome,))
    assert outcome and outcome[0] == ACCESS_REFUSED and "access to topic" in outcome[1], outcome
    # KEDA's user counts the converter's queue (a passive declare) and can do nothing else
    converter_queue = "evt-gateway-video_uploaded--converter.handle_video_uploaded"
    assert refused(users, "keda", lambda ch: ch.queue_declare(converter_queue, passive=True)) is None
    outcome = refused(users, "keda", consume(converter_queue))
    print("keda consume %s -> %s" % (converter_queue, outcome))
    assert outcome and outcome[0] == ACCESS_REFUSED, outcome
    # and what the rules allow goes through (the refusals above are not a broken login)
    assert refused(users, c.GATEWAY, publish("nameko-rpc", "auth.ping")) is None
    assert refused(users, c.GATEWAY, publish("nameko-rpc", "notification.list_webhooks")) is None
    assert refused(users, "ops", publish("nameko-rpc", "auth.create_user")) is None
    assert refused(users, c.CONVERTER, publish("converter.events", "mp3_ready")) is None
