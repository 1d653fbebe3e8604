"""The egress guard's decision: may the crawler (or the notifier) connect to this address? Pure.

Only public unicast addresses pass. Refused: loopback (unless the explicit allowance is on, for the
demo and tests), private, shared (CGNAT), link-local (which holds the 169.254.169.254 metadata
service), multicast, reserved, unspecified, and any IPv6 form that embeds one of those (IPv4-mapped,
6to4, Teredo, NAT64). Hosts spelled as numbers — 2130706433, 0177.0.0.1, 127.1, 0x7f.1 — are read
the way the C resolver reads them, so a spelling cannot smuggle an address past the check.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressBlocked(Exception):
    """The destination is not a public address (or the URL is not one we may fetch)."""


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, without DNS: IPv6 literals (with or without
    brackets), dotted quads, and the legacy inet_aton forms (decimal, octal, hex, short)."""
    host = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))  # parsing only; no packet is sent
        except OSError:
            return None
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour:
        return ip.sixtofour, "6to4"
    if ip.teredo:
        return ip.teredo[1], "Teredo"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    return None


def refusal(ip: IPAddress | str, allow_loopback: bool = False) -> str | None:
    """Why `ip` may not be contacted, or None when it may."""
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner, how = embedded
            reason = refusal(inner, allow_loopback)
            return f"{how} {ip} embeds {inner}: {reason}" if reason else None
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} is loopback"
    if ip.is_link_local:
        return f"{ip} is link-local (cloud metadata lives here)"
    if ip.is_private:
        return f"{ip} is private"
    if ip.is_multicast:
        return f"{ip} is multicast"
    if ip.is_unspecified or ip.is_reserved:
        return f"{ip} is reserved"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def check_url(url: str, allow_loopback: bool = False) -> None:
    """Refuse a URL before any connection: not http(s), no host, or a host that is itself a
    forbidden address. Names are checked again at resolution (see fetch.GuardedResolver)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise EgressBlocked(f"scheme {parts.scheme!r} is not fetched")
    host = parts.hostname
    if not host:
        raise EgressBlocked("no host")
    if parts.username or parts.password:
        raise EgressBlocked("credentials in URLs are not fetched")
    literal = parse_ip_literal(host)
    if literal is not None:
        reason = refusal(literal, allow_loopback)
        if reason:
            raise EgressBlocked(reason)
