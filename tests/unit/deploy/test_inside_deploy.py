"""Issue 17 in the deploy files: the NetworkPolicies give each service exactly its peers, the
MongoDB users reach only their collections (Kubernetes and compose alike), TLS everywhere, no
default password, secrets as files."""
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools.stack import ROOT, SERVICES
from services.common import constants as c
from services.storage import counters

ROOT = Path(ROOT)
BROKER, MONGODB, DNS, POSTGRES, SMTP, INGRESS, MONITORING, WEBHOOKS = (
    "broker", "mongodb", "dns", "postgres", "smtp", "ingress", "monitoring", "webhooks")
ANY_PORT = "any"
# the webhooks' rule: the internet, any port, but never these
NOT_PUBLIC = {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
              "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7", "fe80::/10"}
# what each service talks to: (peer, port)
EGRESS = {
    c.GATEWAY: {(DNS, 53), (BROKER, 5671), (MONGODB, 27017)},
    c.AUTH: {(DNS, 53), (BROKER, 5671), (POSTGRES, 5432)},
    c.CONVERTER: {(DNS, 53), (BROKER, 5671), (MONGODB, 27017)},
    c.NOTIFICATION: {(DNS, 53), (BROKER, 5671), (MONGODB, 27017), (SMTP, 25), (SMTP, 465), (SMTP, 587),
                     (WEBHOOKS, ANY_PORT)},
}
INGRESS_PEERS = {
    c.GATEWAY: {(INGRESS, 8080), (MONITORING, 9100)},
    c.AUTH: {(MONITORING, 9101)},
    c.CONVERTER: {(MONITORING, 9102)},
    c.NOTIFICATION: {(MONITORING, 9103)},
}


