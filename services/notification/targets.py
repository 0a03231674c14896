"""Where a webhook may post: an http(s) URL whose host reaches public addresses only, unless the
operator allows private ones (WEBHOOK_ALLOW_PRIVATE). Checked when the webhook is made and again on
every delivery, on the very addresses the delivery then connects to (services/notification/poster.py
connects to them itself), so a name that resolves elsewhere later (DNS rebinding) reaches nothing
private either.

Every spelling of an address counts: `127.1`, `2130706433`, `0x7f.1` (the forms inet_aton and so
the resolver accept), `[::ffff:127.0.0.1]`, and IPv6 addresses that carry an IPv4 one (mapped,
6to4, NAT64) are judged by the IPv4 address inside."""
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.notification.exceptions import InvalidUrl

MAX_URL = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
# a host made of these alone is an IPv4 address in one of inet_aton's spellings (or no host at all)
_NUMERIC = re.compile(r"^[0-9a-fx.]+$")
getaddrinfo = socket.getaddrinfo  # the resolver (a stub in the tests that must not leave this machine)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")  # every public IPv6 address is in it
# not public although Python's `is_global` says so (3.11): IETF protocol assignments, NAT64's
# local-use prefix
NOT_PUBLIC = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("64:ff9b:1::/48"))


@dataclass(frozen=True)
class Target:
    scheme: str   # http or https
    host: str     # as the URL names it (IDNA-encoded), for Host and TLS SNI
    port: int
    path: str     # path and query, as sent in the request line


def parse(url):
    """The Target of a webhook URL; InvalidUrl unless it is an absolute http(s) URL with a host
    and no credentials."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise InvalidUrl("A webhook URL is an http:// or https:// URL of at most %d characters."
                         % MAX_URL)
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7f for ch in url):
        raise InvalidUrl("A webhook URL has no spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidUrl("The webhook URL is not valid (its port or its address).") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidUrl("A webhook URL is http:// or https://.")
    if parts.username is not None or parts.password is not None:
        raise InvalidUrl("A webhook URL carries no user name or password.")
    host = parts.hostname
    if not host:
        raise InvalidUrl("The webhook URL names no host.")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise InvalidUrl("The webhook URL's host name is not valid.") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host.rstrip(".") or host, port or DEFAULT_PORTS[scheme], path)


def literal(host):
    """The IP address a host spells, in any of its spellings; None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_public(ip):
    """Whether a connection to `ip` may leave for the internet: globally reachable unicast, judged
    by the IPv4 address inside an IPv6 one that carries one."""
    if ip.version == 6:
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in NAT64:
            inner = ipaddress.IPv4Address(ip.packed[-4:])
        if inner is not None:
            return is_public(inner)
        if ip not in GLOBAL_UNICAST_V6:  # site-local, unique local, link-local, multicast, ...
            return False
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        return False
    return ip.is_global and not any(ip in network for network in NOT_PUBLIC)


def resolve(target, resolver=None):
    """Every address the target's host reaches (a literal address: itself), in the resolver's
    order; InvalidUrl when it resolves to none."""
    address = literal(target.host)
    if address is not None:
        return [address]
    try:
        infos = (resolver or getaddrinfo)(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise InvalidUrl("The webhook URL's host '%s' does not resolve." % target.host[:253]) from None
    found = []
    for info in infos:
        try:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        except ValueError:
            continue
        if address not in found:
            found.append(address)
    if not found:
        raise InvalidUrl("The webhook URL's host '%s' does not resolve." % target.host[:253])
    return found


def check(target, allow_private=False, resolver=None):
    """The addresses to connect to for `target`, every one of them public (unless
    `allow_private`); InvalidUrl when any is not."""
    addresses = resolve(target, resolver)
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise InvalidUrl("The webhook URL reaches %s, which is not a public address."
                                 % address)
    return addresses


def checked_url(url, allow_private=False, resolver=None):
    """`url` parsed and its addresses checked: (Target, addresses)."""
    target = parse(url)
    return target, check(target, allow_private, resolver)
