"""Client addresses behind proxies, counter keys, and the edge settings' parsing."""
import ipaddress

import pytest

from services.common.settings import ConfigurationError
from services.gateway.ratelimit import client_address, client_key
from services.gateway.settings import GatewaySettings, Networks, Rate

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


@pytest.mark.parametrize("peer, forwarded, trusted, expected", [
    ("203.0.113.7", "1.2.3.4", (), "203.0.113.7"),                # no proxies trusted: the peer
    ("203.0.113.7", "1.2.3.4", TRUSTED, "203.0.113.7"),           # peer not a trusted proxy
    ("10.0.0.5", "1.2.3.4", TRUSTED, "1.2.3.4"),
    ("10.0.0.5", "6.6.6.6, 1.2.3.4", TRUSTED, "1.2.3.4"),         # left part is the client's claim
    ("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.9.9.9", TRUSTED, "1.2.3.4"),  # chained trusted proxies
    ("127.0.0.1", "", TRUSTED, "127.0.0.1"),                      # no header: the peer
    ("10.0.0.5", "10.0.0.6, 10.0.0.7", TRUSTED, "10.0.0.6"),      # all trusted: the left-most
    ("10.0.0.5", "garbage, 1.2.3.4", TRUSTED, "1.2.3.4"),
])
def test_client_address(peer, forwarded, trusted, expected):
    environ = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}
    assert client_address(environ, trusted) == expected


@pytest.mark.parametrize("address, key", [
    ("1.2.3.4", "1.2.3.4"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),    # one IPv6 subscriber's whole /64
    ("::ffff:1.2.3.4", "1.2.3.4"),
    ("", "unknown"),
    ("not-an-address", "not-an-address"),
])
def test_client_key(address, key):
    assert client_key(address) == key


def test_rates_and_networks_parse():
    assert Rate().parse("10/minute").amount == 10
    assert Networks().parse("10.0.0.0/8, 192.0.2.1") == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.0.2.1/32"))


@pytest.mark.parametrize("key, value", [
    ("LOGIN_RATE", "often"), ("TRUSTED_PROXIES", "10.0.0.0/33"), ("CLIENT_TIMEOUT", "0")])
def test_bad_edge_settings_stop_the_service(key, value):
    from tests.configs import config_defaults
    config = config_defaults()
    config[key] = value
    with pytest.raises(ConfigurationError, match=key):
        GatewaySettings.load(config)


def test_defaults_are_the_contract_ones():
    from tests.configs import config_defaults
    settings = GatewaySettings.load(config_defaults())
    assert settings.CLIENT_TIMEOUT == 60
    assert str(settings.LOGIN_RATE) == "10 per 1 minute"
    assert str(settings.REGISTER_RATE) == "5 per 1 hour"
    assert settings.TRUSTED_PROXIES is None
