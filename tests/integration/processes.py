"""The services as real processes (`nameko run` with config/*.yaml and environment variables), for
tests that kill, stop and restart them."""
import os
import signal
import subprocess
import sys
import time

import requests

from tests.helpers import free_port, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMEKO = os.path.join(os.path.dirname(sys.executable), "nameko")
SERVICES = ("auth", "gateway", "converter", "notification")


class ProcessStack:
    def __init__(self, directory, env):
        self.directory = str(directory)
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.env = dict(os.environ)
        self.env.update({
            "GATEWAY_ADDRESS": "127.0.0.1:%d" % self.port,
            "PUBLIC_URL": self.base,
            "AUTH_DB_URI": "sqlite:///%s/auth.db" % self.directory,
            "HEARTBEAT_DIR": self.directory,
            "LEASE_SECONDS": "4",
            "AUTH_RPC_TIMEOUT": "3",
            "PYTHONWARNINGS": "ignore",
        })
        self.env.update({k: str(v) for k, v in env.items()})
        self.procs = {}

    def start(self, *services):
        for service in services or SERVICES:
            log = open(os.path.join(self.directory, "%s.log" % service), "ab")
            self.procs[service] = subprocess.Popen(
                [NAMEKO, "run", "--config", "config/%s.yaml" % service,
                 "services.%s.service" % service],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def signal(self, service, sig=signal.SIGKILL):
        self.procs[service].send_signal(sig)

    def wait_exit(self, service, timeout=60):
        return self.procs[service].wait(timeout)

    def kill_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait()

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def healthy(self, timeout=60):
        def ok():
            try:
                return requests.get(self.base + "/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ok, timeout, interval=0.2, message="gateway /healthz 200")

    def log(self, service):
        with open(os.path.join(self.directory, "%s.log" % service), "rb") as handle:
            return handle.read().decode("utf-8", "replace")
