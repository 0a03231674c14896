"""The one launcher of local mp3svc processes, for `make run` (devtools.run), the integration tests
(tests/integration/processes.py, the `mongo_uri` fixture and tests.helpers.MailSink) and `make bench`
(bench/stack.py).

A `Stack` starts, watches and stops child processes: the embedded MongoDB wire server nx-27017, the
development mail sink, a private RabbitMQ node and the four Nameko services, each run as in
production (`nameko run --config config/<svc>.yaml services.<svc>.service`) from the repository root.
Every child logs to <log_dir>/<name>.log, runs in its own session (a Ctrl-C in the terminal reaches
only the launcher, which stops the services before what they depend on) and gets SIGTERM when the
launcher dies. The children see only the environment given to the Stack: `clean_env()` for tests
and bench, the caller's for `make run`.
"""
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from unittest import mock

import yaml
from nameko.cli.main import IMPLICIT_ENV_VAR_MATCHER, env_var_constructor

from services.common import constants as c
from services.common.metrics import metrics_setting
from services.common.settings import MongoSettings
from services.common.utils import die_with_parent, kill_group

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = "127.0.0.1"
SERVICES = (c.AUTH, c.GATEWAY, c.CONVERTER, c.NOTIFICATION)  # start order
NAMEKO = os.path.join(os.path.dirname(sys.executable), "nameko")
NX_27017 = os.environ.get("NX_27017_BIN") or os.path.join(ROOT, ".venv-mongo", "bin", "nx-27017")
RABBITMQ_NODE = "mp3svc@localhost"
RABBITMQ_MANAGEMENT_PORT = 15672
CLEAN_ENV_VARS = ("PATH", "HOME", "LANG")
SERVICE_GRACE = 7   # seconds the services get to finish before SIGKILL
BACKING_GRACE = 5   # the same for the backing servers; a whole stop stays under 15 s
# free_port's blocks of pytest-xdist workers: gw0 10000-11999, gw1 12000-13999, ... (11 fit below
# Linux's default ephemeral range, 32768-60999)
WORKER_PORT_BASE, WORKER_PORTS = 10000, 2000
# eventlet warns that it is deprecated when nameko's command line imports it (`nameko run`, `nameko
# shell`): a banner of eight lines at every start. Only warnings raised from that module are ignored.
QUIET_WARNINGS = "ignore::Warning:nameko.cli.commands"


class NamekoLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with nameko's `${VAR:default}` rules (nameko adds them to SafeLoader
    itself, which would change how every other YAML file reads)."""


NamekoLoader.add_constructor("!env_var", env_var_constructor)
NamekoLoader.add_constructor("!raw_env_var", lambda loader, node: env_var_constructor(
    loader, node, raw=True))
NamekoLoader.add_implicit_resolver("!env_var", IMPLICIT_ENV_VAR_MATCHER, None)


def service_config(service, env):
    """config/<service>.yaml as `nameko run` reads it in the environment `env`."""
    with mock.patch.dict(os.environ, env, clear=True):
        with open(os.path.join(ROOT, "config", "%s.yaml" % service)) as handle:
            return yaml.load(handle, Loader=NamekoLoader)


class NotReady(AssertionError):
    """A process did not become ready in time (an AssertionError: a test shows it as a failure)."""


def free_port():
    """A port nothing is bound to, for a server about to start. Under pytest-xdist the worker takes
    it from its own block (`worker_ports`): a port the kernel gives out (bind to 0) could be given
    to another worker, or to an outgoing connection, before this one's server binds it."""
    ports = worker_ports()
    if ports is None:
        with socket.socket() as sock:
            sock.bind((LOCAL, 0))
            return sock.getsockname()[1]
    for _ in range(WORKER_PORTS):
        port = next(ports)
        with socket.socket() as sock:
            try:
                sock.bind((LOCAL, port))
            except OSError:
                continue  # in use (by anything on the machine), or in TIME_WAIT
            return port
    raise OSError("no free port in pytest-xdist worker %s's block" % os.environ["PYTEST_XDIST_WORKER"])


