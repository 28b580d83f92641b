"""The outbound policy: which network addresses mien may open on a caller's behalf.

A stream job of the HTTP service (``mien serve``) opens an address that an API caller chose.
Without a policy that caller could make the server connect anywhere it can reach: the
server's own loopback services, the internal network, cloud metadata endpoints (SSRF).
:class:`OutboundPolicy` decides, for every connection, whether it may be made:

* the host is resolved (every A/AAAA answer), and the connection is refused when **any**
  answer is not a public unicast address: loopback, private (RFC 1918, ``fc00::/7``),
  link-local, CGNAT (``100.64.0.0/10``), multicast, unspecified, reserved, broadcast,
  documentation, benchmarking, IPv6 site-local, and the IPv4-mapped / IPv4-compatible /
  NAT64 / 6to4 IPv6 forms of those;
* unless the operator allows it: an *allow list* of CIDR networks, single addresses and host
  names (``*.cams.example`` for every name under a domain), each optionally with a port
  (``10.1.2.3:554``, ``[fd00::5]:8554``, ``cams.example:1935``); see :func:`parse_allow_list`.

:meth:`OutboundPolicy.connect` resolves, checks and then connects to one of the *checked*
addresses itself, so a name that resolves differently a moment later (DNS rebinding) cannot
slip through between the check and the connection. How the stream sources use it is in
:mod:`mien.live.guard`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolver(host, port)`` -> the addresses ``host`` resolves to (tests inject one).
Resolver = Callable[[str, int], Sequence[str]]

#: The URL schemes a guarded source may use (everything else, ``file:``, ``concat:``,
#: ``subfile:``, ``pipe:``, ``data:``, ``crypto:``, ``tcp:``, ``udp:``... is refused).
NETWORK_SCHEMES: Final = frozenset({"http", "https", "rtsp", "rtsps", "rtmp", "rtmps"})

_V4: Final[tuple[tuple[str, str], ...]] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
_V6: Final[tuple[tuple[str, str], ...]] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),
    ("100::/64", "reserved"),
    ("2001::/23", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_V4_NETS: Final = tuple((ipaddress.IPv4Network(n), why) for n, why in _V4)
_V6_NETS: Final = tuple((ipaddress.IPv6Network(n), why) for n, why in _V6)
_GLOBAL_UNICAST_V6: Final = ipaddress.IPv6Network("2000::/3")
_COMPAT_V6: Final = ipaddress.IPv6Network("::/96")
_NAT64_V6: Final = ipaddress.IPv6Network("64:ff9b::/96")
_6TO4_V6: Final = ipaddress.IPv6Network("2002::/16")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that reach an
    IPv4 host: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64
    (``64:ff9b::a.b.c.d``) or 6to4 (``2002:AABB:CCDD::``)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    value = int(address)
    if address in _COMPAT_V6 and value > 1:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _NAT64_V6:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _6TO4_V6:
        return address.sixtofour
    return None


def classify(address: str | IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address ("loopback", "private"...), or None
    when it is one. An IPv6 form of an IPv4 address is judged by that IPv4 address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = classify(inner)
            return f"{why} (as IPv6)" if why else None
        for net6, why in _V6_NETS:
            if ip in net6:
                return why
        if ip not in _GLOBAL_UNICAST_V6:
            return "reserved"
        return None
    for net4, why in _V4_NETS:
        if ip in net4:
            return why
    return None


@dataclass(frozen=True)
class AllowEntry:
    """One entry of the allow list: a network or a host name (``*.`` prefix: any name under
    that domain), and a port (None: every port)."""

    text: str
    network: IPNetwork | None = None
    host: str | None = None
    port: int | None = None

    def allows_name(self, host: str, port: int) -> bool:
        if self.host is None or (self.port is not None and self.port != port):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def allows_address(self, ip: IPAddress, port: int) -> bool:
        if self.network is None or (self.port is not None and self.port != port):
            return False
        if ip.version != self.network.version:
            mapped = embedded_ipv4(ip)
            if mapped is None:
                return False
            ip = mapped
        return ip in self.network


def _normal_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def _split_port(text: str) -> tuple[str, int | None]:
    """``host``/``cidr`` and the port of ``host:port``, ``[v6]:port``, ``cidr:port``."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"not an allow-list entry: {text!r} (unclosed '[')")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"not an allow-list entry: {text!r}")
        return text[1:end], _port(rest[1:], text) if rest else None
    if text.count(":") == 1:  # host:port or v4:port (an IPv6 address has several colons)
        head, _, port = text.partition(":")
        return head, _port(port, text)
    return text, None


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"not a port in the allow-list entry {entry!r}: {text!r}")
    return int(text)


