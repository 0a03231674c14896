"""`make run`: the whole system on one machine, in the foreground.

Starts what the environment does not point elsewhere (RabbitMQ when nothing answers at AMQP_URI, the
embedded MongoDB wire server when MONGO_URI is unset, a Maildir mail sink when SMTP_HOST is unset),
then the four Nameko services. SIGINT or SIGTERM stops everything it started.

    python -m services.devrun [--converters N] [--only broker]
"""
import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse

from services.common.utils import die_with_parent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAR = os.path.join(ROOT, "var")
SERVICES = ("auth", "gateway", "converter", "notification")
DEFAULT_AMQP = "pyamqp://guest:guest@127.0.0.1:5672/"
STOP_GRACE = 7  # seconds the services get to finish before SIGKILL; the whole stop stays under 15 s


def say(message):
    print("[make run] %s" % message, flush=True)


def port_open(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check, timeout, what, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise SystemExit("%s: process exited with status %s" % (what, proc.returncode))
        time.sleep(0.2)
    raise SystemExit("%s: not ready after %d s" % (what, timeout))


class Launcher:
    def __init__(self):
        self.children = []  # (name, Popen, stop callable or None), in start order
        self.env = dict(os.environ)

    def spawn(self, name, argv, log_name=None, stop=None, env=None):
        log_path = os.path.join(VAR, "log", (log_name or name) + ".log")
        log = open(log_path, "ab")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env or self.env, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent(signal.SIGTERM))
        self.children.append((name, proc, stop))
        return proc

    def stop_all(self):
        """The services first (they may finish work while the broker and MongoDB are still up),
        then the backing services; SIGKILL for whatever overstays its grace."""
        services = [c for c in self.children if c[0].split("-")[0] in SERVICES]
        backing = [c for c in self.children if c not in services]
        self._stop_group(services, STOP_GRACE)
        self._stop_group(list(reversed(backing)), 5)

    def _stop_group(self, group, grace):
        for name, proc, stop in group:
            if proc.poll() is None:
                if stop is not None:
                    stop()
                else:
                    proc.terminate()
        deadline = time.monotonic() + grace
        for name, proc, stop in group:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say("%s did not stop in time; killing it" % name)
                proc.kill()
                proc.wait()

    # -- backing services ----------------------------------------------------------------------
    def ensure_broker(self):
        uri = urlparse(self.env.get("AMQP_URI") or DEFAULT_AMQP)
        host, port = uri.hostname or "127.0.0.1", uri.port or 5672
        if port_open(host, port):
            say("RabbitMQ answers at %s:%d" % (host, port))
        elif host not in ("127.0.0.1", "localhost"):
            raise SystemExit("AMQP_URI points at %s:%d and nothing answers there" % (host, port))
        else:
            server = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
            if not os.path.exists(server):
                raise SystemExit("no broker at %s:%d and rabbitmq-server is not installed "
                                 "(run `make setup` as root)" % (host, port))
            base = os.path.join(VAR, "rabbitmq")
            for sub in ("mnesia", "log"):
                os.makedirs(os.path.join(base, sub), exist_ok=True)
            # the tests' per-test vhosts need the management API; it is enabled here so that a
            # fresh machine needs no `rabbitmq-plugins` call (not when another broker has its port)
            plugins = os.path.join(base, "enabled_plugins")
            with open(plugins, "w") as handle:
                handle.write("[].\n" if port_open("127.0.0.1", 15672)
                             else "[rabbitmq_management].\n")
            config = os.path.join(base, "rabbitmq.conf")
            with open(config, "w") as handle:
                handle.write("listeners.tcp.1 = 127.0.0.1:%d\n" % port)
            own_for_broker(base)
            env = dict(self.env, RABBITMQ_MNESIA_BASE=os.path.join(base, "mnesia"),
                       RABBITMQ_LOG_BASE=os.path.join(base, "log"),
                       RABBITMQ_NODENAME="mp3svc@localhost",
                       RABBITMQ_ENABLED_PLUGINS_FILE=plugins,
                       RABBITMQ_CONFIG_FILE=config,
                       RABBITMQ_NODE_PORT=str(port))
            had_epmd = subprocess.run(["pgrep", "-x", "epmd"], capture_output=True).returncode == 0
            say("starting RabbitMQ on %s:%d (data in var/rabbitmq)" % (host, port))

            def stop():
                try:
                    subprocess.run(["rabbitmqctl", "-n", "mp3svc@localhost", "stop"],
                                   capture_output=True, timeout=5, env=env)
                except subprocess.TimeoutExpired:
                    pass
                if not had_epmd:
                    subprocess.run(["epmd", "-kill"], capture_output=True)
            proc = self.spawn("rabbitmq", [server], stop=stop, env=env)
            wait_until(lambda: port_open(host, port), 90, "RabbitMQ", proc)
        self.ensure_management(host)

    def ensure_management(self, host):
        """The tests' per-test vhosts need the management API; enable it on a local broker."""
        if host not in ("127.0.0.1", "localhost") or port_open(host, 15672):
            return
        nodes = ["mp3svc@localhost"] if any(n == "rabbitmq" for n, _, _ in self.children) else []
        cmd = ["rabbitmq-plugins"] + (["-n", nodes[0]] if nodes else []) + [
            "enable", "rabbitmq_management"]
        subprocess.run(cmd, capture_output=True, timeout=120)
        wait_until(lambda: port_open(host, 15672), 60, "RabbitMQ management")

    def ensure_mongo(self):
        if self.env.get("MONGO_URI"):
            say("MongoDB: %s" % redact(self.env["MONGO_URI"]))
            return
        binary = os.path.join(ROOT, ".venv-mongo", "bin", "nx-27017")
        data = os.path.join(VAR, "mongo")
        os.makedirs(data, exist_ok=True)
        if port_open("127.0.0.1", 27017):
            raise SystemExit("MONGO_URI is unset but something already listens on 27017; "
                             "set MONGO_URI to use it, or stop it")
        say("starting the embedded MongoDB wire server nx-27017 on 127.0.0.1:27017 (var/mongo)")
        proc = self.spawn("nx-27017", [binary, "--data-dir", data, "--host", "127.0.0.1",
                                       "-p", "27017", "--log-file",
                                       os.path.join(VAR, "log", "nx-27017.log"),
                                       "--pid-file", os.path.join(VAR, "nx-27017.pid")])
        wait_until(lambda: port_open("127.0.0.1", 27017), 60, "nx-27017", proc)
        self.env["MONGO_URI"] = "mongodb://127.0.0.1:27017/"

    def ensure_mail(self):
        if self.env.get("SMTP_HOST"):
            say("mail goes to SMTP %s:%s" % (self.env["SMTP_HOST"], self.env.get("SMTP_PORT", 25)))
            return
        port = int(self.env.get("SMTP_PORT") or 1025)
        maildir = os.path.join(VAR, "mail")
        proc = self.spawn("mailsink", [sys.executable, "-m", "services.mailsink", "--maildir",
                                       maildir, "--port", str(port)])
        wait_until(lambda: port_open("127.0.0.1", port), 30, "mail sink", proc)
        self.env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
        say("mail goes to the dev sink on 127.0.0.1:%d: one file per message in var/mail/new/, "
            "one line per message in var/log/mailsink.log" % port)

    def ensure_secret(self):
        if self.env.get("JWT_SECRET"):
            return
        path = os.path.join(VAR, "jwt_secret")
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            say("generated a JWT secret in var/jwt_secret")
        with open(path) as handle:
            self.env["JWT_SECRET"] = handle.read().strip()

    # -- the services ----------------------------------------------------------------------------
    def start_services(self, converters):
        nameko = os.path.join(os.path.dirname(sys.executable), "nameko")
        self.env.setdefault("AUTH_DB_URI", "sqlite:///%s" % os.path.join(VAR, "auth.db"))
        for service in SERVICES:
            for index in range(converters if service == "converter" else 1):
                name = service if index == 0 else "%s-%d" % (service, index + 1)
                self.spawn(name, [nameko, "run", "--config", "config/%s.yaml" % service,
                                  "services.%s.service" % service])
        address = self.env.get("GATEWAY_ADDRESS") or "127.0.0.1:8080"
        url = "http://%s" % address

        def healthy():
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                    return response.status == 200
            except Exception:
                return False
        wait_until(healthy, 90, "gateway health")
        say("gateway ready at %s  (logs in var/log/, Ctrl-C stops everything)" % url)


def own_for_broker(path):
    """Debian's rabbitmq-server drops to the `rabbitmq` user when started as root."""
    if os.geteuid() != 0:
        return
    try:
        import pwd
        entry = pwd.getpwnam("rabbitmq")
    except KeyError:
        return
    for folder, dirs, files in os.walk(path):
        for name in [folder] + [os.path.join(folder, f) for f in files]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


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
    for sub in ("log", "mail", "mongo"):
        os.makedirs(os.path.join(VAR, sub), exist_ok=True)

    launcher = Launcher()
    stopping = []

    def on_signal(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = 0
    try:
        launcher.ensure_broker()
        if args.only == "broker":
            say("broker ready")
        else:
            launcher.ensure_secret()
            launcher.ensure_mongo()
            launcher.ensure_mail()
            launcher.start_services(args.converters)
        while True:
            for name, proc, _ in launcher.children:
                if proc.poll() is not None:
                    say("%s exited with status %s; see var/log/%s.log"
                        % (name, proc.returncode, name))
                    raise SystemExit(1)
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping")
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int) and exc.code:
            say(str(exc.code))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        launcher.stop_all()
        say("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
