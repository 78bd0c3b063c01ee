"""Webhook URL checks: https to public addresses only, at create time and again at delivery (DNS may change)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from imagegen.errors import UrlNotAllowed

Resolver = Callable[[str, int], Sequence[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# ---------------------------------------------------------------------------------------------------------------
# TODO(fetch): replace this section with imagegen.fetch.check_url once the safe fetcher is on main, e.g.
#   check_url(url, FetchPolicy(allowed_host_suffixes=(host,), allow_private_networks=...), resolver=...)
# (webhooks need no host allowlist, so the policy admits exactly the URL's own host and every other check applies).
# Until then this is a minimal, deliberately strict stand-in: https only, no userinfo, and every address the host
# resolves to must be public; metadata, link-local, multicast and reserved addresses are refused even when private
# networks are allowed for local test doubles.

_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class HostUnresolvable(Exception):
    """The host has no address right now (DNS): at create time a refusal, at delivery a reason to retry."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    target: str  # path and query as given
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.scheme == "https" else 80) else f"{host}:{self.port}"


def _refuse(reason: str) -> UrlNotAllowed:
    return UrlNotAllowed(f"URL not allowed: {reason}")


def _refusal(address: Address, allow_private: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return "not a unicast address"
    if address.is_loopback:
        return None if allow_private else "a loopback address"
    if address.is_private or not address.is_global:
        return None if allow_private else "a private address"
    return None


def check_target(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> Target:
    """Refuse (UrlNotAllowed) anything but https to a public address; admit http and loopback/private only
    when allow_private (local test doubles). Raises HostUnresolvable when DNS has no answer."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("malformed host or port") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_private):
        raise _refuse(f"scheme {scheme or '(none)'!r} is not allowed; only https")
    if not url.isascii():
        raise _refuse("the URL must be ASCII (percent-encode it)")
    if "@" in parts.netloc:
        raise _refuse("credentials in the URL are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _refuse("the URL has no host")
    if (host == "localhost" or host.endswith(".localhost")) and not allow_private:
        raise _refuse(f"host {host} is a loopback name")
    port = port or (443 if scheme == "https" else 80)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        resolved: Sequence[str] = [str(literal)]
    else:
        try:
            resolved = resolver(host, port)
        except (OSError, UnicodeError) as error:
            raise HostUnresolvable(host) from error
    addresses: list[str] = []
    for raw in resolved:
        address = ipaddress.ip_address(raw.split("%", 1)[0])
        reason = _refusal(address, allow_private)
        if reason:
            raise _refuse(f"host {host} resolves to {address}, {reason}")
        addresses.append(str(address))
    if not addresses:
        raise HostUnresolvable(host)
    start = url.index("//") + 2 + len(parts.netloc)
    target = url[start:].split("#", 1)[0] or "/"
    return Target(url=url, scheme=scheme, host=host, port=port, target=target, addresses=tuple(addresses))


def url_check(allow_private: bool, resolver: Resolver = system_resolver) -> Callable[[str, str], None]:
    """The create-time check for a client's webhook URL; a refusal names the field it came from."""

    def check(url: str, field: str) -> None:
        try:
            check_target(url, allow_private=allow_private, resolver=resolver)
        except UrlNotAllowed as refused:
            raise UrlNotAllowed(
                f"{field}: {refused.message}",
                hint="webhook URLs must be https and reach a public address",
                details=[{"field": field, "message": refused.message}],
            ) from None
        except HostUnresolvable:
            raise UrlNotAllowed(
                f"{field}: URL not allowed: host does not resolve",
                hint="use a host name that resolves in public DNS",
                details=[{"field": field, "message": "host does not resolve"}],
            ) from None

    return check
