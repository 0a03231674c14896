"""The services' configuration as `nameko run` builds it from config/*.yaml."""
import os
from unittest import mock

import yaml

from devtools.stack import NamekoLoader, free_metrics_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = ("gateway", "auth", "converter", "notification")


def config_defaults():
    """The four services' config/*.yaml as `nameko run` reads them in a clean environment: the
    defaults every in-process test starts from (the files agree on the keys they share), each
    service's metrics on a free port."""
    config = {}
    with mock.patch.dict(os.environ, {}, clear=True):
        for service in SERVICES:
            with open(os.path.join(ROOT, "config", "%s.yaml" % service)) as handle:
                config.update(yaml.load(handle, Loader=NamekoLoader))
    config.pop("LOGGING", None)
    # the metrics addresses' defaults are fixed ports that every checkout on a machine shares
    config.update(free_metrics_env())
    return config
