"""What services/common/nameko_internals.py relies on in nameko: fails loudly when an upgrade changes
it. When a test here fails, read the new nameko source, adapt the copy or the use, then record the
new hash in RELIED_ON."""
import hashlib
import importlib
import inspect

import pytest
from eventlet import GreenPool, wsgi
from nameko.containers import ServiceContainer
from nameko.testing.services import dummy
from nameko.web.server import WebServer, WsgiApp

from services.common import nameko_internals as internals
from tests.configs import config_defaults


def resolve(dotted):
    module, cls, name = dotted.rsplit(".", 2)
    return getattr(getattr(importlib.import_module(module), cls), name)


@pytest.mark.parametrize("dotted", sorted(internals.RELIED_ON))
def test_the_copied_nameko_functions_are_unchanged(dotted):
    source = inspect.getsource(resolve(dotted))
    assert hashlib.sha256(source.encode()).hexdigest() == internals.RELIED_ON[dotted], (
        "nameko changed %s: services/common/nameko_internals.py copies it; compare, adapt the copy, "
        "then record the new hash.\n%s" % (dotted, source))


def test_the_copies_override_what_they_copy():
    assert internals.AcceptingWebServer.run is not WebServer.run
    assert internals.RoutingWsgiApp.__call__ is not WsgiApp.__call__
    # the attributes the accept loop reads are still set by nameko's WebServer
    init = inspect.getsource(WebServer.__init__) + inspect.getsource(WebServer.start)
    for attribute in ("self._is_accepting", "self._sock", "self._serv"):
        assert attribute in init, attribute
    # `_serv` is eventlet's wsgi.Server, whose socket_timeout the default `accepted` reads
    assert "socket_timeout" in inspect.signature(wsgi.Server.__init__).parameters


class Probe:
    name = "probe"

    @dummy
    def noop(self):
        pass


def test_the_worker_pool_and_the_container_dict():
    container = ServiceContainer(Probe, dict(config_defaults(), max_workers=3))
    assert isinstance(container._worker_pool, GreenPool)
    assert internals.free_workers(container) == 3
    cache = internals.container_cache(container, "_probe")
    cache["k"] = 1
    assert internals.container_cache(container, "_probe") == {"k": 1}
    assert "_probe" in vars(container)
