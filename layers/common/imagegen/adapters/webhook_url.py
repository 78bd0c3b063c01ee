"""Webhook URL checks: the safe fetcher's SSRF rules, at create time and again at delivery (DNS may change)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from imagegen.errors import UpstreamError, UrlNotAllowed

if TYPE_CHECKING:
    from imagegen.media.fetch import CheckedUrl

Resolver = Callable[[str, int], Sequence[str]]


def system_resolver(host: str, port: int) -> list[str]:
    # Imported here: imagegen.media.fetch brings httpx, which the API and worker should not load at cold start.
    from imagegen.media.fetch import system_resolver as resolve

    return resolve(host, port)


class HostUnresolvable(Exception):
    """The host has no address right now (DNS): at create time a refusal, at delivery a reason to retry."""


def check_target(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> CheckedUrl:
    """imagegen.media.fetch.check_url with every rule but the host allowlist: https only, no userinfo, and every address
    the host resolves to public (http and loopback/private only when allow_private, for local test doubles;
    metadata and link-local never). Raises UrlNotAllowed, or HostUnresolvable when DNS has no answer."""
    from imagegen.media.fetch import FetchPolicy, check_url

    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        host = ""
    # Webhook receivers are anyone's servers, so there is no list of hosts to allow: the policy admits exactly
    # the URL's own host, and all of check_url's other checks (scheme, shape, resolved addresses) apply.
    suffixes = (host,) if host and "/" not in host and "@" not in host else ()
    policy = FetchPolicy(allowed_host_suffixes=suffixes, allow_private_networks=allow_private)
    try:
        return check_url(url, policy, resolver=resolver)
    except UpstreamError as error:  # check_url's "could not resolve host" / "host has no address"
        raise HostUnresolvable(host) from error


def url_check(allow_private: bool, resolver: Resolver = system_resolver) -> Callable[[str, str], None]:
    """The create-time check for a URL a client gives (a webhook URL; a video's input image, which a provider will
    fetch); a refusal names the field it came from."""

    def check(url: str, field: str) -> None:
        try:
            check_target(url, allow_private=allow_private, resolver=resolver)
        except UrlNotAllowed as refused:
            raise UrlNotAllowed(
                f"{field}: {refused.message}",
                hint=f"{field} must be an https URL that reaches a public address",
                details=[{"field": field, "message": refused.message}],
            ) from None
        except HostUnresolvable:
            raise UrlNotAllowed(
                f"{field}: URL not allowed: host does not resolve",
                hint="use a host name that resolves in public DNS",
                details=[{"field": field, "message": "host does not resolve"}],
            ) from None

    return check
