"""May Tollgate send a request to this URL? The one answer for callbacks (docs/contract.md §6 Webhooks).

A callback URL is chosen by an API client, so without these checks it points Tollgate's network position
at whatever the client likes: the cloud metadata service, the database, an admin port on localhost. The
URL is checked when it is submitted (`egress_check`: a clear 400) and again at every delivery
(`egress_post`), because the answer of DNS may change in between (rebinding). At delivery the request goes
to the very address that was checked: the socket is opened to that IP, while TLS still verifies the
certificate against the host name (SNI) and the Host header names the host. Redirects are never followed.

Refused (`address_refusal`), for every address a name resolves to — one bad address refuses the URL:
- IPv4: 0.0.0.0/8 ("this network", unspecified), 10/8, 172.16/12, 192.168/16 (private), 100.64/10 (shared,
  carrier-grade NAT), 127/8 (loopback), 169.254/16 (link-local: cloud metadata), 192.0.0/24 (IETF
  assignments), 192.0.2/24, 198.51.100/24, 203.0.113/24 (documentation), 192.88.99/24 (6to4 relays),
  198.18/15 (benchmarking), 224/4 (multicast), 240/4 (reserved, with the broadcast address).
- IPv6: :: and ::1, ::/96 (IPv4-compatible, deprecated), 64:ff9b:1::/48 (local-use NAT64), 100::/64
  (discard), 2001::/23 (IETF assignments, with Teredo 2001::/32), 2001:db8::/32 and 3fff::/20
  (documentation), 2002::/16 (6to4), fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10
  (site-local), ff00::/8 (multicast), and whatever else Python does not call global or calls reserved.
  Teredo and 6to4 tunnel to whatever IPv4 address they embed, and no receiver publishes one: all refused.
- IPv4-mapped ::ffff:0:0/96 and NAT64 64:ff9b::/96 (what DNS64 answers on an IPv6-only network) are judged
  by the IPv4 address they carry. An embedded loopback address is refused even where loopback is allowed:
  only the plain forms are.
Loopback (127/8, ::1) is allowed only with TOLLGATE_WEBHOOK_ALLOW_LOOPBACK (development and tests).

The URL itself must be `https` (plain `http` only to localhost or a loopback literal, with the loopback
setting), carry no user name or password, and name a host; with TOLLGATE_WEBHOOK_ALLOWED_HOSTS set, the host
must be one of those. A name that does not resolve is refused at submission and retried at delivery.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from core.errors import EgressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_v4, _v6 = ipaddress.IPv4Network, ipaddress.IPv6Network
BLOCKED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (_v4("0.0.0.0/8"), "this network"),
    (_v4("10.0.0.0/8"), "private"),
    (_v4("100.64.0.0/10"), "shared address space"),
    (_v4("127.0.0.0/8"), "loopback"),
    (_v4("169.254.0.0/16"), "link-local"),
    (_v4("172.16.0.0/12"), "private"),
    (_v4("192.0.0.0/24"), "IETF protocol assignments"),
    (_v4("192.0.2.0/24"), "documentation"),
    (_v4("192.88.99.0/24"), "6to4 relay anycast"),
    (_v4("192.168.0.0/16"), "private"),
    (_v4("198.18.0.0/15"), "benchmarking"),
    (_v4("198.51.100.0/24"), "documentation"),
    (_v4("203.0.113.0/24"), "documentation"),
    (_v4("224.0.0.0/4"), "multicast"),
    (_v4("240.0.0.0/4"), "reserved"),
    (_v6("::/128"), "unspecified"),
    (_v6("::1/128"), "loopback"),
    (_v6("::/96"), "IPv4-compatible"),
    (_v6("64:ff9b:1::/48"), "local-use NAT64"),
    (_v6("100::/64"), "discard-only"),
    (_v6("2001::/23"), "IETF protocol assignments"),
    (_v6("2001:db8::/32"), "documentation"),
    (_v6("3fff::/20"), "documentation"),
    (_v6("2002::/16"), "6to4"),
    (_v6("fc00::/7"), "unique local"),
    (_v6("fe80::/10"), "link-local"),
    (_v6("fec0::/10"), "site-local"),
    (_v6("ff00::/8"), "multicast"),
)
NAT64 = _v6("64:ff9b::/96")
TIMEOUT_SECONDS = 10
# A host name as DNS spells it (IDNs in their xn-- form), or an IP literal that `ipaddress` parses.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$"
)


class Unresolvable(Exception):
    """The host did not resolve now (refused at submission; a delivery tries again later)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (every address was checked) and what to ask for there."""

    scheme: str
    host: str  # as the Host header and the TLS server name give it (no trailing dot, no brackets)
    port: int
    path: str
    addresses: tuple[IPAddress, ...]


def address_refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why Tollgate must not connect to `address`, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)):
        why = address_refusal(embedded, allow_loopback=False)
        return f"embeds a {why} IPv4 address" if why else None
    if allow_loopback and address.is_loopback:
        return None
    for network, why in BLOCKED_NETWORKS:
        if address.version == network.version and address in network:
            return why
    # What the list above misses and Python knows of (its tables grow with each release).
    if address.is_multicast or address.is_reserved or address.is_unspecified or address.is_link_local:
        return "reserved"
    if address.is_private or not address.is_global:
        return "not global"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 address reaches."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (the seam tests replace: there is no DNS in the test suite)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(host) from exc
    # getaddrinfo may append a scope ("fe80::1%eth0"): the address is what is checked.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]


def host_allowed(host: str, allowed: list[str]) -> bool:
    """`allowed` empty: any host. Else an exact name, or "*.example.com" for any name under example.com."""
    if not allowed:
        return True
    for entry in (entry.strip().lower().rstrip(".") for entry in allowed):
        if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return True
        if entry and host == entry:
            return True
    return False


def _parse(url: str) -> tuple[SplitResult, str]:
    if not url.isascii() or not url.isprintable() or any(c in url for c in " \\"):
        raise EgressRefused("blocked_url", "must be a plain URL (no spaces, backslashes or non-ASCII characters)")
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port  # port: a number from 0 to 65535, or ValueError
    except ValueError:
        raise EgressRefused("blocked_url", "must be a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise EgressRefused("blocked_url", "must be https")
    if "@" in parts.netloc:  # "https://api.example.com@169.254.169.254/" names the second host
        raise EgressRefused("blocked_url", "must not contain a user name or password")
    if not hostname:
        raise EgressRefused("blocked_url", "must name a host")
    if port == 0:
        raise EgressRefused("blocked_url", "must have a valid port")
    host = hostname.removesuffix(".")  # "example.com." is example.com; the check below refuses "example.com.."
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if not _HOST_NAME.match(host):
            raise EgressRefused("blocked_url", "must name a host") from None
    if scheme == "http":
        loopback_literal = literal is not None and literal.is_loopback
        if not (settings.TOLLGATE_WEBHOOK_ALLOW_LOOPBACK and (host == "localhost" or loopback_literal)):
            raise EgressRefused("blocked_url", "must be https")
    return parts, host


def egress_check(url: str) -> Target:
    """Parse `url` strictly and resolve its host; raise EgressRefused (or Unresolvable) unless every address
    it resolves to is one Tollgate may connect to."""
    parts, host = _parse(url)
    if not host_allowed(host, settings.TOLLGATE_WEBHOOK_ALLOWED_HOSTS):
        raise EgressRefused("blocked_host", "host is not an allowed webhook receiver")
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    addresses = resolve(parts.hostname or host, port)
    allow_loopback = settings.TOLLGATE_WEBHOOK_ALLOW_LOOPBACK
    if not addresses or any(address_refusal(a, allow_loopback=allow_loopback) for a in addresses):
        raise EgressRefused("blocked_address", "must resolve only to public addresses")
    if parts.scheme.lower() == "http" and not all(a.is_loopback for a in addresses):
        raise EgressRefused("blocked_url", "must be https")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme.lower(), host, port, path, tuple(addresses))


def callback_url_validate(url: str) -> str:
    """The URL a job or batch will call back, checked now; "" when there is none."""
    if not url:
        return ""
    try:
        egress_check(url)
    except Unresolvable:
        # The same words as a refused address: the answer must not tell internal names from missing ones.
        raise EgressRefused("blocked_address", "must resolve only to public addresses") from None
    return url


# --- delivery ---------------------------------------------------------------------------------------------


def connection_open(address: IPAddress, port: int, timeout: float) -> socket.socket:
    """A TCP connection to an address that was checked (the seam tests watch)."""
    return socket.create_connection((str(address), port), timeout=timeout)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to `address`, never resolving `host` again; the Host header still names the host."""

    def __init__(self, target: Target, address: IPAddress) -> None:
        super().__init__(target.host, target.port, timeout=TIMEOUT_SECONDS)
        self.pinned = address

    def connect(self) -> None:
        self.sock = connection_open(self.pinned, self.port, TIMEOUT_SECONDS)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above, with TLS verified against the host name (SNI and certificate), not the address."""

    def __init__(self, target: Target, address: IPAddress) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=TIMEOUT_SECONDS, context=self.tls)
        self.pinned = address

    def connect(self) -> None:
        sock = connection_open(self.pinned, self.port, TIMEOUT_SECONDS)
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def egress_post(url: str, *, body: bytes, headers: dict[str, str]) -> int:
    """POST `body` to `url` after checking it again, to the addresses just checked, following no redirect.
    Returns the status. Raises EgressRefused (final), Unresolvable, OSError or HTTPException (worth another
    attempt)."""
    target = egress_check(url)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    failure: OSError | None = None
    for address in target.addresses:  # as create_connection does: the next address when one cannot be reached
        connection = connection_class(target, address)
        try:
            try:
                connection.connect()
            except OSError as exc:
                failure = exc
                continue
            connection.request("POST", target.path, body=body, headers=headers)
            return connection.getresponse().status
        finally:
            connection.close()
    assert failure is not None
    raise failure
