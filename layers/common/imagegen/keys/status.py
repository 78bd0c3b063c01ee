"""The chain as one caller would get it: per provider its key source, health, the breaker of the caller's own key,
observed latencies, and whether it is tried."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from imagegen import providers
from imagegen.breaker import BreakerStateName, BreakerStatus, BreakerUnavailable
from imagegen.clock import utcnow
from imagegen.errors import ImagegenError
from imagegen.keys.types import KeySource, ResolvedKey

# Types only: importing imagegen.chain would load the whole chain (and httpx) into the API at cold start.
if TYPE_CHECKING:
    from imagegen.catalogs import RouteMapStore
    from imagegen.chain.latency import LatencyBook, LatencySummary
    from imagegen.keys.resolver import KeyResolver
    from imagegen.providers.settings import ProvidersSettings


class _View(BaseModel):
    # Built on the first GET /v1/providers answer, not at the API's cold start: no other route shows these.
    model_config = ConfigDict(defer_build=True)


class BreakerState(_View):
    state: BreakerStateName = "closed"
    # Calls are refused until then (open: the cool-down; half_open: a trial call is out); after it, one trial call.
    # half_open without it: the cool-down is over and the next call is the trial.
    open_until: datetime | None = None

    @classmethod
    def of(cls, status: BreakerStatus) -> BreakerState:
        until = datetime.fromtimestamp(status.until, UTC) if status.until is not None else None
        return cls(state=status.state, open_until=until)


class Breakers(Protocol):
    """The chain's own breakers (imagegen.breaker.Breakers): one writer, one format, one reading."""

    def status(self, name: str, scope: str, now: float) -> BreakerStatus: ...


class LatencyView(_View):
    """Observed latencies of successful calls over the last half hour or so (recent ones weigh more)."""

    p50_ms: int
    p95_ms: int
    samples: int

    @classmethod
    def of(cls, summary: LatencySummary | None) -> LatencyView | None:
        if summary is None:
            return None
        return cls(p50_ms=round(summary.p50_s * 1000), p95_ms=round(summary.p95_s * 1000), samples=int(summary.samples))


class HealthView(_View):
    status: str
    # Shown for the caller's own keys only: a deployment key's balance or account is not every caller's business.
    detail: str | None = None
    checked_at: datetime


class RouteLink(_View):
    """One route a routing provider (Hugging Face's router) would try for one of its configured models."""

    model: str
    # None: no route for the model (reason says why).
    route: str | None
    # The model's id on that route, as the provider's catalog names it.
    provider_model: str | None
    breaker: BreakerState
    reason: str
    latency: LatencyView | None = None


class ProviderLink(_View):
    provider: str
    key_source: KeySource | None
    health: HealthView | None
    breaker: BreakerState
    would_try: bool
    reason: str
    # p50/p95 of this provider's successful calls (every configured model); null until enough are known.
    latency: LatencyView | None = None
    # Where the key check lists models (SiliconFlow): what the last listing named, and those said gone since; the
    # chain tries the configured ones among them. None: no listing yet (every configured model is tried).
    live_models: list[str] | None = None
    gone_models: list[str] = []
    # A routing provider's routes for its configured models, in the order they would be tried.
    routes: list[RouteLink] | None = None


class ChainView(_View):
    items: list[ProviderLink]
    # The video chain (VIDEO_PROVIDERS) as this caller would get it: the same keys, health and breakers as images.
    video: list[ProviderLink] = []
    # Set when nothing would be tried: which keys to set.
    hint: str | None = None


def _health_view(resolved: ResolvedKey) -> HealthView | None:
    if resolved.health is None:
        return None
    detail = resolved.health.detail if resolved.source == "user" else None
    return HealthView(status=resolved.health.status, detail=detail, checked_at=resolved.health.checked_at)


def _key_hint(provider: str) -> str:
    return f"PUT /v1/keys/{provider}, or the deployment sets {providers.DEPLOYMENT_KEY_NAMES[provider]}"


# What a provider's image link shows that says nothing about its videos.
_IMAGE_ONLY: dict[str, object] = {"latency": None, "live_models": None, "gone_models": [], "routes": None}


