"""`make run`: the whole system on one machine, in the foreground.

Starts what the environment does not point elsewhere (RabbitMQ when nothing answers at AMQP_URI, the
embedded MongoDB wire server when MONGO_URI is unset, a Maildir mail sink when SMTP_HOST is unset),
then the four Nameko services, all through devtools.stack. SIGINT or SIGTERM stops everything it
started. Run from the repository root:

    python -m devtools.run [--converters N] [--only broker]
"""
import argparse
import os
import secrets
import shutil
import signal
import sys
import time
from urllib.parse import urlparse

from devtools.stack import LOCAL, ROOT, SERVICES, NotReady, Stack, port_open
from services.auth.settings import AuthSettings
from services.common.settings import MongoSettings

VAR = os.path.join(ROOT, "var")
DEFAULT_AMQP = "pyamqp://guest:guest@127.0.0.1:5672/"
DEFAULT_SMTP_PORT = 1025
DEFAULT_GATEWAY = "127.0.0.1:8080"
MONGO_PORT = 27017
LOCAL_HOSTS = (LOCAL, "localhost")


def say(message):
    print("[make run] %s" % message, flush=True)


def ensure_broker(stack):
    uri = urlparse(stack.env.get("AMQP_URI") or DEFAULT_AMQP)
    host, port = uri.hostname or LOCAL, uri.port or 5672
    if port_open(host, port):
        say("RabbitMQ answers at %s:%d" % (host, port))
        if host in LOCAL_HOSTS:
            stack.enable_management()
        return
    if host not in LOCAL_HOSTS:
        raise SystemExit("AMQP_URI points at %s:%d and nothing answers there" % (host, port))
    server = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
    if not os.path.exists(server):
        raise SystemExit("no broker at %s:%d and rabbitmq-server is not installed "
                         "(run `make setup` as root)" % (host, port))
    say("starting RabbitMQ on %s:%d (data in var/rabbitmq)" % (host, port))
    stack.start_broker(os.path.join(VAR, "rabbitmq"), port, server)


def ensure_mongo(stack):
    if stack.env.get(MongoSettings.MONGO_URI.variable):
        say("MongoDB: %s" % redact(stack.env[MongoSettings.MONGO_URI.variable]))
        return
    if port_open(LOCAL, MONGO_PORT):
        raise SystemExit("MONGO_URI is unset but something already listens on %d; "
                         "set MONGO_URI to use it, or stop it" % MONGO_PORT)
    say("starting the embedded MongoDB wire server nx-27017 on %s:%d (var/mongo)" % (LOCAL, MONGO_PORT))
    stack.start_mongo(os.path.join(VAR, "mongo"), MONGO_PORT)


def ensure_mail(stack):
    port = int(stack.env.get("SMTP_PORT") or DEFAULT_SMTP_PORT)
    if stack.env.get("SMTP_HOST"):
        say("mail goes to SMTP %s:%d" % (stack.env["SMTP_HOST"], port))
        return
    stack.start_mail_sink(os.path.join(VAR, "mail"), port)
    say("mail goes to the dev sink on %s:%d: one file per message in var/mail/new/, "
        "one line per message in var/log/mailsink.log" % (LOCAL, port))


def ensure_secret(stack):
    if stack.env.get(AuthSettings.JWT_SECRET.variable):
        return
    path = os.path.join(VAR, "jwt_secret")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        say("generated a JWT secret in var/jwt_secret")
    with open(path) as handle:
        stack.env[AuthSettings.JWT_SECRET.variable] = handle.read().strip()


def start_services(stack, converters):
    stack.env.setdefault("AUTH_DB_URI", "sqlite:///%s" % os.path.join(VAR, "auth.db"))
    stack.start_services(converters=converters)
    url = "http://%s" % (stack.env.get("GATEWAY_ADDRESS") or DEFAULT_GATEWAY)
    stack.wait_healthy(url, 90)
    for service in SERVICES:
        say("%s metrics at %s" % (service, stack.metrics_url(service)))
    say("gateway ready at %s  (logs in var/log/, Ctrl-C stops everything)" % url)


def redact(uri):
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(":%s@" % parsed.password, ":***@")
    return uri


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run mp3svc locally.")
    parser.add_argument("--converters", type=int, default=1)
    parser.add_argument("--only", choices=["broker"], help="start only the broker (for make test)")
    args = parser.parse_args(argv)
    stack = Stack(os.path.join(VAR, "log"), os.environ)

    def on_signal(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = 0
    try:
        ensure_broker(stack)
        if args.only == "broker":
            say("broker ready")
        else:
            ensure_secret(stack)
            ensure_mongo(stack)
            ensure_mail(stack)
            start_services(stack, args.converters)
        while True:
            stack.check_running()
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping")
    except NotReady as exc:
        say(str(exc))
        status = 1
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int) and exc.code:
            say(str(exc.code))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop_all()
        say("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
