"""The whole flow over amqps://: a private RabbitMQ node with a TLS listener and a certificate
from a CA the test makes (scripts/make-certs.sh), the services on their own users of
kubernetes/operators/broker-access.yaml; they verify the certificate through AMQP_SSL_CA."""
import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import uuid

import pytest

from devtools.stack import ROOT, Stack, clean_env, free_port
from tests.conftest import JWT_SECRET
from tests.integration.broker_users import SERVICES, BrokerUsers
from tests.integration.conftest import Api
from tests.integration.processes import ProcessStack

HOST = "localhost"  # the name in the broker's certificate, which the services check


def make_certs(directory, *hosts):
    subprocess.run([os.path.join(ROOT, "scripts", "make-certs.sh"), str(directory)] + list(hosts),
                   check=True, capture_output=True, timeout=120)
    return directory


@pytest.fixture
def tls_broker(tmp_path):
    # a folder of its own under /tmp: pytest's are closed to the `rabbitmq` user the server drops to
    base = pathlib.Path(tempfile.mkdtemp(prefix="mp3svc-tls-"))
    certs = make_certs(base / "certs", HOST)
    port, tls_port, management_port = free_port(), free_port(), free_port()
    node = "mp3svc-tls-%s@localhost" % uuid.uuid4().hex[:6]
    stack = Stack(tmp_path / "broker-logs", clean_env())
    stack.start_broker(str(base), port, node=node, name="rabbitmq-tls", wait_port=tls_port,
                       management_port=management_port, config_lines=[
                           "listeners.ssl.default = 127.0.0.1:%d" % tls_port,
                           "ssl_options.cacertfile = %s" % (certs / "ca.pem"),
                           "ssl_options.certfile = %s" % (certs / ("%s.pem" % HOST)),
                           "ssl_options.keyfile = %s" % (certs / ("%s.key" % HOST)),
                           "ssl_options.verify = verify_none",
                           "ssl_options.versions.1 = tlsv1.3",
                           "ssl_options.versions.2 = tlsv1.2"])
    stack.node, stack.tls_port, stack.ca = node, tls_port, str(certs / "ca.pem")
    # the services' own users (kubernetes/operators/broker-access.yaml) on the node's default vhost
    stack.users = BrokerUsers("/", host=HOST, port=tls_port, scheme="amqps",
                              management="http://127.0.0.1:%d" % management_port).create()
    try:
        yield stack
    finally:
        stack.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def connections(broker):
    out = subprocess.run(["rabbitmqctl", "-n", broker.node, "list_connections", "user", "ssl",
                          "ssl_protocol", "--formatter", "json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out)


def test_flow_over_amqps(tls_broker, tmp_path, mongo_uri, mongo_db, mail_sink, media):
    """Each service on its own user (AMQP_URI_<SERVICE>, amqps://), checking the broker's
    certificate against the test's CA."""
    procs = ProcessStack(tmp_path / "services", dict(
        tls_broker.users.service_env(), AMQP_SSL_CA=tls_broker.ca, MONGO_URI=mongo_uri,
        MONGO_DB=mongo_db, JWT_SECRET=JWT_SECRET, SMTP_HOST="127.0.0.1",
        SMTP_PORT=mail_sink.port)).start()
    procs.mail = mail_sink
    try:
        procs.healthy(timeout=90)
        api = Api(procs.base)
        token = api.token_for("tls@example.com")
        job = api.wait_job(token, api.upload(token, media.video("tls.mp4", duration=2.0)).json()["job_id"],
                           timeout=120)
        assert job["status"] == "done", job
        (mail,) = mail_sink.wait_for(1)
        assert job["mp3_id"] in mail_sink.text_of(mail)
        conns = connections(tls_broker)
        print("broker connections:", conns)
        assert {conn["user"] for conn in conns} == {tls_broker.users.names[s] for s in SERVICES}
        assert all(conn["ssl"] is True and conn["ssl_protocol"] in ("tlsv1.3", "tlsv1.2")
                   for conn in conns), conns
    finally:
        procs.stop()


def test_a_certificate_from_another_ca_is_refused(tls_broker, tmp_path):
    """The services' TLS verifies the broker: a client trusting another CA cannot connect."""
    other = make_certs(tmp_path / "other", "elsewhere")
    context = ssl.create_default_context(cafile=str(other / "ca.pem"))
    with socket.create_connection(("127.0.0.1", tls_broker.tls_port), timeout=10) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(sock, server_hostname=HOST)
    context = ssl.create_default_context(cafile=tls_broker.ca)
    with socket.create_connection(("127.0.0.1", tls_broker.tls_port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=HOST) as tls:
            assert tls.version() in ("TLSv1.3", "TLSv1.2")
