"""The provider chain: order links, skip unusable ones, call, classify, retry or fall through, hedge, validate."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from imagegen.breaker import Breakers, BreakerStore, InMemoryBreakerStore
from imagegen.catalogs import InMemoryRouteMapStore, RouteMaps
from imagegen.chain import report
from imagegen.chain.attempt import LinkResult, LinkRunner
from imagegen.chain.gates import HANG_CLASSES
from imagegen.chain.hedging import Hedge
from imagegen.chain.latency import LatencyBook, LatencyStore
from imagegen.chain.limits import RateLimits, RateStore
from imagegen.chain.links import Link, Run, Skip, demote, link_is_async, links_for, new_run
from imagegen.chain.memory import HedgeBudget, Suspects
from imagegen.chain.pending import AsyncLinks
from imagegen.chain.ports import (
    ChainDeps,
    ChainMetrics,
    KeyPort,
    MetricsSink,
    ResultFetcher,
    RouteCatalog,
    VideoResults,
)
from imagegen.chain.shared import breaker_policy, latency_policy
from imagegen.chain.state import BadChainState, PendingState
from imagegen.errors import ImagegenError
from imagegen.generation import ChainOutcome, ChainSucceeded, ChainWaiting, RunContext
from imagegen.keys.types import HealthStatus, ResolvedKey
from imagegen.models import ImageRequest
from imagegen.providers import REGISTRY
from imagegen.providers.base import ProviderError, Refused

if TYPE_CHECKING:
    import httpx

    from imagegen.providers.settings import ProvidersSettings
    from imagegen.providers.spec import ProviderSpec

logger = logging.getLogger(__name__)

# What a provider's refusal of a key says about the whole key, for the key-health record (see KeyPort.report). A
# refusal for credit is not here: it may be about one expensive request (KeyPort.payment_refused counts it instead).
KEY_VERDICTS: dict[str, HealthStatus] = {"unauthorized": "invalid"}
PAYMENT_REFUSED = "payment_required"
# A route that answers these does not serve the model (any more): the catalog that named it is read again.
ROUTE_GONE = frozenset({"model_unavailable", "expired"})


class Chain:
    """Implements generation.Generator over the provider registry."""

    def __init__(
        self,
        settings: ProvidersSettings,
        http: httpx.Client,
        fetcher: ResultFetcher,
        *,
        keys: KeyPort,
        breaker: BreakerStore | None = None,
        rates: RateStore | None = None,
        latencies: LatencyStore | None = None,
        metrics: MetricsSink | None = None,
        catalog: RouteCatalog | None = None,
        registry: Mapping[str, ProviderSpec[Any]] = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        videos: VideoResults | None = None,
    ) -> None:
        chain = settings.chain
        self.deps = ChainDeps(
            settings=settings,
            registry=registry,
            http=http,
            fetcher=fetcher,
            keys=keys,
            # Per-container views of the shared items (in memory without a table: unit tests, tools).
            breakers=Breakers(breaker or InMemoryBreakerStore(), breaker_policy(settings), monotonic=clock),
            limits=RateLimits(rates, cache_s=chain.shared_cache_s, wall_clock=wall_clock, monotonic=clock),
            latency=LatencyBook(latencies, latency_policy(settings), wall_clock=wall_clock, monotonic=clock),
            suspects=Suspects(chain.suspect_s, monotonic=clock),
            hedge_budget=HedgeBudget(chain.hedge_budget, monotonic=clock),
            metrics=ChainMetrics(metrics),
            # Without a table (unit tests, tools): catalogs fetched with the deployment's keys, kept in memory.
            catalog=catalog
            or RouteMaps(
                InMemoryRouteMapStore(),
                settings,
                http,
                registry=registry,
                token=lambda name: settings.for_provider(name).api_key,
                wall_clock=wall_clock,
                monotonic=clock,
            ),
            clock=clock,
            wall_clock=wall_clock,
            sleep=sleep,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not security
            videos=videos,
        )
        self.runner = LinkRunner(self.deps)
        self.async_links = AsyncLinks(self.deps, self.runner)
        self.hedge = Hedge(self.deps, self.runner, self._absorb, self._failed, self.expand)

    @property
    def settings(self) -> ProvidersSettings:
        return self.deps.settings

    # --- Generator protocol -----------------------------------------------------------------------------------

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        run = self._new_run(request, ctx, self.links_for(request))
        if all(isinstance(key, Skip) for key in run.keys.values()):
            return report.no_providers(run, self.deps.registry)
        return self._run_from(run, 0)

    def resume(self, request: ImageRequest, chain_state: Mapping[str, Any], ctx: RunContext) -> ChainOutcome:
        try:
            state = PendingState.load(chain_state, self.deps.registry)
        except BadChainState as exc:
            return report.bad_state(str(exc))
        run = self._new_run(request, ctx, list(state.links))
        still = state.pending_attempt
        run.attempts = [a for a in state.attempts if a is not still]
        run.warnings = list(state.warnings)
        result = self.async_links.check(run, state)
        if result.pending is None:
            outcome = self._absorb(run, state.link_index, result)
            return outcome if outcome is not None else self._run_from(run, state.link_index + 1)
        if still is not None:
            delay = self.runner.delay(result.pending.wait_time, self.deps.registry[state.provider], state.checks + 1)
            message = f"still queued after {state.checks + 1} check(s); checking again in {delay} s"
            result.attempts = [still.model_copy(update={"message": message})]
        return self.async_links.park(run, state.link_index, result, state)

    def cancel(self, chain_state: Mapping[str, Any]) -> None:
        try:
            state = PendingState.load(chain_state, self.deps.registry)
        except BadChainState as exc:
            logger.warning("no remote cancel: the stored chain state is unusable (%s)", exc)
            return
        self.async_links.cancel(state)

    # --- links and the loop -----------------------------------------------------------------------------------

    def links_for(self, request: ImageRequest) -> list[Link]:
        return links_for(request, self.deps.settings, self.deps.registry)

    def _new_run(self, request: ImageRequest, ctx: RunContext, links: list[Link]) -> Run:
        run = new_run(request, ctx, links, self.deps.keys, self.deps.settings, self.deps.registry)
        # Providers that just hung in this container go last, not first.
        demote(run.links, 0, self.deps.suspects.current())
        return run

    def _hedging(self, request: ImageRequest) -> bool:
        return request.hedge if request.hedge is not None else self.deps.settings.chain.hedge

    def _run_from(self, run: Run, start: int) -> ChainOutcome:
        index = start
        while index < len(run.links):
            self.expand(run, index)
            link = run.links[index]
            if self._hedging(run.request) and not link_is_async(self.deps.registry[link.provider], link):
                outcome, index = self.hedge.run(run, index)
                if outcome is not None:
                    return outcome
                continue
            run.cursor = index + 1
            result = self.runner.try_link(run, index, None)
            if result.pending is not None:
                return self.async_links.park(run, index, result, None)
            outcome = self._absorb(run, index, result)
            if outcome is not None:
                return outcome
            index += 1
        return self._end(run)

    def _end(self, run: Run) -> ChainOutcome:
        """Nothing served: wait for the first link that is only "not yet", if the job's deadline allows; else fail."""
        latest = run.ctx.latest_start
        if not run.not_yet:
            return report.all_failed(run)
        reason, until = min(run.not_yet, key=lambda item: item[1])
        if latest is None or until > latest:
            return report.all_failed(run, waited_past=until if latest is not None else None)
        return ChainWaiting(reason=reason, until=until, attempts=run.attempts, warnings=run.warnings)

    def _absorb(self, run: Run, index: int, result: LinkResult) -> ChainOutcome | None:
        """Fold one link's result into the run; a final outcome when the chain must stop here."""
        link = run.links[index]
        run.attempts.extend(report.scrub_attempt(run, a) for a in result.attempts)
        run.warnings.extend(report.scrub(run, w) for w in result.warnings)
        if result.not_yet is not None:
            run.not_yet.append(result.not_yet)
        if result.image is not None:
            return ChainSucceeded(image=result.image, attempts=run.attempts, warnings=run.warnings)
        error = result.error
        if error is None:
            return None
        if isinstance(error, Refused) and run.request.on_refusal != "fallback":
            return report.content_refused(run, link, error)
        self._failed(run, index, error)
        if result.started:
            self.deps.metrics.fallback(link.provider)
        return None

    # --- what a failed link teaches the run (and later runs) ------------------------------------------------------

    def _failed(self, run: Run, index: int, error: ProviderError) -> None:
        """Rule out what the failure rules out; said hints, refreshed catalogs and gone models happen once per run."""
        link = run.links[index]
        if error.hint and error.hint not in run.hints:
            run.hints.append(error.hint)
            run.warnings.append(error.hint)
        if error.error_class in HANG_CLASSES:
            # A provider that hangs hangs for its other models too: they go after the other providers' links.
            demote(run.links, run.cursor, {link.breaker_name})
        if error.scope == "provider":
            self._provider_failed(run, link.provider, error)
        elif error.scope == "route" and link.route is not None:
            run.failed_routes.setdefault((link.provider, link.route.name), error)
        if link.model is None or (link.provider, link.model) in run.reported:
            return
        if link.route is not None and error.error_class in ROUTE_GONE:
            run.reported.add((link.provider, link.model))
            self.deps.catalog.refresh(link.provider, link.model)
        elif error.error_class == "model_gone":
            run.reported.add((link.provider, link.model))
            self._model_gone(run, link.provider, link.model)

    def _model_gone(self, run: Run, provider: str, model: str) -> None:
        key = run.keys.get(provider)
        if not isinstance(key, ResolvedKey) or key.source in (None, "keyless"):
            return
        try:
            self.deps.keys.model_gone(run.ctx.user_id, provider, str(key.source), model)
        except ImagegenError as exc:
            # A lost mark only means the next run asks for the model once more.
            logger.warning("could not mark a model gone", extra={"provider": provider, "error": exc.code})

    def expand(self, run: Run, index: int) -> None:
        """A routing provider's link becomes one link per route of its model (or one skip) when the run reaches it:
        a provider that is not tried (no key, refused) costs no catalog read."""
        link = run.links[index]
        routing = self.deps.registry[link.provider].routing
        if routing is None or link.route is not None or link.skip is not None or link.model is None:
            return
        if isinstance(run.keys.get(link.provider), Skip) or link.provider in run.failed_providers:
            return
        entries = self.deps.catalog.entries(link.provider, link.model)
        offered = routing.routes(link.model, entries, self.deps.settings.for_provider(link.provider))
        if not offered.routes:
            message = f"no route for {link.model}: {offered.reason}"
            run.links[index] = replace(link, skip=Skip("model_not_listed", message))
            return
        routed = [replace(link, route=route, note=offered.note) for route in offered.routes]
        demote(routed, 0, self.deps.suspects.current())
        run.links[index : index + 1] = routed

    def _provider_failed(self, run: Run, provider: str, error: ProviderError) -> None:
        """No other model of this provider can do better; a key the provider refused is reported once."""
        first = provider not in run.failed_providers
        run.failed_providers[provider] = error
        verdict = KEY_VERDICTS.get(error.error_class)
        key = run.keys.get(provider)
        if not first or isinstance(key, Skip) or key is None or key.source in (None, "keyless"):
            return
        detail = f"{provider} answered {error.status_code}"
        try:
            if verdict is not None:
                self.deps.keys.report(run.ctx.user_id, provider, key.source, verdict, detail)
            elif error.error_class == PAYMENT_REFUSED:
                self.deps.keys.payment_refused(run.ctx.user_id, provider, key.source, run.ctx.job_id, detail)
        except ImagegenError as exc:
            # Recording the verdict is a courtesy to later runs; this run has already moved on.
            logger.warning("could not record key health", extra={"provider": provider, "error": exc.code})
