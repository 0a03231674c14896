"""The service container every mp3svc service runs in (config key SERVICE_CONTAINER_CLS).

It resolves the broker connection settings once, before any extension reads them, so that every
nameko extension (RPC, events, the gateway's health check) sees the same values:

* `AMQP_URI`: the service's own `AMQP_URI_<SERVICE>` (its own broker user), else `AMQP_URI`.
  nameko's `${VAR:default}` cannot nest, so config/<service>.yaml reads both and this picks one.
* `AMQP_SSL`: TLS options for kombu when the URI is `amqps://` or `AMQP_SSL_CA` names a CA bundle;
  the broker's certificate and host name are always verified.

The container gets its own copy of the config: in-process tests run four services on one dict.
"""
from urllib.parse import urlparse

from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY
from nameko.containers import ServiceContainer as NamekoServiceContainer
from nameko.containers import get_service_name

SSL_CA_KEY = "AMQP_SSL_CA"


def own_uri_key(service_name):
    return "%s_%s" % (AMQP_URI_CONFIG_KEY, service_name.upper())


def broker_config(config, service_name):
    """The AMQP_URI and AMQP_SSL this service uses, from its config."""
    uri = (config.get(own_uri_key(service_name)) or "").strip() or config[AMQP_URI_CONFIG_KEY]
    ssl_options = config.get(AMQP_SSL_CONFIG_KEY)
    ca = (config.get(SSL_CA_KEY) or "").strip()
    url = urlparse(uri)
    if not ssl_options and (ca or url.scheme == "amqps"):
        ssl_options = {"context": {"cafile": ca or None, "check_hostname": True},
                       "server_hostname": url.hostname}
    return {AMQP_URI_CONFIG_KEY: uri, AMQP_SSL_CONFIG_KEY: ssl_options or None}


class ServiceContainer(NamekoServiceContainer):
    def __init__(self, service_cls, config):
        config = dict(config, **broker_config(config, get_service_name(service_cls)))
        super().__init__(service_cls, config)
