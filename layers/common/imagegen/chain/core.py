"""The provider chain: order links, skip unusable ones, call, classify, retry or fall through, hedge, validate."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from imagegen.breaker import BreakerPolicy, BreakerStore, InMemoryBreakerStore
from imagegen.chain import report
from imagegen.chain.attempt import LinkResult, LinkRunner
from imagegen.chain.hedging import Hedge
from imagegen.chain.links import Link, Run, Skip, links_for, new_run
from imagegen.chain.pending import AsyncLinks
from imagegen.chain.ports import ChainDeps, ChainMetrics, KeyPort, MetricsSink, ResultFetcher
from imagegen.chain.state import BadChainState, PendingState
from imagegen.errors import ImagegenError
from imagegen.generation import ChainOutcome, ChainSucceeded, RunContext
from imagegen.keys.types import HealthStatus
from imagegen.models import ImageRequest
from imagegen.providers import REGISTRY
from imagegen.providers.base import ProviderError, Refused

if TYPE_CHECKING:
    import httpx

    from imagegen.providers.settings import ProvidersSettings
    from imagegen.providers.spec import ProviderSpec

logger = logging.getLogger(__name__)

# What a provider's refusal of a key says about it, for the key-health record (see KeyPort.report).
KEY_VERDICTS: dict[str, HealthStatus] = {"unauthorized": "invalid", "payment_required": "out_of_credit"}


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
        metrics: MetricsSink | None = None,
        registry: Mapping[str, ProviderSpec[Any]] = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        chain = settings.chain
        policy = BreakerPolicy(threshold=chain.breaker_threshold, cooldown_s=chain.breaker_cooldown_s)
        self.deps = ChainDeps(
            settings=settings,
            registry=registry,
            http=http,
            fetcher=fetcher,
            keys=keys,
            breaker=breaker or InMemoryBreakerStore(policy),
            metrics=ChainMetrics(metrics),
            clock=clock,
            wall_clock=wall_clock,
            sleep=sleep,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not security
        )
        self.runner = LinkRunner(self.deps)
        self.async_links = AsyncLinks(self.deps, self.runner)
        self.hedge = Hedge(self.deps, self.runner, self._absorb, self._provider_failed)

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
        return new_run(request, ctx, links, self.deps.keys, self.deps.settings, self.deps.registry)

    def _hedging(self, request: ImageRequest) -> bool:
        return request.hedge if request.hedge is not None else self.deps.settings.chain.hedge

    def _run_from(self, run: Run, start: int) -> ChainOutcome:
        index = start
        while index < len(run.links):
            if self._hedging(run.request) and not self.deps.registry[run.links[index].provider].is_async:
                outcome, index = self.hedge.run(run, index)
                if outcome is not None:
                    return outcome
                continue
            result = self.runner.try_link(run, index, None)
            if result.pending is not None:
                return self.async_links.park(run, index, result, None)
            outcome = self._absorb(run, index, result)
            if outcome is not None:
                return outcome
            index += 1
        return report.all_failed(run)

    def _absorb(self, run: Run, index: int, result: LinkResult) -> ChainOutcome | None:
        """Fold one link's result into the run; a final outcome when the chain must stop here."""
        link = run.links[index]
        run.attempts.extend(report.scrub_attempt(run, a) for a in result.attempts)
        run.warnings.extend(report.scrub(run, w) for w in result.warnings)
        if result.image is not None:
            return ChainSucceeded(image=result.image, attempts=run.attempts, warnings=run.warnings)
        error = result.error
        if error is None:
            return None
        if isinstance(error, Refused) and run.request.on_refusal != "fallback":
            return report.content_refused(run, link, error)
        if error.scope == "provider":
            self._provider_failed(run, link.provider, error)
        if result.started:
            self.deps.metrics.fallback(link.provider)
        return None

    def _provider_failed(self, run: Run, provider: str, error: ProviderError) -> None:
        """No other model of this provider can do better; a key the provider refused is reported once."""
        first = provider not in run.failed_providers
        run.failed_providers[provider] = error
        verdict = KEY_VERDICTS.get(error.error_class)
        key = run.keys.get(provider)
        if not first or verdict is None or isinstance(key, Skip) or key is None or key.source in (None, "keyless"):
            return
        detail = f"{provider} answered {error.status_code}"
        try:
            self.deps.keys.report(run.ctx.user_id, provider, key.source, verdict, detail)
        except ImagegenError as exc:
            # Recording the verdict is a courtesy to later runs; this run has already moved on.
            logger.warning("could not record key health", extra={"provider": provider, "error": exc.code})
