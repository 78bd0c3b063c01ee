"""Runs one provider's key check (its spec's request and parser) over one client; never sends a key elsewhere."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx

from imagegen.keys.types import CheckResult
from imagegen.providers import REGISTRY

if TYPE_CHECKING:
    from pydantic import SecretStr

    from imagegen.providers.settings import ProvidersSettings
    from imagegen.providers.spec import ModelListing


def build_request(provider: str, key: SecretStr, settings: ProvidersSettings) -> httpx.Request:
    """The provider's cheap key-check request, to the base URL its settings name."""
    spec = REGISTRY[provider].key
    if spec is None:
        raise ValueError(f"{provider} takes no key")
    return spec.check.build(settings.for_provider(provider), key)


def parse_response(provider: str, response: httpx.Response) -> CheckResult:
    """ok | invalid | out_of_credit | unreachable, or no verdict (status None) on a 429."""
    if response.status_code == 429:
        # Rate limited: nothing learned about the key (HF whoami-v2 is strict on purpose).
        return CheckResult(None, "rate limited by the key-check endpoint (HTTP 429)")
    if response.status_code >= 500:
        return CheckResult("unreachable", f"provider error: HTTP {response.status_code}")
    spec = REGISTRY[provider].key
    assert spec is not None
    try:
        return spec.check.parse(response)
    except Exception as exc:  # noqa: BLE001 - a parser tripping over an unexpected answer learns nothing about the key
        return CheckResult("unreachable", f"unreadable answer from the key-check endpoint ({type(exc).__name__})")


def parse_listing(provider: str, response: httpx.Response) -> tuple[str, ...] | None:
    """The models a listing names; None when it names none usable (then every configured model is tried)."""
    listing = _listing_of(provider)
    if listing is None or response.status_code != 200:
        return None
    try:
        return listing.parse(response)
    except Exception:  # noqa: BLE001 - an unreadable listing is no listing
        return None


def _listing_of(provider: str) -> ModelListing[Any] | None:
    key = REGISTRY[provider].key
    return key.check.listing if key is not None else None


class KeyChecker:
    """Runs the checks over one httpx client; a timeout or connection error is `unreachable`, never `invalid`."""

    def __init__(self, client: httpx.Client, settings: ProvidersSettings) -> None:
        self._client = client
        self._settings = settings

    def check(self, provider: str, key: SecretStr) -> CheckResult:
        request = build_request(provider, key, self._settings)
        try:
            response = self._client.send(request)
        except httpx.TimeoutException:
            return CheckResult("unreachable", "the key-check endpoint timed out")
        except httpx.DecodingError as error:
            return CheckResult("unreachable", f"the key-check answer could not be decoded ({type(error).__name__})")
        except httpx.TransportError as error:
            return CheckResult("unreachable", f"could not reach the key-check endpoint ({type(error).__name__})")
        result = parse_response(provider, response)
        if result.status == "ok":
            return replace(result, models=self._listing(provider, key))
        return result

    def _listing(self, provider: str, key: SecretStr) -> tuple[str, ...] | None:
        """The provider's model listing for a working key (SiliconFlow's GET /models); None: none to be had."""
        listing = _listing_of(provider)
        if listing is None:
            return None
        try:
            response = self._client.send(listing.build(self._settings.for_provider(provider), key))
        except httpx.HTTPError:
            return None
        return parse_listing(provider, response)


def new_client(timeout_seconds: float) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 3.0)),
        # Never follow a redirect: it could carry the key (Horde's `apikey` header) to another host.
        follow_redirects=False,
        # No proxies from the environment: the key goes to the provider's host and nowhere else.
        trust_env=False,
    )
