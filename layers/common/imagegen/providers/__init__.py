"""The provider registry: adding a provider is one module and one line here; every other list derives from it."""

from __future__ import annotations

from typing import Any

from imagegen.providers import horde, huggingface, placeholder, pollinations, siliconflow, tavily
from imagegen.providers.spec import ProviderSpec

REGISTRY: dict[str, ProviderSpec[Any]] = {
    spec.name: spec
    for spec in (
        siliconflow.SPEC,
        huggingface.SPEC,
        horde.SPEC,
        pollinations.SPEC,
        placeholder.SPEC,
        tavily.SPEC,
    )
}

# --- derived lists: never written out anywhere else ------------------------------------------------------------

# Image providers, in registry order: what a request's `providers` may name (models.ProviderName).
PROVIDER_NAMES: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if spec.generates_images)
# The chain when IMAGEGEN_PROVIDERS is unset: every image provider that calls a real model, in registry order.
DEFAULT_CHAIN: tuple[str, ...] = tuple(
    name for name, spec in REGISTRY.items() if spec.generates_images and not spec.offline
)
# Everything that takes a key (image providers and keyed services such as Tavily): PUT /v1/keys/{provider}.
KEY_PROVIDERS: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if spec.key is not None)
# Providers that work without any key.
KEYLESS_PROVIDERS: frozenset[str] = frozenset(name for name, spec in REGISTRY.items() if spec.keyless)
# The names a deployment key goes by: environment variable locally, key of the JSON map in the secret.
DEPLOYMENT_KEY_NAMES: dict[str, str] = {name: spec.key.env for name, spec in REGISTRY.items() if spec.key}
# Where providers deliver results: the safe fetcher's default allowlist (imagegen.media.fetch).
RESULT_HOSTS: tuple[str, ...] = tuple(dict.fromkeys(host for spec in REGISTRY.values() for host in spec.result_hosts))


def spec_for(name: str) -> ProviderSpec[Any]:
    return REGISTRY[name]


__all__ = [
    "DEFAULT_CHAIN",
    "DEPLOYMENT_KEY_NAMES",
    "KEYLESS_PROVIDERS",
    "KEY_PROVIDERS",
    "PROVIDER_NAMES",
    "REGISTRY",
    "RESULT_HOSTS",
    "ProviderSpec",
    "spec_for",
]
