"""The policies of the shared state the chain reads and writes (breakers, latency sketches), from the chain's settings:
one definition for the worker that writes them and the API that shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagegen.breaker import BreakerPolicy
from imagegen.chain.latency import LatencyPolicy

if TYPE_CHECKING:
    from imagegen.providers.settings import ProvidersSettings


def breaker_policy(settings: ProvidersSettings) -> BreakerPolicy:
    chain = settings.chain
    return BreakerPolicy(
        threshold=chain.breaker_threshold, cooldown_s=chain.breaker_cooldown_s, cache_s=chain.shared_cache_s
    )


def latency_policy(settings: ProvidersSettings) -> LatencyPolicy:
    return LatencyPolicy(min_samples=settings.chain.latency_min_samples)