def load_all(*parts):
    with open(ROOT.joinpath(*parts)) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def named(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def peer(rule):
    """A NetworkPolicy peer in this file's words."""
    if "ipBlock" in rule:
        return "anywhere"
    pods = rule.get("podSelector", {}).get("matchLabels", {})
    spaces = rule.get("namespaceSelector", {}).get("matchLabels", {})
    if pods == {"k8s-app": "kube-dns"} and spaces == {"kubernetes.io/metadata.name": "kube-system"}:
        return DNS
    if pods == {"app.kubernetes.io/name": "rabbitmq"} and not spaces:
        return BROKER
    if pods == {"app": "mongodb-svc"} and not spaces:
        return MONGODB
    if not pods and spaces == {"kubernetes.io/metadata.name": "ingress-nginx"}:
        return INGRESS
    if not pods and spaces == {"kubernetes.io/metadata.name": "monitoring"}:
        return MONITORING
    raise AssertionError("unexpected peer %r" % rule)


def reach(rules, direction):
    """{(peer, port)} of a policy's ingress or egress rules; 'anywhere' named by the port."""
    found = set()
    for rule in rules:
        if "ports" not in rule:  # the webhooks': every public address, any port
            blocks = [target["ipBlock"] for target in rule["to"]]
            assert {b["cidr"] for b in blocks} == {"0.0.0.0/0", "::/0"}, rule
            assert {net for b in blocks for net in b["except"]} == NOT_PUBLIC, rule
            found.add((WEBHOOKS, ANY_PORT))
            continue
        for port in rule["ports"]:
            for target in rule["to" if direction == "egress" else "from"]:
                name = peer(target)
                if name == "anywhere":
                    assert target["ipBlock"] == {"cidr": "0.0.0.0/0"}
                    name = POSTGRES if port["port"] == 5432 else SMTP
                found.add((name, port["port"]))
    return found


@pytest.fixture(scope="module")
def policies():
    return named(load_all("kubernetes", "base", "networkpolicies.yaml"), "NetworkPolicy")


def test_default_deny_in_and_out(policies):
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    base = yaml.safe_load((ROOT / "kubernetes/base/kustomization.yaml").read_text())
    assert "networkpolicies.yaml" in base["resources"]
    assert "networkpolicies.yaml" in yaml.safe_load(
        (ROOT / "kubernetes/operators/kustomization.yaml").read_text())["resources"]


def test_each_service_reaches_exactly_its_peers(policies):
    deployments = named(sum((load_all("kubernetes", "base", "%s.yaml" % s) for s in SERVICES), []),
                        "Deployment")
    assert set(policies) == {"default-deny"} | set(SERVICES)
    for service in SERVICES:
        spec = policies[service]["spec"]
        labels = deployments[service]["spec"]["template"]["metadata"]["labels"]
        assert spec["podSelector"]["matchLabels"].items() <= labels.items(), service
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert reach(spec["egress"], "egress") == EGRESS[service], service
        assert reach(spec.get("ingress", []), "ingress") == INGRESS_PEERS[service], service
    # the converter: only the broker and MongoDB (and DNS to find them)
    assert {name for name, _ in EGRESS[c.CONVERTER]} == {DNS, BROKER, MONGODB}


def test_backing_services_take_only_their_clients(policies):
    ops = named(load_all("kubernetes", "operators", "networkpolicies.yaml"), "NetworkPolicy")
    mongo_from = ops["mongodb"]["spec"]["ingress"][0]["from"]
    clients = {rule["podSelector"]["matchLabels"].get("app.kubernetes.io/component") for rule in mongo_from}
    assert clients == {c.GATEWAY, c.CONVERTER, c.NOTIFICATION, None}  # None: the other members
    amqps = ops["rabbitmq"]["spec"]["ingress"][0]
    assert [p["port"] for p in amqps["ports"]] == [5671]  # TLS only


def mongo_roles_k8s():
    (mongo,) = load_all("kubernetes", "operators", "mongodb.yaml")
    roles = {r["role"]: {p["resource"]["collection"]: set(p["actions"]) for p in r["privileges"]}
             for r in mongo["spec"]["security"]["roles"]}
    users = {u["name"]: u for u in mongo["spec"]["users"]}
    return mongo, roles, users


def test_mongodb_users_reach_only_their_collections():
    mongo, roles, users = mongo_roles_k8s()
    assert mongo["spec"]["security"]["tls"]["enabled"] is True
    assert mongo["spec"]["security"]["tls"]["optional"] is False
    assert c.AUTH not in users, "auth keeps its users in PostgreSQL"
    for service in (c.GATEWAY, c.CONVERTER, c.NOTIFICATION):
        assert users[service]["roles"] == [{"name": "mp3svc-%s" % service, "db": "admin"}]
        assert all(p["resource"]["db"] == "mp3svc" for r in mongo["spec"]["security"]["roles"]
                   for p in r["privileges"])
    # the outcome emails' state, USER_EMAIL_RATE's counters, the webhooks and their deliveries
    assert set(roles["mp3svc-notification"]) == {c.JOBS_COLLECTION, *counters.COLLECTIONS,
                                                 c.WEBHOOKS_COLLECTION, c.DELIVERIES_COLLECTION}
    assert "insert" not in roles["mp3svc-notification"][c.JOBS_COLLECTION]
    converter = roles["mp3svc-converter"]
    assert set(converter) == {c.JOBS_COLLECTION, "videos.files", "videos.chunks", "mp3s.files",
                              "mp3s.chunks", "converter_served"}
    assert "insert" not in converter["videos.files"] and "insert" not in converter[c.JOBS_COLLECTION]
    gateway = roles["mp3svc-gateway"]
    assert c.SLOTS_COLLECTION in gateway and "insert" not in gateway["mp3s.files"]


def test_compose_creates_the_same_mongodb_roles():
    _, roles, _ = mongo_roles_k8s()
    script = (ROOT / "docker/mongo/init-users.js").read_text()
    for service in (c.GATEWAY, c.CONVERTER, c.NOTIFICATION):
        block = re.search(r"\n  %s: \[(.*?)\],\n" % service, script, re.S).group(1)
        collections = set(re.findall(r'on\("([a-z0-9_.]+)"', block))
        assert collections == set(roles["mp3svc-%s" % service]), service


def test_tls_and_no_default_password_in_compose():
    compose = yaml.safe_load((ROOT / "docker/docker-compose.yml").read_text())
    text = (ROOT / "docker/docker-compose.yml").read_text()
    assert "guest" not in text.replace("no guest user", "")
    conf = (ROOT / "docker/rabbitmq/rabbitmq.conf").read_text()
    assert "listeners.tcp = none" in conf and "listeners.ssl.default = 5671" in conf
    assert "load_definitions" in conf
    assert "--tlsMode=requireTLS" in compose["services"]["mongo"]["command"]
    assert "--auth" in compose["services"]["mongo"]["command"]
    assert "ports" not in compose["services"]["rabbitmq"]


def test_entrypoint_exports_the_secret_files(tmp_path):
    secrets = tmp_path / "secrets"
    (secrets / "tls").mkdir(parents=True)
    (secrets / "AMQP_URI_AUTH").write_text("amqps://auth:s3cret@broker:5671/\n")
    (secrets / "tls" / "ca.crt").write_text("not a variable")
    (secrets / "bad-name").write_text("x")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nameko").write_text(
        '#!/bin/sh\necho "AMQP_URI_AUTH=$AMQP_URI_AUTH"\nenv | grep -c bad || true\n')
    (fake / "nameko").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"]), SERVICE="auth",
               SECRETS_DIR=str(secrets))
    proc = subprocess.run(["sh", str(ROOT / "docker/entrypoint.sh")], env=env, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["AMQP_URI_AUTH=amqps://auth:s3cret@broker:5671/", "0"]


def test_prod_images_are_pinned_and_pulled():
    prod = yaml.safe_load((ROOT / "kubernetes/overlays/prod/kustomization.yaml").read_text())
    (image,) = prod["images"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"]) and "newTag" not in image
    assert any("imagePullPolicy" in p["patch"] and "Always" in p["patch"] for p in prod["patches"])


def test_the_broker_and_mongodb_certificates_come_from_the_internal_ca():
    docs = load_all("kubernetes", "operators", "certificates.yaml")
    certs = named(docs, "Certificate")
    assert certs["mp3svc-internal-ca"]["spec"]["isCA"] is True
    for name in ("rabbitmq-tls", "mongodb-tls"):
        assert certs[name]["spec"]["issuerRef"]["name"] == "mp3svc-internal"
        assert certs[name]["spec"]["secretName"] == name
    assert "rabbitmq.mp3svc.svc" in certs["rabbitmq-tls"]["spec"]["dnsNames"]
    rabbit = named(load_all("kubernetes", "operators", "rabbitmq.yaml"), "RabbitmqCluster")["rabbitmq"]
    assert rabbit["spec"]["tls"] == {"secretName": "rabbitmq-tls", "disableNonTLSListeners": True}
    mongo, _, _ = mongo_roles_k8s()
    assert mongo["spec"]["security"]["tls"]["certificateKeySecretRef"] == {"name": "mongodb-tls"}
