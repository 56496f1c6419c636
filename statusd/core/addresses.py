"""Which hosts an outsider may make statusd connect to: public addresses only, unless config allows more.

A subscriber's webhook URL or a report's contact is chosen by someone outside; statusd must not
become their way into loopback, the cloud metadata service or the private network. This module
classifies a host — an IP literal in any spelling `inet_aton` and URL parsers accept, or a
name — without any I/O: `refusal(host)` is the check at subscribe time, `address_refusal(ip)`
the same check on each address a name resolves to at connect time (`notifiers.guard`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Order matters only for the word in a refusal: the first matching range names it.
_V4_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes 255.255.255.255, the broadcast address
    ("192.0.0.0/24", "reserved"),
    ("198.18.0.0/15", "reserved"),
)
_V6_RANGES: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("fc00::/7", "private"),
    ("fec0::/10", "private"),  # deprecated site-local, still routed inside some networks
    ("ff00::/8", "multicast"),
    ("100::/64", "reserved"),  # discard-only
)
_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), word) for net, word in _V4_RANGES + _V6_RANGES)

# IPv6 forms that carry an IPv4 address a gateway or the kernel will reach: the address is judged by it.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")

# Names that reach this host or the cloud's metadata service, whatever DNS says.
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_METADATA_NAMES = ("metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                   "instance-data.ec2.internal", "metadata.azure.internal")
_METADATA_ADDRESS = ipaddress.IPv4Address("169.254.169.254")
# Suffixes that only ever resolve inside a private network (RFC 6762, 6761, 8375 and cloud-internal zones).
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".lan", ".intranet",
                      ".corp", ".private")


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses only, plus the networks config allows on purpose (`[notifications] allow_private_targets`)."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> AddressPolicy:
        """A policy allowing `cidrs` (validated by config: `network_problem` is None for each)."""
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why statusd must not connect to `address` for an outsider, or None when it may."""
        reached = _embedded_v4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if any(a in net for a in (address, reached) if a is not None for net in self.allowed
               if a.version == net.version):
            return None
        word = classify(address)
        return None if word is None else f"{address} is not a public address ({word})"

    def refusal(self, host: str) -> str | None:
        """Why an outsider may not name `host` (an IP literal in any spelling, or a name), or None.

        A public-looking name passes: what it resolves to is checked again at connect time.
        """
        name = host.strip().rstrip(".").lower()
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        if not name:
            return "has no host"
        address = parse_address(name)
        if address is not None:
            return self.address_refusal(address)
        if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
            if any(self.address_refusal(a) is None for a in (ipaddress.IPv4Address("127.0.0.1"),
                                                               ipaddress.IPv6Address("::1"))):
                return None
            return f"{host} is this machine (loopback)"
        if name in _METADATA_NAMES:
            return None if self.address_refusal(_METADATA_ADDRESS) is None else f"{host} is a cloud metadata service"
        if "." not in name or name.endswith(_INTERNAL_SUFFIXES):
            # Resolved through local search domains or an internal zone: only an operator who allows
            # private networks may have it, and then the resolved address is judged at connect time.
            return None if self.allowed else f"{host} is an internal host name"
        return None


def classify(address: IPAddress) -> str | None:
    """The kind of non-public range `address` is in (`loopback`, `private`, …), or None for a public address.

    IPv6 forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64,
    6to4, Teredo) are judged by the IPv4 address they reach.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            return classify(embedded)
    for net, word in _RANGES:
        if address.version == net.version and address in net:
            return word
    if not address.is_global:  # documentation, benchmarking and other special-purpose ranges
        return "non-public"
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _V4_COMPATIBLE and int(address) > 1:  # not :: or ::1, which are judged as IPv6
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client behind the relay
    return None


def parse_address(text: str) -> IPAddress | None:
    """`text` as an IP address, accepting every IPv4 spelling `inet_aton` does (`127.1`, `0x7f.1`, `2130706433`,
    `0177.0.0.1`); None when it is a name."""
    text = text.strip().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.partition("%")[0])  # a zone id names an interface, not another host
        except ValueError:
            return None
    return _inet_aton(text)


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        number = _c_number(part)
        if number is None:
            return None
        numbers.append(number)
    # a.b.c.d; a.b.c16; a.b24; a32 — the last part fills the remaining bytes.
    *head, last = numbers
    if any(n > 0xFF for n in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _c_number(part: str) -> int | None:
    """A number as C's strtoul with base 0 reads it: 0x hex, leading-0 octal, else decimal."""
    lowered = part.lower()
    # int() alone would also take "7_f", " 7f" and "+7f", which inet_aton refuses.
    if lowered.startswith("0x"):
        digits = lowered[2:]
        return int(digits or "0", 16) if all(c in "0123456789abcdef" for c in digits) else None
    if not lowered or not all(c in "0123456789" for c in lowered):
        return None
    if len(lowered) > 1 and lowered.startswith("0"):
        return int(lowered, 8) if all(c in "01234567" for c in lowered) else None
    return int(lowered, 10)


def network_problem(cidr: str) -> str | None:
    """Why `cidr` is no network for an allow-list (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`), or None."""
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return f"{cidr!r} is not a network; expected a CIDR such as '10.0.0.0/8' or 'fd00::/8'"
    return None


def redact_url(url: str) -> str:
    """`url` without `user:password@`, for logs, errors and headers; anything else is kept as it was."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:authority_end]
    if "@" not in authority:
        return url
    return f"{scheme}://{authority.rpartition('@')[2]}{rest[authority_end:]}"
