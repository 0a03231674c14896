"""Typed, validated settings per service.

The defaults live in `config/<service>.yaml` (`${VAR:default}`), and nowhere else. Each service
declares what it reads as a `Settings` subclass; the values are parsed and checked once, when the
container sets up its providers, and a missing or malformed value stops the service at start with a
sentence naming the environment variable.

    class ConverterSettings(Settings):
        LEASE_SECONDS = Number(int, minimum=1)

    settings = ConverterSettings()          # on the service: injects the parsed values
    ConverterSettings.of(container)         # in another provider's setup()
"""
import math
import types

import limits

from nameko.extensions import DependencyProvider

from services.common.nameko_internals import container_cache
from services.common.utils import as_bool


class ConfigurationError(Exception):
    """A setting is missing or malformed; the service does not start."""


class Setting:
    def __init__(self, env=None, optional=False):
        self.env = env          # the environment variable, when it is not the config key itself
        self.optional = optional
        self.key = None

    def __set_name__(self, owner, name):
        self.key = name

    @property
    def variable(self):
        return self.env or self.key

    def load(self, config):
        raw = config
        for part in self.key.split("."):
            raw = raw.get(part) if isinstance(raw, dict) else None
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if self.optional:
                return None
            raise ConfigurationError("%s is not set: give it a value in the environment (read "
                                     "through config/*.yaml as %s)." % (self.variable, self.key))
        try:
            return self.parse(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError("%s=%r is not valid: %s." % (self.variable, raw, exc)) from None

    def parse(self, raw):
        return raw


class Text(Setting):
    def __init__(self, env=None, optional=False, min_bytes=0):
        super().__init__(env, optional)
        self.min_bytes = min_bytes

    def parse(self, raw):
        value = str(raw).strip()
        if len(value.encode()) < self.min_bytes:
            raise ValueError("it must be at least %d bytes long" % self.min_bytes)
        return value


class Number(Setting):
    def __init__(self, kind=int, minimum=None, maximum=None, env=None, optional=False):
        super().__init__(env, optional)
        self.kind = kind
        self.minimum = minimum
        self.maximum = maximum

    def parse(self, raw):
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            value = float(raw) if self.kind is float else int(str(raw).strip())
        except ValueError:
            raise ValueError("expected %s" % ("a number" if self.kind is float
                                              else "a whole number")) from None
        if self.kind is float and not math.isfinite(value):
            raise ValueError("expected a finite number")
        if self.minimum is not None and value < self.minimum:
            raise ValueError("it must be at least %s" % self.minimum)
        if self.maximum is not None and value > self.maximum:
            raise ValueError("it must be at most %s" % self.maximum)
        return value


class Flag(Setting):
    TRUE = ("1", "true", "yes", "on")
    FALSE = ("0", "false", "no", "off")

    def parse(self, raw):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in self.TRUE + self.FALSE:
            raise ValueError("expected true or false")
        return as_bool(text)


class Choice(Setting):
    def __init__(self, *choices, env=None):
        super().__init__(env)
        self.choices = choices

    def parse(self, raw):
        value = str(raw).strip()
        if value not in self.choices:
            raise ValueError("expected one of %s" % ", ".join(self.choices))
        return value


class Address(Setting):
    """`host:port` to listen on (an IPv6 host in brackets: `[::]:9100`)."""

    def parse(self, raw):
        host, sep, port = str(raw).strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port")
        return host.strip("[]") or "0.0.0.0", int(port)


class Rate(Setting):
    """A rate in `limits` notation: `10/minute`, `5/hour`, `100 per day`."""

    def parse(self, raw):
        return limits.parse(str(raw).strip())


class Settings(DependencyProvider):
    """Declare settings as class attributes; workers get a read-only namespace of their values."""

    @classmethod
    def fields(cls):
        return {name: value for klass in reversed(cls.__mro__) for name, value in vars(klass).items()
                if isinstance(value, Setting)}

    @classmethod
    def load(cls, config):
        """Parse every field from a nameko config dict; ConfigurationError names every bad one."""
        values, errors = {}, []
        for name, field in cls.fields().items():
            try:
                values[name] = field.load(config)
            except ConfigurationError as exc:
                errors.append(str(exc))
        if errors:
            raise ConfigurationError(" ".join(errors))
        return types.SimpleNamespace(**values)

    @classmethod
    def of(cls, container):
        """The parsed settings of a container, parsed once and shared by its providers."""
        cache = container_cache(container, "_mp3svc_settings")
        if cls not in cache:
            cache[cls] = cls.load(container.config)
        return cache[cls]

    def setup(self):
        self.values = self.of(self.container)

    def get_dependency(self, worker_ctx):
        return self.values


class ServiceSettings(Settings):
    """What every service reads."""
    RABBIT_QUEUE_TYPE = Choice("classic", "quorum")
    HEARTBEAT_DIR = Text()
    # messages a service takes from each event queue at once (the converter: ffmpeg processes);
    # unset: nameko's max_workers
    PREFETCH_COUNT = Number(int, minimum=1, optional=True, env="CONVERTER_WORKERS")


class MongoSettings(ServiceSettings):
    """What every service with a job store reads."""
    MONGO_URI = Text()
    MONGO_DB = Text()
