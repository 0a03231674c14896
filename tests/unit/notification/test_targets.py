"""Where a webhook may post: URL rules and the address check, through a stubbed resolver (no name is
ever looked up, no connection made)."""
import ipaddress
import socket

import pytest

from services.notification import targets
from services.notification.exceptions import InvalidUrl


def resolver(*addresses):
    """A getaddrinfo stand-in answering `addresses` for any name (and recording the names)."""
    asked = []

    def getaddrinfo(host, port, type=0, **kwargs):
        asked.append((host, port))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port) if ":" not in a else (a, port, 0, 0)) for a in addresses]
    getaddrinfo.asked = asked
    return getaddrinfo


@pytest.mark.parametrize("url", [
    "ftp://example.org/", "file:///etc/passwd", "gopher://example.org/", "javascript:alert(1)",
    "//example.org/", "example.org/hook", "http://", "http:///path", "https://user:pw@example.org/",
    "https://user@example.org/", "http://example.org:99999/", "http://example.org:port/",
    "http://exa mple.org/", "http://example.org/\r\nX-Injected: 1", "http://[::1/", "",
    "https://" + "a" * 2100 + ".org/",
])
def test_only_absolute_http_urls_without_credentials(url):
    with pytest.raises(InvalidUrl):
        targets.parse(url)


def test_a_url_parsed():
    target = targets.parse("HTTPS://Hooks.Example.org:8443/mp3svc/in?k=v#frag")
    assert target == targets.Target("https", "hooks.example.org", 8443, "/mp3svc/in?k=v")
    assert targets.parse("http://example.org").port == 80 and targets.parse("http://example.org").path == "/"
    assert targets.parse("http://bücher.example/").host == "xn--bcher-kva.example"


@pytest.mark.parametrize("host, address", [
    ("127.0.0.1", "127.0.0.1"), ("127.1.2.3", "127.1.2.3"), ("127.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0x7f.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"), ("0", "0.0.0.0"), ("0.0.0.0", "0.0.0.0"), ("::1", "::1"),
    ("::ffff:127.0.0.1", "::ffff:127.0.0.1"), ("10.1", "10.0.0.1"),
])
def test_every_spelling_of_an_address_is_that_address(host, address):
    assert targets.literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("name", ["example.org", "cafe.be", "dead.beef", "localhost", "1.example"])
def test_names_are_not_addresses(name):
    assert targets.literal(name) is None


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1", "172.16.0.1", "172.31.255.255",
    "192.168.1.1", "169.254.169.254",  # the cloud metadata address
    "100.64.0.1", "100.127.255.254",   # CGNAT
    "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9",  # special, documentation
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "2002:7f00:1::1", "2002:a00:1::1",            # 6to4 of 127.0.0.1, 10.0.0.1
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",      # NAT64 of 127.0.0.1, 169.254.169.254
    "64:ff9b:1::1", "2001::1",                    # NAT64 local use, Teredo
])
def test_non_public_addresses(address):
    assert not targets.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [
    "93.184.215.14", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1",
    "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "2001:4860:4860::8888", "::ffff:8.8.8.8",
    "64:ff9b::808:808", "2002:808:808::1",
])
def test_public_addresses(address):
    assert targets.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://127.1.2.3:8080/", "http://localhost/", "http://[::1]/",
    "http://[::ffff:127.0.0.1]/", "http://2130706433/", "http://0.0.0.0/", "http://0/",
    "https://169.254.169.254/latest/meta-data/", "http://[fe80::1%25eth0]/",
])
def test_literal_addresses_are_refused_without_asking_the_resolver(url):
    stub = resolver("127.0.0.1")  # answers for `localhost` as /etc/hosts does
    with pytest.raises(InvalidUrl, match="not a public address"):
        targets.checked_url(url, resolver=stub)
    assert stub.asked in ([], [("localhost", 80)])


@pytest.mark.parametrize("addresses", [
    ("10.0.0.5",), ("192.168.0.10",), ("172.20.1.1",), ("169.254.169.254",), ("100.64.3.4",),
    ("fd00::1",), ("fe80::1",), ("::ffff:192.168.0.1",), ("127.0.0.53",),
    ("93.184.215.14", "10.0.0.5"),   # one inside address among public ones is enough
    ("2606:4700::1", "::1"),
])
def test_a_name_resolving_to_any_inside_address_is_refused(addresses):
    stub = resolver(*addresses)
    with pytest.raises(InvalidUrl, match="not a public address"):
        targets.checked_url("https://hooks.example.org/in", resolver=stub)
    assert stub.asked == [("hooks.example.org", 443)]


def test_a_name_resolving_to_public_addresses_gives_them_all_in_order():
    stub = resolver("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.14")
    target, addresses = targets.checked_url("https://hooks.example.org:8443/in", resolver=stub)
    assert target.host == "hooks.example.org" and target.port == 8443
    assert addresses == [ipaddress.ip_address("93.184.215.14"),
                         ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c")]


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(InvalidUrl, match="does not resolve"):
        targets.checked_url("https://nowhere.example/", resolver=resolver())


def test_private_addresses_pass_when_the_operator_allows_them():
    target, addresses = targets.checked_url("http://[::ffff:127.0.0.1]:9/", allow_private=True,
                                            resolver=resolver())
    assert addresses == [ipaddress.ip_address("::ffff:127.0.0.1")] and target.port == 9
    _, addresses = targets.checked_url("http://intranet.local/", allow_private=True,
                                       resolver=resolver("10.0.0.5"))
    assert addresses == [ipaddress.ip_address("10.0.0.5")]
