"""Routing providers' catalogs (Hugging Face's provider mappings): kept in the table, fetched when missing or old.

The worker reads a model's entries through a short per-container cache, then the table (one item per model, with
when it was fetched); with nothing stored, or only something older than the provider's `mapping_max_age_s`, it
fetches the catalog (one or two GETs) and stores the answer. A route that says it does not serve a model makes the
chain ask for a refresh (at most once a minute per model and container). The scheduled function refreshes every
stored or configured model whose entry is older than `mapping_refresh_s`. When the catalog cannot be read and
nothing is stored, `entries` answers None and the routing spec decides what is still safe to try.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from imagegen.errors import ImagegenError
from imagegen.providers.base import CatalogEntry
from imagegen.providers.settings import RoutingSettings

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from imagegen.providers.settings import ProvidersSettings
    from imagegen.providers.spec import ProviderSpec

logger = logging.getLogger(__name__)

# A catalog call must not eat an attempt's budget: the Hub answers these in well under a second.
FETCH_TIMEOUT_S = 5.0
# Refreshes asked by failing routes: at most one per model and container in this many seconds.
REFRESH_EVERY_S = 60.0


@dataclass(frozen=True)
class StoredCatalog:
    entries: tuple[CatalogEntry, ...]
    # Wall-clock seconds of the fetch.
    fetched_at: float


class RouteMapStore(Protocol):
    """Where catalogs are kept between containers (adapters/route_maps.py)."""

    def get(self, provider: str, model: str) -> StoredCatalog | None: ...

    def put(self, provider: str, model: str, stored: StoredCatalog) -> None: ...

    def models(self, provider: str) -> list[str]:
        """Every model with a stored catalog for this provider."""
        ...


class InMemoryRouteMapStore:
    """The same store in a dict: unit tests, and a chain built without a table."""

    def __init__(self, items: Mapping[tuple[str, str], StoredCatalog] | None = None) -> None:
        self.items: dict[tuple[str, str], StoredCatalog] = dict(items or {})

    def get(self, provider: str, model: str) -> StoredCatalog | None:
        return self.items.get((provider, model))

    def put(self, provider: str, model: str, stored: StoredCatalog) -> None:
        self.items[(provider, model)] = stored

    def models(self, provider: str) -> list[str]:
        return sorted(model for name, model in self.items if name == provider)


@dataclass
class RefreshReport:
    """What one scheduled refresh did: counts, nothing else."""

    refreshed: int = 0
    fresh: int = 0
    failed: int = 0
    stopped_early: bool = False
    models: dict[str, list[str]] = field(default_factory=dict)


class RouteMaps:
    """Implements chain.ports.RouteCatalog over a store, the catalog's own HTTP calls and a per-container cache."""

    def __init__(
        self,
        store: RouteMapStore,
        settings: ProvidersSettings,
        http: httpx.Client,
        *,
        registry: Mapping[str, ProviderSpec[Any]],
        token: Callable[[str], SecretStr | None],
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._settings = settings
        self._http = http
        self._registry = registry
        self._token = token
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._memory: dict[tuple[str, str], tuple[tuple[CatalogEntry, ...] | None, float]] = {}
        self._fetched: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    # --- the chain's port ------------------------------------------------------------------------------------

    def entries(self, provider: str, model: str) -> tuple[CatalogEntry, ...] | None:
        key = (provider, model)
        with self._lock:
            remembered = self._memory.get(key)
            if remembered is not None and self._monotonic() - remembered[1] < self._setting(provider, "cache_s"):
                return remembered[0]
        stored = self._read(provider, model)
        if stored is None or self._wall_clock() - stored.fetched_at >= self._setting(provider, "max_age_s"):
            stored = self._fetch(provider, model) or stored
        entries = stored.entries if stored is not None else None
        with self._lock:
            self._memory[key] = (entries, self._monotonic())
        return entries

    def refresh(self, provider: str, model: str) -> None:
        last = self._fetched.get((provider, model))
        if last is not None and self._monotonic() - last < REFRESH_EVERY_S:
            return
        if self._fetch(provider, model) is not None:
            with self._lock:
                self._memory.pop((provider, model), None)

    # --- the schedule ------------------------------------------------------------------------------------------

    def refresh_due(self, *, deadline: float, max_fetches: int) -> RefreshReport:
        """Fetch again every configured or stored model whose catalog is older than the provider's refresh age."""
        report = RefreshReport()
        for provider, spec in self._registry.items():
            if spec.routing is None:
                continue
            models = self._models(provider)
            report.models[provider] = models
            for model in models:
                if report.refreshed + report.failed >= max_fetches or self._monotonic() >= deadline:
                    report.stopped_early = True
                    return report
                stored = self._read(provider, model)
                if stored is not None and self._wall_clock() - stored.fetched_at < self._setting(provider, "refresh_s"):
                    report.fresh += 1
                elif self._fetch(provider, model) is not None:
                    report.refreshed += 1
                else:
                    report.failed += 1
        return report

    def _models(self, provider: str) -> list[str]:
        configured = list(self._settings.image_provider(provider).models)
        try:
            stored = self._store.models(provider)
        except ImagegenError as exc:
            logger.warning("stored catalogs unreadable", extra={"provider": provider, "error": exc.code})
            stored = []
        return list(dict.fromkeys([*configured, *stored]))

    # --- reading and fetching ---------------------------------------------------------------------------------

    def _setting(self, provider: str, name: str) -> float:
        settings = self._settings.for_provider(provider)
        assert isinstance(settings, RoutingSettings), f"{provider} is no routing provider"
        return float(getattr(settings, f"mapping_{name}"))

    def _read(self, provider: str, model: str) -> StoredCatalog | None:
        try:
            return self._store.get(provider, model)
        except ImagegenError as exc:
            # An unreadable table must not fail the job: the catalog is fetched instead.
            logger.warning("stored catalog unreadable", extra={"provider": provider, "error": exc.code})
            return None

    def _fetch(self, provider: str, model: str) -> StoredCatalog | None:
        routing = self._registry[provider].routing
        assert routing is not None
        self._fetched[(provider, model)] = self._monotonic()
        settings = self._settings.for_provider(provider)
        import httpx  # only where a catalog is fetched: the API reads stored catalogs without loading httpx

        try:
            token = self._token(provider)
        except ImagegenError as exc:
            # The deployment's key being unreadable must not cost the mapping, which is public.
            logger.warning("catalog fetched without a token", extra={"provider": provider, "error": exc.code})
            token = None
        try:
            entries = routing.fetch(model, settings, token, self._send)
        except httpx.HTTPError as exc:
            logger.warning("catalog unreachable", extra={"provider": provider, "error": type(exc).__name__})
            return None
        if entries is None:
            logger.warning("catalog gave no usable answer", extra={"provider": provider})
            return None
        stored = StoredCatalog(entries, self._wall_clock())
        try:
            self._store.put(provider, model, stored)
        except ImagegenError as exc:
            logger.warning("catalog not stored", extra={"provider": provider, "error": exc.code})
        return stored

    def _send(self, request: httpx.Request) -> httpx.Response:
        request.extensions["timeout"] = {"connect": 3.0, "read": FETCH_TIMEOUT_S, "write": FETCH_TIMEOUT_S, "pool": 3.0}
        return self._http.send(request)
