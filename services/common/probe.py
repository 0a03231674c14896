"""Liveness/readiness probe for services without HTTP: `python -m services.common.probe <service>`.

Each service touches its heartbeat file from a timer after checking its connections; the probe
passes while the file is fresh.
"""
import os
import sys
import time

import eventlet
from nameko.extensions import DependencyProvider

MAX_AGE = 60


def heartbeat_path(service, directory=None):
    directory = directory or os.environ.get("HEARTBEAT_DIR") or "/tmp"
    return os.path.join(directory, "mp3svc-%s.alive" % service)


def touch(service, directory=None):
    path = heartbeat_path(service, directory)
    with open(path, "a"):
        os.utime(path, None)


class Heartbeat(DependencyProvider):
    """Touches the service's heartbeat file every 10 s from its own green thread (not a worker, so a
    busy worker pool does not make a healthy service look dead)."""

    interval = 10

    def setup(self):
        self.directory = self.container.config.get("HEARTBEAT_DIR")
        self.service = self.container.service_name
        self.thread = None

    def start(self):
        self.thread = eventlet.spawn(self._run)

    def _run(self):
        while True:
            try:
                touch(self.service, self.directory)
            except OSError:
                pass
            eventlet.sleep(self.interval)

    def stop(self):
        if self.thread is not None:
            self.thread.kill()
            self.thread = None

    kill = stop


def main(argv):
    if len(argv) != 2:
        print("usage: python -m services.common.probe <service>", file=sys.stderr)
        return 2
    path = heartbeat_path(argv[1])
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        print("%s: no heartbeat at %s" % (argv[1], path))
        return 1
    if age > MAX_AGE:
        print("%s: heartbeat %.0f s old" % (argv[1], age))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
