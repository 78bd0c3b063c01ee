"""Which providers take keys, and what a user's key for each must look like (from the provider registry)."""

from __future__ import annotations

from imagegen.errors import NotFound, ValidationFailed
from imagegen.providers import KEY_PROVIDERS, REGISTRY


def key_provider(name: str) -> str:
    """The provider named in a path; anything else is a 404, like any unknown resource."""
    if name in KEY_PROVIDERS:
        return name
    raise NotFound(
        f"no key provider named {name[:64]!r}",
        hint=f"providers that take keys: {', '.join(KEY_PROVIDERS)}",
    )


def check_key_format(provider: str, api_key: str) -> None:
    """422 naming `api_key` and what was expected; the key itself is never echoed."""
    spec = REGISTRY[provider].key
    if spec is None:
        raise ValueError(f"{provider} takes no key")
    if spec.accepts(api_key):
        return
    message = f"expected {spec.expected}"
    raise ValidationFailed(f"api_key: {message}", details=[{"field": "api_key", "message": message}])


def last4(api_key: str) -> str:
    return api_key[-4:]


def usable_deployment_key(provider: str, value: object) -> str | None:
    """A deployment key as configured, or None: an empty key is no key (sending one got 403s in the field), and
    a provider's anonymous key (Horde's) is its keyless path."""
    if not isinstance(value, str) or not value.strip():
        return None
    key = REGISTRY[provider].key if provider in REGISTRY else None
    if key is not None and value.strip() == key.anonymous:
        return None
    return value.strip()
