"""Server-side request forgery guard for webhook URLs.

A webhook makes this server POST to a URL a client chose. Unless the deployment allows it
(``webhooks_allow_private``), the URL's host must resolve only to public unicast addresses, so a
client cannot point the service at itself, at cloud metadata endpoints or at the private network.
The check runs when a webhook is registered and again before every delivery (DNS may change).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """The URL may not be called by this service; the message says why."""


def _parse(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"webhook url {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl(f"webhook url {url!r} must use http or https")
    if not parts.hostname:
        raise UnsafeUrl(f"webhook url {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("webhook urls must not carry credentials; use api_key_name and api_key_value")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_public(address: IPAddress) -> bool:
    """True for a global unicast address: not loopback, private, link-local, multicast, reserved, unspecified."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"webhook host {host!r} cannot be resolved: {exc}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise :class:`UnsafeUrl` unless this service may POST to ``url``."""
    host, port = _parse(url)
    if allow_private:
        return
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeUrl(f"webhook host {host!r} resolves to no address")
    for address in addresses:
        if not is_public(address):
            raise UnsafeUrl(
                f"webhook url {url!r} resolves to {address}, a loopback, private, link-local, multicast "
                "or reserved address, which this service does not call"
            )
