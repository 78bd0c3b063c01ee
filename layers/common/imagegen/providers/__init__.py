"""The provider registry: adding a provider is one module and one line here."""

from __future__ import annotations

from imagegen.providers import horde, huggingface, placeholder, pollinations, siliconflow
from imagegen.providers.base import Provider

REGISTRY: dict[str, Provider] = {
    p.name: p
    for p in (
        siliconflow.PROVIDER,
        huggingface.PROVIDER,
        horde.PROVIDER,
        pollinations.PROVIDER,
        placeholder.PROVIDER,
    )
}

__all__ = ["REGISTRY", "Provider"]
