"""Liveness heartbeat: the file `python -m services.common.probe <service>` checks."""
import eventlet
from nameko.extensions import DependencyProvider

from services.common.probe import touch
from services.common.settings import ServiceSettings


class Heartbeat(DependencyProvider):
    """Touches the service's heartbeat file every 10 s from its own green thread (not a worker, so a
    busy worker pool does not make a healthy service look dead)."""

    interval = 10

    def setup(self):
        self.directory = ServiceSettings.of(self.container).HEARTBEAT_DIR
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
