"""What the chain runs on: the ports it calls (result fetcher, keys, metrics) and the bundle of its collaborators."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from imagegen.breaker import Breakers
from imagegen.chain.latency import LatencyBook
from imagegen.chain.limits import RateLimits
from imagegen.chain.memory import HedgeBudget, Suspects
from imagegen.keys.types import HealthStatus, ResolvedKey
from imagegen.providers.base import CatalogEntry
from imagegen.providers.settings import ProvidersSettings
from imagegen.providers.spec import ProviderSpec

if TYPE_CHECKING:
    import httpx

    from imagegen.generation import GeneratedVideo, RunContext
    from imagegen.providers.base import ProviderError, ProviderResult


class FetchedLike(Protocol):
    @property
    def content_type(self) -> str | None: ...

    @property
    def data(self) -> bytes: ...


class ResultFetcher(Protocol):
    """Downloads a signed result URL exactly as given, with no Authorization header (imagegen.media.fetch)."""

    def fetch_bytes(self, url: str) -> FetchedLike: ...


class VideoResults(Protocol):
    """A video chain's results: streamed into the job's storage and checked on the way (imagegen.media.video_results);
    an error (not a video, an expired link) fails the link, and the chain moves on."""

    def store(
        self, result: ProviderResult, ctx: RunContext, provider: str, model: str | None
    ) -> GeneratedVideo | ProviderError: ...


class KeyPort(Protocol):
    """Which key a run uses per provider (imagegen.keys.chain_keys.ChainKeys in production and in tests)."""

    def resolve(self, user_id: str, provider: str) -> ResolvedKey:
        """User key, else deployment key, else keyless where the provider allows it; source None: no usable key."""
        ...

    def report(self, user_id: str, provider: str, key_source: str, status: HealthStatus, detail: str) -> None:
        """What a real call learned about the whole key (a 401: invalid), so later runs skip it."""
        ...

    def payment_refused(self, user_id: str, provider: str, key_source: str, job_id: str, detail: str) -> None:
        """One request was refused for credit (a 402, Horde's KudosUpfront): evidence, not a verdict on the key. Enough
        of it from different jobs marks the key out of credit until a key check, which it asks for soon."""
        ...

    def model_gone(self, user_id: str, provider: str, key_source: str, model: str) -> None:
        """The provider said this model does not exist (for this key): later runs skip it until the next listing."""
        ...


class RouteCatalog(Protocol):
    """A routing provider's catalog (Hugging Face's provider mappings): which routes serve a model (catalogs.py)."""

    def entries(self, provider: str, model: str) -> tuple[CatalogEntry, ...] | None:
        """The model's catalog entries (empty: none serve it); None: nothing known and the catalog unreachable."""
        ...

    def refresh(self, provider: str, model: str) -> None:
        """A route answered that it does not serve the model: read the catalog again (at most once in a while)."""
        ...


class MetricsSink(Protocol):
    """What the chain needs of aws_lambda_powertools.Metrics (the handler owns and flushes it)."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class ChainMetrics:
    """Per-provider counters through one Metrics instance: names carry the provider (EMF dimensions are per flush)."""

    def __init__(self, sink: MetricsSink | None) -> None:
        self.sink = sink
        self._lock = threading.Lock()

    def _add(self, name: str, unit: str, value: float) -> None:
        if self.sink is None:
            return
        with self._lock:
            self.sink.add_metric(name=name, unit=unit, value=value)

    def attempt(self, provider: str, outcome: str, error_class: str | None, latency_ms: int) -> None:
        self._add("ProviderAttempts", "Count", 1)
        self._add(f"{provider}.Attempts", "Count", 1)
        self._add(f"{provider}.Latency", "Milliseconds", latency_ms)
        if outcome == "succeeded":
            self._add("ProviderSuccesses", "Count", 1)
            self._add(f"{provider}.Successes", "Count", 1)
        elif error_class:
            self._add("ProviderFailures", "Count", 1)
            self._add(f"{provider}.Failures.{error_class}", "Count", 1)

    def fallback(self, provider: str) -> None:
        self._add("ProviderFallbacks", "Count", 1)
        self._add(f"{provider}.Fallbacks", "Count", 1)

    def count(self, name: str) -> None:
        self._add(name, "Count", 1)


@dataclass
class ChainDeps:
    """Everything the chain's parts share; clocks, sleep and the jitter RNG are here so tests can drive them."""

    settings: ProvidersSettings
    registry: Mapping[str, ProviderSpec[Any]]
    http: httpx.Client
    fetcher: ResultFetcher
    keys: KeyPort
    breakers: Breakers
    limits: RateLimits
    latency: LatencyBook
    suspects: Suspects
    hedge_budget: HedgeBudget
    metrics: ChainMetrics
    catalog: RouteCatalog
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    sleep: Callable[[float], None]
    rng: random.Random
    # Set for a video job's chain: results are stored videos, never image bytes.
    videos: VideoResults | None = None
