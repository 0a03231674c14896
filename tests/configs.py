"""The services' configuration as `nameko run` builds it from config/*.yaml."""
import os
from unittest import mock

import yaml
from nameko.cli.main import IMPLICIT_ENV_VAR_MATCHER, env_var_constructor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = ("gateway", "auth", "converter", "notification")


class NamekoLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with nameko's `${VAR:default}` rules (nameko adds them to SafeLoader
    itself, which would change how every other YAML file in the tests reads)."""


NamekoLoader.add_constructor("!env_var", env_var_constructor)
NamekoLoader.add_constructor("!raw_env_var", lambda loader, node: env_var_constructor(
    loader, node, raw=True))
NamekoLoader.add_implicit_resolver("!env_var", IMPLICIT_ENV_VAR_MATCHER, None)


def config_defaults():
    """The four services' config/*.yaml as `nameko run` reads them in a clean environment: the
    defaults every in-process test starts from (the files agree on the keys they share)."""
    config = {}
    with mock.patch.dict(os.environ, {}, clear=True):
        for service in SERVICES:
            with open(os.path.join(ROOT, "config", "%s.yaml" % service)) as handle:
                config.update(yaml.load(handle, Loader=NamekoLoader))
    config.pop("LOGGING", None)
    return config
