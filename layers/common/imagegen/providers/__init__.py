"""The provider registry: adding a provider is one module and one line here; every other list derives from it.

The specs are imported on first use (the module __getattr__ below), so importing a part of this package (its
settings or base types, as every function's settings do) or the provider names (the API's request models) loads no
provider module: a function pays for provider code only when it looks at providers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegen.providers.spec import ProviderSpec


# One line per provider: its name. The module imagegen.providers.<name> declares everything else in its SPEC.
IMAGE_PROVIDERS: tuple[str, ...] = (
    "siliconflow",
    "huggingface",
    "fal",
    "replicate",
    "horde",
    "pollinations",
    "placeholder",
)
# Keyed services that are no image provider (their SPEC says generates_images=False): keys and key checks only.
KEYED_SERVICES: tuple[str, ...] = ("tavily",)

# Image providers, in registry order: what a request's `providers` may name (models.ProviderName). Known without
# importing a provider module, so the API's request models cost no provider code at cold start.
PROVIDER_NAMES: tuple[str, ...] = IMAGE_PROVIDERS
# Image providers that also make videos (their SPEC has a `video` part): what a video request's `providers` may name.
# Written out for the same reason as PROVIDER_NAMES; tests/unit/test_registry.py holds it to the specs.
VIDEO_PROVIDER_NAMES: tuple[str, ...] = ("siliconflow",)


def _specs() -> tuple[ProviderSpec[Any], ...]:
    modules = [importlib.import_module(f"{__name__}.{name}") for name in (*IMAGE_PROVIDERS, *KEYED_SERVICES)]
    return tuple(module.SPEC for module in modules)


# --- the registry and the lists derived from it: never written out anywhere else -------------------------------

REGISTRY: dict[str, ProviderSpec[Any]]
# The chain when IMAGEGEN_PROVIDERS is unset: every image provider that calls a real model, in registry order.
DEFAULT_CHAIN: tuple[str, ...]
# Everything that takes a key (image providers and keyed services such as Tavily): PUT /v1/keys/{provider}.
KEY_PROVIDERS: tuple[str, ...]
# Providers that work without any key.
KEYLESS_PROVIDERS: frozenset[str]
# The names a deployment key goes by: environment variable locally, key of the JSON map in the secret.
DEPLOYMENT_KEY_NAMES: dict[str, str]
# Where providers deliver results: the safe fetcher's default allowlist (imagegen.media.fetch).
RESULT_HOSTS: tuple[str, ...]
# The video chain when VIDEO_PROVIDERS is unset: every provider with a video part, in registry order.
DEFAULT_VIDEO_CHAIN: tuple[str, ...]


def _derive() -> dict[str, Any]:
    registry = {spec.name: spec for spec in _specs()}
    return {
        "REGISTRY": registry,
        "DEFAULT_CHAIN": tuple(name for name, spec in registry.items() if spec.generates_images and not spec.offline),
        "KEY_PROVIDERS": tuple(name for name, spec in registry.items() if spec.key is not None),
        "KEYLESS_PROVIDERS": frozenset(name for name, spec in registry.items() if spec.keyless),
        "DEPLOYMENT_KEY_NAMES": {name: spec.key.env for name, spec in registry.items() if spec.key},
        "RESULT_HOSTS": tuple(dict.fromkeys(host for spec in registry.values() for host in spec.result_hosts)),
        "DEFAULT_VIDEO_CHAIN": tuple(name for name, spec in registry.items() if spec.video is not None),
    }


# Every name annotated without a value above, and only those, is built by _derive().
_DERIVED = frozenset(__annotations__) - set(globals())


def __getattr__(name: str) -> Any:
    if name not in _DERIVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals().update(_derive())
    return globals()[name]


def spec_for(name: str) -> ProviderSpec[Any]:
    registry: dict[str, ProviderSpec[Any]] = __getattr__("REGISTRY")
    return registry[name]


__all__ = [
    "DEFAULT_CHAIN",
    "DEFAULT_VIDEO_CHAIN",
    "DEPLOYMENT_KEY_NAMES",
    "IMAGE_PROVIDERS",
    "KEYED_SERVICES",
    "KEYLESS_PROVIDERS",
    "KEY_PROVIDERS",
    "PROVIDER_NAMES",
    "REGISTRY",
    "RESULT_HOSTS",
    "VIDEO_PROVIDER_NAMES",
    "spec_for",
]