def parse_allow_entry(text: str) -> AllowEntry:
    """One allow-list entry: ``10.0.0.0/8``, ``192.168.1.20``, ``[fd00::1]:554``,
    ``cam1.example:8554``, ``*.cams.example``. ValueError when it is none of these."""
    raw = text.strip()
    if not raw:
        raise ValueError("an empty allow-list entry")
    head, port = _split_port(raw)
    try:
        network = ipaddress.ip_network(head, strict=False)
    except ValueError:
        pass
    else:
        return AllowEntry(raw, network=network, port=port)
    name = _normal_host(head)
    label = name[2:] if name.startswith("*.") else name
    if not label or not all(
        part and len(part) <= 63 and all(c.isalnum() or c == "-" for c in part)
        for part in label.split(".")
    ):
        raise ValueError(
            f"not an allow-list entry: {text!r} (use a CIDR such as 10.0.0.0/8, an address, "
            "or a host name, each optionally with :PORT)"
        )
    return AllowEntry(raw, host=name, port=port)


def parse_allow_list(values: Iterable[str]) -> tuple[AllowEntry, ...]:
    """Entries from option values; each value may hold several, separated by commas."""
    out: list[AllowEntry] = []
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                out.append(parse_allow_entry(part))
    return tuple(out)


class OutboundRefused(OSError):
    """The outbound policy refused a connection. ``reason`` says why, for the operator's
    log; callers of the service only ever see a uniform "source unreachable"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in seen:
            seen.append(addr)
    return seen


@dataclass(frozen=True)
class OutboundPolicy:
    """Refuses non-public addresses unless ``allow`` names them (see the module docs).

    ``resolver`` turns a host name into addresses (default: the system's ``getaddrinfo``).
    """

    allow: tuple[AllowEntry, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)

    @classmethod
    def from_entries(
        cls, entries: Iterable[str], resolver: Resolver | None = None
    ) -> OutboundPolicy:
        allow = parse_allow_list(entries)
        return cls(allow) if resolver is None else cls(allow, resolver)

    def check_scheme(self, scheme: str) -> None:
        if scheme.lower() not in NETWORK_SCHEMES:
            raise OutboundRefused(f"the scheme {scheme!r} is not a network stream scheme")

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses mien may connect to for ``host``:``port``; OutboundRefused when the
        host cannot be resolved, or any of its addresses is refused."""
        name = _normal_host(host)
        if not name:
            raise OutboundRefused("the address has no host")
        if not 0 < port < 65536:
            raise OutboundRefused(f"port {port} is out of range")
        try:
            literal: IPAddress | None = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            answers = [literal]
        else:
            try:
                raw = self.resolver(name, port)
            except (OSError, UnicodeError) as exc:
                raise OutboundRefused(f"{name!r} could not be resolved: {exc}") from None
            answers = []
            for text in raw:
                try:
                    answers.append(ipaddress.ip_address(text))
                except ValueError:
                    raise OutboundRefused(f"{name!r} resolved to {text!r}") from None
            if not answers:
                raise OutboundRefused(f"{name!r} resolved to no address")
        if literal is None and any(e.allows_name(name, port) for e in self.allow):
            return answers
        for ip in answers:
            why = classify(ip)
            if why is not None and not any(e.allows_address(ip, port) for e in self.allow):
                shown = name if literal is not None else f"{name!r} ({ip})"
                raise OutboundRefused(
                    f"{shown} is a {why} address, not on the allow list (port {port})"
                )
        return answers

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to ``host``:``port`` made to an address that was checked (never
        resolved again); OSError (OutboundRefused for the policy) when none can be made."""
        last: OSError | None = None
        for ip in self.resolve(host, port):
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect((str(ip), port))
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return sock
        raise last if last is not None else OSError("no address to connect to")
