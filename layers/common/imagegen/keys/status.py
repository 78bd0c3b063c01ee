"""The chain as one caller would get it: per provider its key source, health, breaker state and whether it is tried."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from imagegen import providers
from imagegen.breaker import BreakerStateName, BreakerStatus, BreakerUnavailable
from imagegen.clock import utcnow
from imagegen.errors import ImagegenError
from imagegen.keys.types import KeySource, ResolvedKey

if TYPE_CHECKING:
    from imagegen.catalogs import RouteMapStore
    from imagegen.keys.resolver import KeyResolver
    from imagegen.providers.settings import ProvidersSettings


class _View(BaseModel):
    # Built on the first GET /v1/providers answer, not at the API's cold start: no other route shows these.
    model_config = ConfigDict(defer_build=True)


class BreakerState(_View):
    state: BreakerStateName = "closed"
    # Calls are refused until then (open: the cool-down; half_open: a trial call is out); after it, one trial call.
    open_until: datetime | None = None

    @classmethod
    def of(cls, status: BreakerStatus) -> BreakerState:
        until = datetime.fromtimestamp(status.until, UTC) if status.until is not None else None
        return cls(state=status.state, open_until=until)


class Breakers(Protocol):
    """The chain's own breaker store (imagegen.breaker.BreakerStore): one writer, one format, one reader."""

    def status(self, provider: str, key_source: str) -> BreakerStatus: ...


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


class ProviderLink(_View):
    provider: str
    key_source: KeySource | None
    health: HealthView | None
    breaker: BreakerState
    would_try: bool
    reason: str
    # Where the key check lists models (SiliconFlow): what the last listing named, and those said gone since; the
    # chain tries the configured ones among them. None: no listing yet (every configured model is tried).
    live_models: list[str] | None = None
    gone_models: list[str] = []
    # A routing provider's routes for its configured models, in the order they would be tried.
    routes: list[RouteLink] | None = None


class ChainView(_View):
    items: list[ProviderLink]
    # Set when nothing would be tried: which keys to set.
    hint: str | None = None


def _health_view(resolved: ResolvedKey) -> HealthView | None:
    if resolved.health is None:
        return None
    detail = resolved.health.detail if resolved.source == "user" else None
    return HealthView(status=resolved.health.status, detail=detail, checked_at=resolved.health.checked_at)


def _key_hint(provider: str) -> str:
    return f"PUT /v1/keys/{provider}, or the deployment sets {providers.DEPLOYMENT_KEY_NAMES[provider]}"


class ChainStatus:
    def __init__(
        self,
        resolver: Callable[[], KeyResolver],
        breakers: Breakers,
        order: list[str],
        *,
        routes: RouteView | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._resolver = resolver
        self._breakers = breakers
        self._order = order
        self._routes = routes
        self._clock = clock

    def describe(self, user_id: str) -> ChainView:
        resolver, now = self._resolver(), self._clock()
        items = [self._with_models(self._link(user_id, provider, resolver, now)) for provider in self._order]
        return ChainView(items=items, hint=None if any(item.would_try for item in items) else self._hint(items))

    def _with_models(self, link: ProviderLink) -> ProviderLink:
        if self._routes is None or link.key_source is None:
            return link
        routes = self._routes.routes(link.provider, link.key_source)
        return link.model_copy(update={"routes": routes}) if routes is not None else link

    def _link(self, user_id: str, provider: str, resolver: KeyResolver, now: datetime) -> ProviderLink:
        if providers.REGISTRY[provider].offline:
            return ProviderLink(
                provider=provider,
                key_source="keyless",
                health=None,
                breaker=BreakerState(),
                would_try=True,
                reason=f"offline {provider} image (needs no key)",
            )
        resolved = resolver.describe(user_id, provider)
        breaker = self._breaker(provider, resolved.source) if resolved.source else BreakerState()
        health = resolved.health
        link = ProviderLink(
            provider=provider,
            key_source=resolved.source,
            health=_health_view(resolved),
            breaker=breaker,
            would_try=False,
            reason="",
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
        refusing = breaker.open_until > now if breaker.open_until else breaker.state == "open"
        if breaker.state != "closed" and refusing:
            until = f" until {breaker.open_until.isoformat()}" if breaker.open_until else ""
            what = "open" if breaker.state == "open" else "half-open, a trial call is out"
            return link.model_copy(update={"reason": f"circuit breaker {what}{until}"})
        return link.model_copy(update={"would_try": True, "reason": self._ready_reason(resolved, breaker)})

    def _breaker(self, provider: str, key_source: str) -> BreakerState:
        try:
            return BreakerState.of(self._breakers.status(provider, key_source))
        except BreakerUnavailable:
            # As the chain does: a breaker that cannot be read is taken as closed.
            return BreakerState()

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
            text += f"; circuit breaker {breaker.state.replace('_', '-')}: the next call is a trial"
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
        self, settings: ProvidersSettings, store: RouteMapStore, breakers: Breakers, registry: Mapping[str, Any]
    ) -> None:
        self._settings = settings
        self._store = store
        self._breakers = breakers
        self._registry = registry

    def routes(self, provider: str, key_source: str) -> list[RouteLink] | None:
        routing = self._registry[provider].routing
        if routing is None:
            return None
        settings = self._settings.image_provider(provider)
        return [
            link for model in settings.models for link in self._model(provider, model, key_source, routing, settings)
        ]

    def _model(self, provider: str, model: str, key_source: str, routing: Any, settings: Any) -> list[RouteLink]:
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
                breaker=self._breaker(f"{provider}/{route.name}", key_source),
                reason=f"live in the mapping read at {read}",
            )
            for route in offered.routes
        ]

    def _breaker(self, name: str, key_source: str) -> BreakerState:
        try:
            return BreakerState.of(self._breakers.status(name, key_source))
        except BreakerUnavailable:
            return BreakerState()

    @staticmethod
    def _none(model: str, reason: str) -> RouteLink:
        return RouteLink(model=model, route=None, provider_model=None, breaker=BreakerState(), reason=reason)
