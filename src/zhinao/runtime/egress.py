"""Egress policy: which addresses a remote model's ``base_url`` may point at.

A model's ``base_url`` makes the gateway send every prompt of every tenant that uses the
model to that address, so it is a server-side request (SSRF) primitive: pointed at
``169.254.169.254`` it reads cloud credentials, at ``10.x`` it reaches internal services.
Only public addresses pass by default; the operator opens more with ``ZHINAO_EGRESS_ALLOW``:
``loopback``, ``private`` (RFC 1918, CGNAT, ULA), ``link-local``, a CIDR or a host name.
Cloud metadata endpoints pass only when their exact address is listed, never through the
``link-local`` category or a wider CIDR.

Every address the host resolves to must pass (a name resolving to one public and one
private address is refused). The check runs when a model is registered and when a stored
declaration is loaded; a DNS answer that changes afterwards (rebinding) is not re-checked
per request.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from zhinao.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: instance-metadata endpoints of the common clouds (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba, ECS tasks)
METADATA = tuple(ipaddress.ip_address(a) for a in
                 ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2", "169.254.169.253"))
CATEGORIES = ("loopback", "private", "link-local")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

Resolver = Callable[[str], Iterable[str]]


def _resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({i[4][0] for i in infos})


def category(ip: IPAddress) -> str:
    """``metadata``, ``loopback``, ``link-local``, ``private``, ``reserved`` or ``public``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA:
        return "metadata"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "reserved"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT):
        return "private"
    return "public"


def _split_allow(allow: Iterable[str]) -> tuple[set[str], list[ipaddress._BaseNetwork], set[str]]:
    cats, nets, hosts = set(), [], set()
    for a in allow:
        a = a.strip().lower()
        if not a:
            continue
        if a in CATEGORIES:
            cats.add(a)
            continue
        try:
            nets.append(ipaddress.ip_network(a, strict=False))
        except ValueError:
            hosts.add(a.rstrip("."))
    return cats, nets, hosts


def check_url(url: str, allow: Iterable[str] = ("loopback",), *, resolve: Resolver = _resolve,
              param: str = "base_url") -> None:
    """Raise :class:`InvalidRequest` unless ``url`` is http(s) and every address of its host may be reached."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as e:
        raise InvalidRequest(f"{param} is not a valid URL: {e}", param=param) from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidRequest(f"{param} must be an http:// or https:// URL with a host", param=param)
    cats, nets, hosts = _split_allow(allow)
    if host.lower().rstrip(".") in hosts:
        return
    try:
        addrs = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addrs = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host)]
        except (OSError, UnicodeError) as e:
            raise InvalidRequest(f"{param}: host {host!r} does not resolve ({e}); use a reachable host name or "
                                 "address", param=param) from None
    if not addrs:
        raise InvalidRequest(f"{param}: host {host!r} does not resolve", param=param)
    for ip in addrs:
        cat = category(ip)
        listed = [n for n in nets if n.version == ip.version and ip in n]
        if cat == "metadata":
            if any(n.num_addresses == 1 for n in listed):  # only the address itself opens it
                continue
        elif listed or cat == "public" or cat in cats:
            continue
        why = {"metadata": "a cloud metadata endpoint"}.get(cat, f"a {cat} address")
        raise InvalidRequest(f"{param}: {host!r} resolves to {ip}, {why}; the egress policy refuses it "
                             "(the operator may allow it in ZHINAO_EGRESS_ALLOW)", param=param, code="egress_denied")