def ephemeral_ports():
    """The kernel's range of ports for outgoing connections and binds to port 0."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low, high = map(int, handle.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return low, high


_worker_ports = {}


def worker_ports():
    """The ports of this pytest-xdist worker (PYTEST_XDIST_WORKER gw<n>), an iterator cycling through
    block n of WORKER_PORTS ports from WORKER_PORT_BASE, from a random place (another checkout's run
    on the machine has the same blocks); None outside a worker. The blocks lie below the ephemeral
    range, so that neither another worker nor the kernel picks the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return None
    if worker not in _worker_ports:
        first = WORKER_PORT_BASE + int(worker[2:]) * WORKER_PORTS
        if first + WORKER_PORTS > ephemeral_ports()[0]:
            raise OSError("pytest-xdist worker %s: its ports would reach the ephemeral range %d-%d "
                          "(use fewer workers)" % ((worker,) + ephemeral_ports()))
        block = list(range(first, first + WORKER_PORTS))
        start = random.randrange(WORKER_PORTS)
        _worker_ports[worker] = itertools.cycle(block[start:] + block[:start])
    return _worker_ports[worker]


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(condition, timeout=30, interval=0.1, message="condition", proc=None):
    """Poll `condition` until it returns a truthy value and return it; raise NotReady after
    `timeout` seconds, or as soon as `proc` (a Popen) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise NotReady("%s: the process exited with status %s" % (message, proc.returncode))
        if time.monotonic() > deadline:
            raise NotReady("timed out after %ss waiting for %s" % (timeout, message))
        time.sleep(interval)


def wait_for_port(host, port, timeout=30, proc=None):
    wait_until(lambda: port_open(host, port), timeout, interval=0.1,
               message="%s:%d to listen" % (host, port), proc=proc)


def free_metrics_env():
    """<SERVICE>_METRICS_ADDRESS of the four services on free ports (the defaults, 9100-9103, are
    fixed ports that every checkout on a machine shares)."""
    return {metrics_setting(service): "%s:%d" % (LOCAL, free_port()) for service in SERVICES}


def clean_env(**values):
    """PATH, HOME and LANG of this process and the given values: nothing else leaks into children."""
    env = {name: os.environ[name] for name in CLEAN_ENV_VARS if name in os.environ}
    env.update({name: str(value) for name, value in values.items()})
    return env


def consumer_queue(source, event_type):
    """The queue of the first consumer of an event, named as services.common.messaging names it."""
    with warnings.catch_warnings():  # nameko's import warns that eventlet is deprecated
        warnings.simplefilter("ignore")
        from services.common.messaging import CONSUMERS, queue_name
    return queue_name(source, event_type, *CONSUMERS[(source, event_type)][0])


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


class Stack:
    def __init__(self, log_dir, env, nice=False):
        self.log_dir = str(log_dir)
        os.makedirs(self.log_dir, exist_ok=True)
        self.env = dict(env)
        self.nice = nice
        self.procs = {}        # name -> Popen, in start order
        self.services = set()  # names of the Nameko service processes
        self.expected = set()  # names stopped or signalled on purpose
        self._stop_commands = {}

    # -- processes -------------------------------------------------------------------------------
    def log_path(self, name):
        return os.path.join(self.log_dir, name + ".log")

    def log(self, name):
        with open(self.log_path(name), "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def spawn(self, name, argv, env=None, stop_command=None):
        if self.nice:
            argv = ["nice", "-n", "19"] + list(argv)
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env if env is None else env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM))
        self.procs[name] = proc
        self.expected.discard(name)
        if stop_command:
            self._stop_commands[name] = stop_command
        return proc

    def pid(self, name):
        proc = self.procs.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    def signal(self, name, sig=signal.SIGKILL):
        self.expected.add(name)
        self.procs[name].send_signal(sig)

    def wait_exit(self, name, timeout=60):
        return self.procs[name].wait(timeout)

    def kill_all(self):
        for name in self.procs:
            self.signal(name, signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()

    def exited(self):
        """(name, status) of the children that exited unasked."""
        return [(name, proc.returncode) for name, proc in self.procs.items()
                if name not in self.expected and proc.poll() is not None]

    def check_running(self):
        for name, status in self.exited():
            raise NotReady("%s exited with status %s; the end of %s:\n%s"
                           % (name, status, self.log_path(name), tail(self.log_path(name), 15)))

    def stop(self, *names, grace=SERVICE_GRACE):
        """Ask the named children (default: all, the last started first) to stop: their own stop
        command or SIGTERM; SIGKILL to the process group of whatever is still running after
        `grace` seconds."""
        group = [(name, self.procs[name]) for name in (names or reversed(list(self.procs)))
                 if name in self.procs]
        for name, proc in group:
            self.expected.add(name)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
                self._stop_commands.get(name, proc.terminate)()
        deadline = time.monotonic() + grace
        for name, proc in group:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print("[stack] %s did not stop within %d s; killing it" % (name, grace),
                      file=sys.stderr, flush=True)
                kill_group(proc)

    def stop_all(self):
        """The services first (they may finish work while the broker and MongoDB are up), then
        the backing servers, the last started first."""
        services = [name for name in self.procs if name in self.services]
        self.stop(*reversed(services), grace=SERVICE_GRACE)
        backing = [name for name in self.procs if name not in self.services]
        self.stop(*reversed(backing), grace=BACKING_GRACE)

    # -- backing servers -------------------------------------------------------------------------
    def start_mongo(self, data_dir, port=None, name="nx-27017", binary=NX_27017):
        """nx-27017 on 127.0.0.1:<port> (a free one by default); its URI, also set as MONGO_URI."""
        port = port or free_port()
        data_dir = str(data_dir)
        os.makedirs(data_dir, exist_ok=True)
        proc = self.spawn(name, [binary, "--data-dir", data_dir, "--host", LOCAL, "-p", str(port),
                                 "--log-file", os.path.join(data_dir, "nx.log"),
                                 "--pid-file", os.path.join(data_dir, "nx.pid")])
        wait_for_port(LOCAL, port, 60, proc)
        self.env[MongoSettings.MONGO_URI.variable] = "mongodb://%s:%d/" % (LOCAL, port)
        return self.env[MongoSettings.MONGO_URI.variable]

    def start_mail_sink(self, maildir, port=None, name="mailsink"):
        """devtools.mailsink on 127.0.0.1:<port> (a free one by default), storing into `maildir`;
        SMTP_HOST and SMTP_PORT point at it. Returns the port."""
        port = port or free_port()
        proc = self.spawn(name, [sys.executable, "-m", "devtools.mailsink", "--maildir", str(maildir),
                                 "--host", LOCAL, "--port", str(port)])
        wait_for_port(LOCAL, port, 30, proc)
        self.env.update(SMTP_HOST=LOCAL, SMTP_PORT=str(port))
        return port

    def start_broker(self, base_dir, port, server="/usr/sbin/rabbitmq-server", node=RABBITMQ_NODE,
                     config_lines=(), name="rabbitmq", wait_port=None, management_port=None):
        """A private RabbitMQ node (default mp3svc@localhost) on 127.0.0.1:<port>, its data in
        base_dir, with the management API the tests' per-test vhosts need (unless another broker
        has its port). `config_lines` go into its rabbitmq.conf (a TLS listener, say); the node
        is ready when `wait_port` (default `port`) listens. `management_port`: its own management
        API on 127.0.0.1:<management_port>, beside another broker's."""
        for sub in ("mnesia", "log"):
            os.makedirs(os.path.join(base_dir, sub), exist_ok=True)
        plugins = os.path.join(base_dir, "enabled_plugins")
        with open(plugins, "w") as handle:
            handle.write("[].\n" if port_open(LOCAL, RABBITMQ_MANAGEMENT_PORT) and not management_port
                         else "[rabbitmq_management].\n")
        config = os.path.join(base_dir, "rabbitmq.conf")
        with open(config, "w") as handle:
            handle.write("listeners.tcp.1 = %s:%d\n" % (LOCAL, port))
            if management_port:
                handle.write("management.tcp.ip = %s\nmanagement.tcp.port = %d\n" % (LOCAL, management_port))
            handle.writelines(line + "\n" for line in config_lines)
        own_for_broker(base_dir)
        env = dict(self.env, RABBITMQ_MNESIA_BASE=os.path.join(base_dir, "mnesia"),
                   RABBITMQ_LOG_BASE=os.path.join(base_dir, "log"), RABBITMQ_NODENAME=node,
                   RABBITMQ_ENABLED_PLUGINS_FILE=plugins, RABBITMQ_CONFIG_FILE=config,
                   RABBITMQ_NODE_PORT=str(port))
        if node != RABBITMQ_NODE:  # beside another node: an inter-node port of its own
            env["RABBITMQ_DIST_PORT"] = str(free_port())
        had_epmd = subprocess.run(["pgrep", "-x", "epmd"], capture_output=True).returncode == 0

        def stop_command():
            try:
                subprocess.run(["rabbitmqctl", "-n", node, "stop"], capture_output=True,
                               timeout=BACKING_GRACE, env=env)
            except Exception:  # TimeoutExpired: stdlib's, or eventlet's own under monkey-patching
                pass  # stop() kills what is still running after its grace
            if not had_epmd:
                subprocess.run(["epmd", "-kill"], capture_output=True)
        proc = self.spawn(name, [server], env=env, stop_command=stop_command)
        wait_for_port(LOCAL, wait_port or port, 90, proc)
        if management_port:
            wait_for_port(LOCAL, management_port, 90, proc)
        else:
            self.enable_management(node=node)

    def enable_management(self, node=None):
        """The management API on the local broker (the tests' per-test vhosts need it)."""
        if port_open(LOCAL, RABBITMQ_MANAGEMENT_PORT):
            return
        subprocess.run(["rabbitmq-plugins"] + (["-n", node] if node else []) +
                       ["enable", "rabbitmq_management"], capture_output=True, timeout=120)
        wait_for_port(LOCAL, RABBITMQ_MANAGEMENT_PORT, 60)

    # -- the services ----------------------------------------------------------------------------
    def start_service(self, service, name=None, **env):
        """`nameko run` of one service with the stack's environment plus `env`."""
        name = name or service
        self.services.add(name)
        if name != service:  # another replica (converter-2, ...): its metrics on a port of its own
            env.setdefault(metrics_setting(service), "%s:%d" % (LOCAL, free_port()))
        env = dict(self.env, **{key: str(value) for key, value in env.items()})
        env.setdefault("PYTHONWARNINGS", QUIET_WARNINGS)
        return self.spawn(name, [NAMEKO, "run", "--config", "config/%s.yaml" % service,
                                 "services.%s.service" % service], env=env)

    def metrics_url(self, service):
        """Where a service started by this stack serves its Prometheus metrics."""
        key = metrics_setting(service)
        return "http://%s/metrics" % service_config(service, self.env)[key]

    def start_services(self, services=SERVICES, converters=1):
        for service in services:
            for index in range(converters if service == c.CONVERTER else 1):
                self.start_service(service, service if index == 0 else "%s-%d" % (service, index + 1))

    def wait_healthy(self, base_url, timeout=90):
        """Until the gateway's /healthz answers 200; fails at once when a child exits unasked."""
        def healthy():
            self.check_running()
            try:
                with urllib.request.urlopen(base_url + "/healthz", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False
        wait_until(healthy, timeout, interval=0.2, message="%s/healthz to answer 200" % base_url)


def own_for_broker(path):
    """Debian's rabbitmq-server drops to the `rabbitmq` user when started as root."""
    if os.geteuid() != 0:
        return
    import pwd
    try:
        entry = pwd.getpwnam("rabbitmq")
    except KeyError:
        return
    for folder, _, files in os.walk(path):
        for name in [folder] + [os.path.join(folder, f) for f in files]:
            os.chown(name, entry.pw_uid, entry.pw_gid)
