"""The services' RabbitMQ users and permissions, read from their one definition:
kubernetes/operators/broker-access.yaml (messaging-topology-operator User, Permission,
TopicPermission and Exchange objects).

* `load()`: the rules as plain data.
* `definitions(rules, passwords)`: the same rules as a RabbitMQ definitions file (compose loads it
  with `load_definitions`), passwords hashed the way RabbitMQ stores them.
* `apply(api, rules, passwords, vhost)`: the same rules put into a running broker through its
  management API (the integration tests' per-test vhosts).

    python -m devtools.broker_access definitions --passwords-dir DIR [--vhost /] > definitions.json

reads each user's password from DIR/amqp-<user>-password (scripts/compose-secrets.sh makes them).
"""
import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
import urllib.parse
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "kubernetes", "operators", "broker-access.yaml")
PERMISSIONS = ("configure", "write", "read")


def load(path=SOURCE):
    """{"users": {name: {"configure", "write", "read", "topics": {exchange: {"write", "read"}}}},
    "exchanges": [{"name", "type", "durable", "auto_delete"}]}"""
    with open(path) as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    users = {doc["metadata"]["name"]: {"topics": {}} for doc in docs if doc["kind"] == "User"}
    exchanges = []
    for doc in docs:
        spec = doc["spec"]
        if doc["kind"] == "Permission":
            users[spec["user"]].update({p: spec["permissions"][p] for p in PERMISSIONS})
        elif doc["kind"] == "TopicPermission":
            perms = spec["permissions"]
            users[spec["user"]]["topics"][perms["exchange"]] = {"write": perms["write"],
                                                                "read": perms["read"]}
        elif doc["kind"] == "Exchange":
            exchanges.append({"name": spec["name"], "type": spec["type"],
                              "durable": spec.get("durable", True),
                              "auto_delete": spec.get("autoDelete", False)})
    missing = [name for name, user in users.items() if "read" not in user]
    if missing:
        raise ValueError("users without a Permission in %s: %s" % (path, ", ".join(missing)))
    return {"users": users, "exchanges": exchanges}


def password_hash(password, salt=None):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(rules, passwords, vhost="/"):
    """A RabbitMQ definitions document: the vhost, the users (no guest), their permissions and
    topic permissions, the exchanges declared ahead."""
    users = rules["users"]
    return {
        "users": [{"name": name, "password_hash": password_hash(passwords[name]),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
                  for name in users],
        "vhosts": [{"name": vhost}],
        "permissions": [dict({p: user[p] for p in PERMISSIONS}, user=name, vhost=vhost)
                        for name, user in users.items()],
        "topic_permissions": [dict(perms, user=name, vhost=vhost, exchange=exchange)
                              for name, user in users.items()
                              for exchange, perms in user["topics"].items()],
        "exchanges": [dict(exchange, vhost=vhost, internal=False, arguments={})
                      for exchange in rules["exchanges"]],
    }


class ManagementApi:
    """The few calls of RabbitMQ's management HTTP API that `apply` needs."""

    def __init__(self, base, user, password):
        self.base = base.rstrip("/")
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.headers = {"Authorization": "Basic " + token, "Content-Type": "application/json"}

    def call(self, method, *path, body=None):
        url = self.base + "/api/" + "/".join(urllib.parse.quote(part, safe="") for part in path)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None


def apply(api, rules, passwords, vhost):
    """Create the users, their permissions and topic permissions on `vhost`, and its exchanges."""
    for name, user in rules["users"].items():
        api.call("PUT", "users", name, body={"password": passwords[name], "tags": ""})
        api.call("PUT", "permissions", vhost, name, body={p: user[p] for p in PERMISSIONS})
        for exchange, perms in user["topics"].items():
            api.call("PUT", "topic-permissions", vhost, name, body=dict(perms, exchange=exchange))
    for exchange in rules["exchanges"]:
        api.call("PUT", "exchanges", vhost, exchange["name"], body={
            "type": exchange["type"], "durable": exchange["durable"],
            "auto_delete": exchange["auto_delete"], "internal": False, "arguments": {}})


def remove_users(api, rules):
    for name in rules["users"]:
        try:
            api.call("DELETE", "users", name)
        except OSError:
            pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    defs = commands.add_parser("definitions", help="print a RabbitMQ definitions file")
    defs.add_argument("--passwords-dir", required=True)
    defs.add_argument("--vhost", default="/")
    args = parser.parse_args(argv)
    rules = load()
    passwords = {}
    for name in rules["users"]:
        path = os.path.join(args.passwords_dir, "amqp-%s-password" % name)
        try:
            with open(path) as handle:
                passwords[name] = handle.read().strip()
        except OSError as exc:
            raise SystemExit("no password for broker user %s: %s" % (name, exc))
        if len(passwords[name]) < 16:
            raise SystemExit("%s: a broker password needs at least 16 characters" % path)
    json.dump(definitions(rules, passwords, args.vhost), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