class ChainStatus:
    def __init__(
        self,
        resolver: Callable[[], KeyResolver],
        breakers: Breakers,
        order: list[str],
        *,
        video_order: Sequence[str] = (),
        routes: RouteView | None = None,
        latency: LatencyBook | None = None,
        settings: ProvidersSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._resolver = resolver
        self._breakers = breakers
        self._order = order
        self._video_order = video_order
        self._routes = routes
        self._latency = latency
        self._settings = settings
        self._clock = clock

    def describe(self, user_id: str) -> ChainView:
        resolver, now = self._resolver(), self._clock()
        links: dict[str, ProviderLink] = {}
        resolved: dict[str, ResolvedKey | None] = {}
        for provider in dict.fromkeys([*self._order, *self._video_order]):
            # One key resolution per provider (it reads the caller's key and the keys' health), for both chains.
            resolved[provider] = None if providers.REGISTRY[provider].offline else resolver.describe(user_id, provider)
            links[provider] = self._link(provider, resolved[provider], now)
        items = [self._with_models(links[provider], resolved[provider]) for provider in self._order]
        # Video links show what images' do not tell apart: no image latencies, model listings or routes.
        video = [links[provider].model_copy(update=_IMAGE_ONLY) for provider in self._video_order]
        hint = None if any(item.would_try for item in items) else self._hint(items)
        return ChainView(items=items, video=video, hint=hint)

    def _with_models(self, link: ProviderLink, resolved: ResolvedKey | None) -> ProviderLink:
        if self._routes is None or resolved is None or resolved.source is None:
            return link
        # The breakers shown are those that govern this caller's calls: its own key's, or the deployment key's.
        routes = self._routes.routes(link.provider, resolved.breaker_scope)
        return link.model_copy(update={"routes": routes}) if routes is not None else link

    def _link(self, provider: str, resolved: ResolvedKey | None, now: datetime) -> ProviderLink:
        if resolved is None:
            return ProviderLink(
                provider=provider,
                key_source="keyless",
                health=None,
                breaker=BreakerState(),
                would_try=True,
                reason=f"offline {provider} image (needs no key)",
            )
        breaker = self._breaker(provider, resolved.breaker_scope, now) if resolved.source else BreakerState()
        health = resolved.health
        link = ProviderLink(
            provider=provider,
            key_source=resolved.source,
            health=_health_view(resolved),
            breaker=breaker,
            would_try=False,
            reason="",
            latency=self._provider_latency(provider),
            live_models=list(health.models) if health is not None and health.models is not None else None,
            gone_models=list(health.gone) if health is not None else [],
        )
        if resolved.source is None:
            return link.model_copy(update={"reason": f"no key: {_key_hint(provider)}"})
        skip = resolved.skip_reason
        if skip is not None:
            status = resolved.health.status if resolved.health else "unusable"
            reason = skip if resolved.source == "user" else f"deployment key {status}"
            return link.model_copy(update={"reason": reason})
        if breaker.state != "closed" and breaker.open_until is not None:
            until = f" until {breaker.open_until.isoformat()}" if breaker.open_until else ""
            what = "open" if breaker.state == "open" else "half-open, a trial call is out"
            return link.model_copy(update={"reason": f"circuit breaker {what}{until}"})
        return link.model_copy(update={"would_try": True, "reason": self._ready_reason(resolved, breaker)})

    def _breaker(self, provider: str, scope: str, now: datetime) -> BreakerState:
        try:
            return BreakerState.of(self._breakers.status(provider, scope, now.timestamp()))
        except BreakerUnavailable:
            # As the chain does: a breaker that cannot be read is taken as closed.
            return BreakerState()

    def _provider_latency(self, provider: str) -> LatencyView | None:
        if self._latency is None or self._settings is None or providers.REGISTRY[provider].routing is not None:
            return None  # a routing provider's latencies are per route (its `routes`)
        models = self._settings.image_provider(provider).models or (None,)
        return LatencyView.of(self._latency.summary([(provider, model) for model in models]))

    @staticmethod
    def _ready_reason(resolved: ResolvedKey, breaker: BreakerState) -> str:
        if resolved.source == "keyless":
            text = "no key needed (anonymous / keyless access)"
        elif resolved.health is None:
            text = f"{resolved.source} key, not checked yet"
        elif resolved.health.status == "unreachable":
            text = f"{resolved.source} key, last check could not reach the provider (tried anyway)"
        else:
            text = f"{resolved.source} key, last check ok"
        if breaker.state != "closed":
            text += "; circuit breaker half-open: the next call is a trial"
        return text

    @staticmethod
    def _hint(items: list[ProviderLink]) -> str:
        keys = [
            item.provider
            for item in items
            if item.provider in providers.KEY_PROVIDERS and not item.reason.startswith("circuit breaker")
        ]
        if not keys:
            return "every provider is cooling down after errors; try again later"
        wanted = ", ".join(f"{p} ({providers.DEPLOYMENT_KEY_NAMES[p]})" for p in keys)
        return (
            f"no provider can be tried: store a working key with PUT /v1/keys/{{provider}}, or have the operator "
            f"set it in the provider keys secret, for any of: {wanted}"
        )


class RouteView:
    """A routing provider's routes for its configured models, from the stored catalogs only: the API never calls the
    catalog's host (the worker and the schedule do), so a model not read yet says so."""

    def __init__(
        self,
        settings: ProvidersSettings,
        store: RouteMapStore,
        breakers: Breakers,
        registry: Mapping[str, Any],
        *,
        latency: LatencyBook | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._store = store
        self._breakers = breakers
        self._registry = registry
        self._latency = latency
        self._clock = clock

    def routes(self, provider: str, scope: str) -> list[RouteLink] | None:
        routing = self._registry[provider].routing
        if routing is None:
            return None
        settings = self._settings.image_provider(provider)
        return [link for model in settings.models for link in self._model(provider, model, scope, routing, settings)]

    def _model(self, provider: str, model: str, scope: str, routing: Any, settings: Any) -> list[RouteLink]:
        try:
            stored = self._store.get(provider, model)
        except ImagegenError:
            return [self._none(model, "the stored mapping could not be read right now")]
        if stored is None:
            return [self._none(model, "the mapping has not been read yet: the first job (or the schedule) reads it")]
        offered = routing.routes(model, stored.entries, settings)
        if not offered.routes:
            return [self._none(model, offered.reason)]
        read = datetime.fromtimestamp(stored.fetched_at, UTC).isoformat(timespec="seconds")
        return [
            RouteLink(
                model=model,
                route=route.name,
                provider_model=route.provider_model,
                breaker=self._breaker(f"{provider}/{route.name}", scope),
                reason=f"live in the mapping read at {read}",
                latency=self._route_latency(f"{provider}/{route.name}", model),
            )
            for route in offered.routes
        ]

    def _breaker(self, name: str, scope: str) -> BreakerState:
        try:
            return BreakerState.of(self._breakers.status(name, scope, self._clock().timestamp()))
        except BreakerUnavailable:
            return BreakerState()

    def _route_latency(self, name: str, model: str) -> LatencyView | None:
        return LatencyView.of(self._latency.summary([(name, model)])) if self._latency is not None else None

    @staticmethod
    def _none(model: str, reason: str) -> RouteLink:
        return RouteLink(model=model, route=None, provider_model=None, breaker=BreakerState(), reason=reason)
