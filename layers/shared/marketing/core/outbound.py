"""Requests to URLs that tenants configure (the reward webhook, any future callback), kept out of our network.

A destination must be `https` and its host must resolve only to public addresses: loopback, private,
link-local (169.254.0.0/16, the cloud metadata service among them), carrier-grade NAT (100.64.0.0/10),
multicast, unspecified and reserved addresses are refused, in IPv6 too (::1, fc00::/7, fe80::/10, and IPv4
addresses inside IPv6: mapped, 6to4, NAT64), as are names that only mean something inside a network
(`localhost`, `*.internal` such as `metadata.google.internal`, single-label names). The check runs when the
URL is configured and again before every request: the name is resolved, every address checked, and the
connection goes to a checked address with the original Host and TLS name (SNI, certificate), so a name that
changes its answer in between (DNS rebinding) cannot reach inside. Redirects are never followed.

`LOCAL_ALLOW_LOOPBACK_WEBHOOKS=1` lets tests and the local stack reach a receiver on this machine (`http`,
loopback addresses). It is honoured only outside Lambda.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_METADATA_NAMES = {"metadata", "metadata.goog", "instance-data"}  # short names some clouds resolve


class UnsafeDestination(ValueError):
    """The URL may not be called; the message says why (and names the refused address)."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    target: str  # path and query, what the request line carries
    addresses: tuple[str, ...]  # every address the host resolved to, each checked


def _local_loopback_allowed() -> bool:
    return os.environ.get("LOCAL_ALLOW_LOOPBACK_WEBHOOKS") == "1" and not os.environ.get("AWS_LAMBDA_FUNCTION_NAME")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be called, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
        return address_refusal(inner)
    if ip.is_loopback:
        return None if _local_loopback_allowed() else "a loopback address"
    for name, test in (("an unspecified", ip.is_unspecified), ("a link-local", ip.is_link_local),
                       ("a multicast", ip.is_multicast), ("a carrier-grade NAT", ip in _CGNAT),
                       ("a private", ip.is_private), ("a reserved", ip.is_reserved),
                       ("a site-local", getattr(ip, "is_site_local", False))):
        if test:
            return f"{name} address"
    return None if ip.is_global else "a non-public address"


def _name_refusal(host: str) -> str | None:
    if host == "localhost" or host.endswith(".localhost"):
        return None if _local_loopback_allowed() else "a loopback name"
    if host in _METADATA_NAMES or host.endswith(".internal"):
        return "a name internal to a network (such as a cloud metadata service)"
    if "." not in host and ":" not in host:
        return "a single-label name, internal to a network"
    return None


def _resolve(host: str, port: int) -> tuple[str, ...]:
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(a[4][0]) for a in answers))  # in the resolver's order, once each


def destination(url: str, *, configuring: bool = False) -> Destination:
    """The checked destination of `url`; raises UnsafeDestination. A name that does not resolve raises
    OSError (worth a retry), except when `configuring`: it may not be published yet, and is checked again
    before every request."""
    parts = urlsplit(str(url))
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".").lower()
    if scheme != "https" and not (scheme == "http" and _local_loopback_allowed()):
        raise UnsafeDestination("the URL must use https")
    if not host:
        raise UnsafeDestination("the URL has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeDestination("the URL's port is invalid") from exc
    refusal = _name_refusal(host)
    if refusal:
        raise UnsafeDestination(f"{host} is {refusal}")
    try:
        addresses = _resolve(host, port)
    except UnicodeError as exc:
        raise UnsafeDestination(f"{host} is not a valid host name") from exc
    except OSError as exc:
        if not configuring:
            raise OSError(f"{host} does not resolve: {exc}") from exc
        addresses = ()
    for address in addresses:
        refusal = address_refusal(ipaddress.ip_address(address.split("%")[0]))  # fe80::1%eth0: drop the zone
        if refusal:
            raise UnsafeDestination(f"{address} is {refusal}" if address == host else
                                    f"{host} resolves to {address}, {refusal}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(scheme, host, port, target, addresses)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST `body` to a checked address of `url`'s host; answers the HTTP status (redirects are not followed).
    Raises UnsafeDestination before connecting anywhere unsafe, OSError when the host cannot be reached."""
    checked = destination(url)
    kind = http.client.HTTPSConnection if checked.scheme == "https" else http.client.HTTPConnection
    connection = kind(checked.host, checked.port, timeout=timeout)  # Host header, SNI and certificate: the name

    def connect_checked(address: tuple[str, int], timeout: float | None = None, source_address=None):
        # Only the addresses just checked, never a second lookup of the name.
        error: OSError = OSError(f"{checked.host} has no address")
        for ip in checked.addresses:
            try:
                return socket.create_connection((ip, address[1]), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error

    connection._create_connection = connect_checked  # http.client's own hook for opening the socket
    try:
        connection.request("POST", checked.target, body=body, headers=headers)
        return connection.getresponse().status
    except http.client.HTTPException as exc:
        raise OSError(f"bad answer: {exc}") from exc
    finally:
        connection.close()
