"""The provider chain: order links, skip unusable ones, call, classify, retry or fall through, hedge, validate."""

from __future__ import annotations

import base64
import binascii
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from pydantic import SecretStr, ValidationError

from imagegen.breaker import BreakerDecision, BreakerPolicy, BreakerStore, BreakerUnavailable, InMemoryBreakerStore
from imagegen.errors import ImagegenError
from imagegen.generation import ChainFailed, ChainOutcome, ChainPending, ChainSucceeded, GeneratedImage, RunContext
from imagegen.imaging import InvalidImage, validate_image
from imagegen.models import Attempt, ErrorInfo, ImageRequest
from imagegen.providers import REGISTRY
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    FallThrough,
    ImageBase64,
    ImageBytes,
    Provider,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    Refused,
    ResultUrl,
    RetrySameLink,
)
from imagegen.providers.config import HordeSettings, HuggingFaceSettings, ProviderSettings, ProvidersSettings

logger = logging.getLogger(__name__)

SQS_MAX_DELAY_S = 900
STATE_VERSION = 1
KEY_ENV = {
    "siliconflow": "SILICONFLOW_API_KEY",
    "huggingface": "HF_TOKEN",
    "horde": "HORDE_API_KEY",
    "pollinations": "POLLINATIONS_API_KEY",
}
# What a provider's refusal of a key says about it, for the key-health record (see KeyHealth.report).
KEY_VERDICTS = {"unauthorized": "invalid", "payment_required": "out_of_credit"}
# Transient failures of a Horde check/collect: check again later rather than abandon a queued job.
RECHECK_CLASSES = frozenset({"rate_limited", "server_error", "overloaded", "timeout", "connection"})

# ---------------------------------------------------------------------------------------------------
# Ports the chain depends on.


class FetchedLike(Protocol):
    @property
    def content_type(self) -> str | None: ...

    @property
    def data(self) -> bytes: ...


class ResultFetcher(Protocol):
    """Downloads a signed result URL exactly as given, with no Authorization header (imagegen.fetch.SafeFetcher)."""

    def fetch_bytes(self, url: str) -> FetchedLike: ...


KeySource = Literal["user", "deployment", "keyless"]


@dataclass(frozen=True)
class ResolvedKey:
    source: KeySource
    secret: SecretStr | None = field(default=None, repr=False)


class KeyResolver(Protocol):
    def resolve(self, provider: str, user_id: str) -> ResolvedKey | None:
        """User key, else deployment key, else keyless where the provider allows it; None: no usable key."""
        ...


class KeyHealth(Protocol):
    def status(self, provider: str, key_source: str, user_id: str) -> str | None:
        """The last health check's verdict: ok | invalid | out_of_credit | unreachable, or None if unknown."""
        ...

    def report(self, provider: str, key_source: str, user_id: str, status: str, detail: str) -> None:
        """What a real call learned about the key (a 401: invalid; a 402: out_of_credit), so later runs skip it."""
        ...


class MetricsSink(Protocol):
    """What the chain needs of aws_lambda_powertools.Metrics (the handler owns and flushes it)."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class DeploymentKeyResolver:
    """Deployment keys from settings; keyless where the provider works without one. User keys come later."""

    def __init__(self, settings: ProvidersSettings) -> None:
        self.settings = settings

    def resolve(self, provider: str, user_id: str) -> ResolvedKey | None:
        if provider == "placeholder":
            return ResolvedKey("keyless")
        key = self.settings.for_provider(provider).api_key
        if provider == "horde":
            horde = self.settings.horde
            return ResolvedKey("keyless") if horde.anonymous else ResolvedKey("deployment", key)
        if key is not None:
            return ResolvedKey("deployment", key)
        return ResolvedKey("keyless") if provider == "pollinations" else None


# ---------------------------------------------------------------------------------------------------
# Internal bookkeeping.


@dataclass(frozen=True)
class Link:
    provider: str
    model: str | None
    # The request named a model this provider does not serve; recorded as a dropped param.
    model_dropped: bool = False


@dataclass
class _Pending:
    remote_id: str
    wait_time: float
    key_source: str


@dataclass
class _LinkResult:
    attempts: list[Attempt]
    image: GeneratedImage | None = None
    pending: _Pending | None = None
    error: ProviderError | None = None
    warnings: list[str] = field(default_factory=list)
    started: bool = False


@dataclass
class _Run:
    request: ImageRequest
    ctx: RunContext
    links: list[Link]
    keys: dict[str, ResolvedKey | tuple[str, str]]
    attempts: list[Attempt] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed_providers: dict[str, ProviderError] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


class _Metrics:
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


# ---------------------------------------------------------------------------------------------------


class Chain:
    """Implements generation.Generator over the provider registry."""

    def __init__(
        self,
        settings: ProvidersSettings,
        http: httpx.Client,
        fetcher: ResultFetcher,
        *,
        key_resolver: KeyResolver | None = None,
        key_health: KeyHealth | None = None,
        breaker: BreakerStore | None = None,
        metrics: MetricsSink | None = None,
        registry: Mapping[str, Provider] = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.fetcher = fetcher
        self.keys = key_resolver or DeploymentKeyResolver(settings)
        self.health = key_health
        chain = settings.chain
        self.breaker: BreakerStore = breaker or InMemoryBreakerStore(
            BreakerPolicy(threshold=chain.breaker_threshold, cooldown_s=chain.breaker_cooldown_s)
        )
        self.metrics = _Metrics(metrics)
        self.registry = registry
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security

    # --- Generator protocol -------------------------------------------------------------------------

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        run = self._new_run(request, ctx, self.links_for(request))
        if not any(isinstance(key, ResolvedKey) for key in run.keys.values()):
            return self._no_providers(run)
        return self._run_from(run, 0)

    def resume(self, request: ImageRequest, state: dict[str, Any], ctx: RunContext) -> ChainOutcome:
        try:
            links = [Link(str(p), m if m is None else str(m), bool(d)) for p, m, d in state["links"]]
            attempts = [Attempt.model_validate(a) for a in state["attempts"]]
            index = int(state["link_index"])
            remote_id = str(state["remote_id"])
            if not 0 <= index < len(links) or any(link.provider not in self.registry for link in links):
                raise ValueError("links do not match this deployment's providers")
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            error = ErrorInfo(
                code="bad_chain_state", message=f"the stored chain state is unusable ({type(exc).__name__})"
            )
            return ChainFailed(error=error, attempts=[])
        run = self._new_run(request, ctx, links)
        run.attempts = attempts[:-1] if attempts and attempts[-1].outcome == "pending" else attempts
        run.warnings = list(state.get("warnings") or [])
        result = self._check_async(run, index, remote_id, state)
        if result.pending is not None:
            delay = self._delay(result.pending.wait_time, self.settings.for_provider(links[index].provider))
            checks = int(state.get("checks", 0)) + 1
            still = attempts[-1] if attempts and attempts[-1].outcome == "pending" else None
            if still is not None:
                message = f"still queued after {checks} check(s); checking again in {delay} s"
                result.attempts = [still.model_copy(update={"message": message})]
            return self._pending(run, index, result, state)
        return self._absorb_and_continue(run, index, result)

    def cancel(self, state: dict[str, Any]) -> None:
        remote_id, provider_name = state.get("remote_id"), state.get("provider")
        provider = self.registry.get(str(provider_name))
        if not remote_id or provider is None or provider.async_hooks is None:
            return
        key = self.keys.resolve(provider.name, str(state.get("user_id", "")))
        settings = self.settings.for_provider(provider.name).with_key(key.secret if key else None)
        request = provider.async_hooks.build_cancel(str(remote_id), settings)
        self._set_timeout(request, settings, settings.timeout_s)
        try:
            response = self.http.send(request)
        except httpx.HTTPError as exc:
            # Best effort: the remote request expires by itself; the job is already canceled on our side.
            logger.warning("remote cancel failed", extra={"provider": provider.name, "error": type(exc).__name__})
            return
        logger.info("remote cancel sent", extra={"provider": provider.name, "status_code": response.status_code})

    # --- links and keys -----------------------------------------------------------------------------

    def links_for(self, request: ImageRequest) -> list[Link]:
        order = list(request.providers or self.settings.chain.default_chain)
        links: list[Link] = []
        for name in order:
            provider = self.registry[name]
            configured = list(self.settings.for_provider(name).models)
            if name == "placeholder":
                configured = ["placeholder"]
            known = configured + [m.name for m in provider.capabilities.models if m.name != "*"]
            if request.model and request.model in known:
                models: list[str | None] = [request.model, *(m for m in configured if m != request.model)]
                dropped = False
            else:
                models = [*configured] if configured else [None]
                dropped = request.model is not None
            links.extend(Link(name, model, dropped) for model in models)
        return links

    def _new_run(self, request: ImageRequest, ctx: RunContext, links: list[Link]) -> _Run:
        keys: dict[str, ResolvedKey | tuple[str, str]] = {}
        secrets: list[str] = []
        for name in dict.fromkeys(link.provider for link in links):
            key = self.keys.resolve(name, ctx.user_id)
            if key is None:
                keys[name] = ("no_key", f"no {KEY_ENV.get(name, 'key')} configured")
                continue
            if key.secret is not None:
                secrets.append(key.secret.get_secret_value())
            verdict = self.health.status(name, key.source, ctx.user_id) if self.health else None
            if verdict in ("invalid", "out_of_credit"):
                keys[name] = (
                    f"key_{verdict}",
                    f"the {key.source} key is {verdict.replace('_', ' ')} per the last check",
                )
                continue
            keys[name] = key
        for name in KEY_ENV:
            secret = self.settings.for_provider(name).api_key
            if secret is not None:
                secrets.append(secret.get_secret_value())
        # Longest first, so a key that contains another is scrubbed whole.
        ordered = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))
        return _Run(request=request, ctx=ctx, links=links, keys=keys, secrets=ordered)

    def _no_providers(self, run: _Run) -> ChainFailed:
        for link in run.links:
            reason = run.keys[link.provider]
            assert isinstance(reason, tuple)
            run.attempts.append(self._skip(link, reason[0], reason[1]))
        needed = [KEY_ENV[n] for n in dict.fromkeys(link.provider for link in run.links) if n in KEY_ENV]
        hint = (
            f"Set {' or '.join(needed)}" if needed else "Configure a provider key"
        ) + ", or add a keyless provider (horde, pollinations) to IMAGEGEN_PROVIDERS or the request's providers."
        error = ErrorInfo(
            code="no_providers_configured",
            message="No provider in the chain has a usable key: " + "; ".join(self._describe(a) for a in run.attempts),
            hint=hint,
        )
        return ChainFailed(error=error, attempts=run.attempts)

    # --- the loop -----------------------------------------------------------------------------------

    def _hedging(self, request: ImageRequest) -> bool:
        return request.hedge if request.hedge is not None else self.settings.chain.hedge

    def _is_async(self, link: Link) -> bool:
        return self.registry[link.provider].capabilities.is_async

    def _run_from(self, run: _Run, start: int) -> ChainOutcome:
        index = start
        while index < len(run.links):
            if self._hedging(run.request) and not self._is_async(run.links[index]):
                outcome, index = self._run_hedged(run, index)
                if outcome is not None:
                    return outcome
                continue
            result = self._try_link(run, index, None)
            if result.pending is not None:
                return self._pending(run, index, result, None)
            outcome = self._absorb(run, index, result)
            if outcome is not None:
                return outcome
            index += 1
        return self._all_failed(run)

    def _absorb_and_continue(self, run: _Run, index: int, result: _LinkResult) -> ChainOutcome:
        outcome = self._absorb(run, index, result)
        return outcome if outcome is not None else self._run_from(run, index + 1)

    def _absorb(self, run: _Run, index: int, result: _LinkResult) -> ChainOutcome | None:
        """Fold one link's result into the run; a final outcome when the chain must stop here."""
        link = run.links[index]
        run.attempts.extend(self._scrub_attempt(run, a) for a in result.attempts)
        run.warnings.extend(self._scrub(run, w) for w in result.warnings)
        if result.image is not None:
            return ChainSucceeded(image=result.image, attempts=run.attempts, warnings=run.warnings)
        error = result.error
        if error is None:
            return None
        if isinstance(error, Refused) and run.request.on_refusal != "fallback":
            info = ErrorInfo(
                code="content_refused",
                message=f"{link.provider} refused the prompt: {self._scrub(run, error.message)}",
                hint='The chain stops at a content-policy refusal; on_refusal: "fallback" tries the next provider.',
                details={"attempts": [a.model_dump() for a in run.attempts]},
            )
            return ChainFailed(error=info, attempts=run.attempts)
        if error.scope == "provider":
            self._provider_failed(run, link.provider, error)
        if result.started:
            self.metrics.fallback(link.provider)
        return None

    def _run_hedged(self, run: _Run, start: int) -> tuple[ChainOutcome | None, int]:
        """Run links from `start`, starting the next one when the running one stays silent past its hedge delay."""
        results: dict[int, _LinkResult] = {}
        running: dict[Future[_LinkResult], tuple[int, float, threading.Event]] = {}
        index = start
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imagegen-hedge")

        def launch() -> None:
            nonlocal index
            event = threading.Event()
            running[executor.submit(self._try_link, run, index, event)] = (index, self.clock(), event)
            index += 1

        def can_launch() -> bool:
            return len(running) < 2 and index < len(run.links) and not self._is_async(run.links[index])

        try:
            while True:
                if not running:
                    if not can_launch():
                        break
                    launch()
                first_index, first_started, _ = min(running.values(), key=lambda v: v[1])
                hedge_at = first_started + self.settings.for_provider(run.links[first_index].provider).hedge_delay_s
                timeout = max(0.0, hedge_at - self.clock()) if can_launch() else None
                done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                if not done:
                    self.metrics.count("ProviderHedges")
                    launch()
                    continue
                for future in done:
                    finished_index, _, _ = running.pop(future)
                    finished = results[finished_index] = future.result()
                    # Record a provider-wide failure now, so links not yet started skip that provider.
                    if finished.error is not None and finished.error.scope == "provider":
                        self._provider_failed(run, run.links[finished_index].provider, finished.error)
                winner = next((i for i in sorted(results) if results[i].image is not None), None)
                if winner is not None:
                    for other_index, started, event in running.values():
                        event.set()
                        link = run.links[other_index]
                        latency = int((self.clock() - started) * 1000)
                        message = f"hedged; {run.links[winner].provider} answered first, this result is discarded"
                        results[other_index] = _LinkResult(
                            attempts=[
                                Attempt(
                                    provider=link.provider,
                                    model=link.model,
                                    outcome="canceled",
                                    error_class="hedge_lost",
                                    message=message,
                                    latency_ms=latency,
                                )
                            ]
                        )
                    running.clear()
                    for i in sorted(results):
                        outcome = self._absorb(run, i, results[i])
                        if outcome is not None:
                            return outcome, index
                    return None, index  # unreachable: the winner's absorb returns
                refusal = next((i for i in sorted(results) if isinstance(results[i].error, Refused)), None)
                if refusal is not None and run.request.on_refusal != "fallback":
                    for other_index, started, event in running.values():
                        event.set()
                        link = run.links[other_index]
                        results[other_index] = _LinkResult(
                            attempts=[
                                Attempt(
                                    provider=link.provider,
                                    model=link.model,
                                    outcome="canceled",
                                    error_class="refusal_stop",
                                    message="stopped: an earlier link refused",
                                    latency_ms=int((self.clock() - started) * 1000),
                                )
                            ]
                        )
                    running.clear()
                    for i in sorted(results):
                        outcome = self._absorb(run, i, results[i])
                        if outcome is not None:
                            return outcome, index
        finally:
            # Losers are not joined: each is bounded by its own timeout and its result is ignored.
            executor.shutdown(wait=False, cancel_futures=True)
        for i in sorted(results):
            outcome = self._absorb(run, i, results[i])
            if outcome is not None:
                return outcome, index
        return None, index

    # --- one link -----------------------------------------------------------------------------------

    def _skip(self, link: Link, reason: str, message: str) -> Attempt:
        logger.info("link skipped", extra={"provider": link.provider, "model": link.model, "reason": reason})
        return Attempt(provider=link.provider, model=link.model, outcome="skipped", error_class=reason, message=message)

    def _remaining(self, run: _Run) -> float:
        return run.ctx.deadline - self.settings.chain.deadline_margin_s - self.clock()

    def _try_link(self, run: _Run, index: int, cancel: threading.Event | None) -> _LinkResult:
        link = run.links[index]
        provider = self.registry[link.provider]
        failed = run.failed_providers.get(link.provider)
        if failed is not None:
            return _LinkResult(
                [
                    self._skip(
                        link,
                        failed.error_class,
                        f"skipped: {link.provider} already answered {failed.status_code or ''} {failed.error_class}",
                    )
                ]
            )
        key = run.keys[link.provider]
        if isinstance(key, tuple):
            return _LinkResult([self._skip(link, key[0], key[1])])
        base_settings = self.settings.for_provider(link.provider)
        if self._remaining(run) < base_settings.min_attempt_s:
            return _LinkResult([self._skip(link, "deadline", "skipped: not enough time left before the job deadline")])
        decision = self._acquire(link.provider, key.source, provider)
        if not decision.allowed:
            return _LinkResult(
                [
                    self._skip(
                        link,
                        "breaker_open",
                        f"skipped: circuit breaker {decision.state} for {link.provider} ({key.source} key)",
                    )
                ]
            )
        settings = base_settings.with_key(key.secret)
        plan = provider.plan(run.request, link.model, settings)
        dropped = [*plan.dropped_params, *(["model"] if link.model_dropped else [])]
        result = _LinkResult(attempts=[], started=True)
        retries = 0
        while True:
            started = self.clock()
            outcome = self._call(provider, plan, settings, run)
            if isinstance(outcome, AsyncSubmitted):
                latency = int((self.clock() - started) * 1000)
                self._breaker_result(link.provider, key.source, None, decision)
                delay = self._delay(outcome.wait_time, settings)
                result.attempts.append(
                    Attempt(
                        provider=link.provider,
                        model=plan.model,
                        outcome="pending",
                        message=f"queued at {link.provider}; checking again in {delay} s",
                        dropped_params=dropped,
                        latency_ms=latency,
                    )
                )
                result.pending = _Pending(outcome.remote_id, outcome.wait_time, key.source)
                result.warnings.extend(self._notes(plan))
                self.metrics.attempt(link.provider, "pending", None, latency)
                return result
            image_or_error = (
                self._materialize(outcome, plan, link, cancel) if not isinstance(outcome, ProviderError) else outcome
            )
            latency = int((self.clock() - started) * 1000)
            if isinstance(image_or_error, GeneratedImage):
                self._breaker_result(link.provider, key.source, None, decision)
                message = "; ".join(self._notes(plan)) or None
                result.attempts.append(
                    Attempt(
                        provider=link.provider,
                        model=plan.model,
                        outcome="succeeded",
                        message=message,
                        dropped_params=dropped,
                        latency_ms=latency,
                    )
                )
                result.image = image_or_error
                result.warnings.extend(self._notes(plan))
                if dropped:
                    result.warnings.append(f"{link.provider} does not take: {', '.join(dropped)}")
                if link.provider == "placeholder":
                    result.warnings.append("served by the offline placeholder provider, not an image model")
                self.metrics.attempt(link.provider, "succeeded", None, latency)
                return result
            error = image_or_error
            self._breaker_result(link.provider, key.source, error, decision)
            self.metrics.attempt(link.provider, "failed", error.error_class, latency)
            if isinstance(error, RetrySameLink):
                wait_s = self._retry_wait(error, settings, retries, run, cancel)
                if wait_s is not None:
                    result.attempts.append(
                        self._attempt(
                            link, plan, "retried", error, dropped, latency, suffix=f"; retrying in {wait_s:.1f} s"
                        )
                    )
                    self.sleep(wait_s)
                    retries += 1
                    decision = BreakerDecision(True, "closed")
                    continue
                error = FallThrough(error.error_class, error.message, status_code=error.status_code)
            result.attempts.append(self._attempt(link, plan, "failed", error, dropped, latency))
            result.error = error
            logger.info(
                "link failed",
                extra={
                    "provider": link.provider,
                    "model": plan.model,
                    "error_class": error.error_class,
                    "status_code": error.status_code,
                },
            )
            return result

    def _attempt(
        self,
        link: Link,
        plan: ProviderPlan,
        outcome: Literal["failed", "retried"],
        error: ProviderError,
        dropped: list[str],
        latency: int,
        suffix: str = "",
    ) -> Attempt:
        return Attempt(
            provider=link.provider,
            model=plan.model,
            outcome=outcome,
            error_class=error.error_class,
            status_code=error.status_code,
            message=error.message + suffix,
            dropped_params=dropped,
            latency_ms=latency,
        )

    @staticmethod
    def _notes(plan: ProviderPlan) -> list[str]:
        return [f"{plan.provider}: {note}" for note in plan.notes]

    def _retry_wait(
        self, error: RetrySameLink, settings: ProviderSettings, retries: int, run: _Run, cancel: threading.Event | None
    ) -> float | None:
        """Seconds to wait before repeating the same link, or None to fall through instead."""
        chain = self.settings.chain
        budget = chain.max_retry_wait_s
        if error.error_class == "model_loading" and isinstance(settings, HuggingFaceSettings):
            budget = settings.max_loading_wait_s
        if retries >= chain.max_retries or not math.isfinite(error.retry_after) or error.retry_after > budget:
            return None
        # Never earlier than Retry-After; a little later, at random, so callers do not return in lockstep.
        wait_s = error.retry_after + self.rng.uniform(0, min(1.0, 0.2 * max(error.retry_after, 0.5)))
        if wait_s + settings.min_attempt_s > self._remaining(run) or (cancel is not None and cancel.is_set()):
            return None
        return wait_s

    def _provider_failed(self, run: _Run, provider: str, error: ProviderError) -> None:
        """No other model of this provider can do better; a key the provider refused is reported once."""
        first = provider not in run.failed_providers
        run.failed_providers[provider] = error
        verdict = KEY_VERDICTS.get(error.error_class)
        key = run.keys.get(provider)
        if not first or verdict is None or self.health is None or not isinstance(key, ResolvedKey):
            return
        if key.source == "keyless":
            return
        try:
            self.health.report(
                provider, key.source, run.ctx.user_id, verdict, f"{provider} answered {error.status_code}"
            )
        except ImagegenError as exc:
            # Recording the verdict is a courtesy to later runs; this run has already moved on.
            logger.warning("could not record key health", extra={"provider": provider, "error": exc.code})

    def _acquire(self, provider: str, key_source: str, spec: Provider) -> BreakerDecision:
        if spec.capabilities.offline:
            return BreakerDecision(True, "closed")
        try:
            return self.breaker.acquire(provider, key_source, self.wall_clock())
        except BreakerUnavailable as exc:
            # A breaker we cannot read must not fail the job: behave as closed, and say so in the log.
            logger.warning("breaker unavailable; treating as closed", extra={"provider": provider, "error": str(exc)})
            return BreakerDecision(True, "closed")

    def _breaker_result(
        self, provider: str, key_source: str, error: ProviderError | None, decision: BreakerDecision
    ) -> None:
        if provider == "placeholder":
            return
        try:
            if error is not None and error.trips_breaker:
                self.breaker.record_failure(provider, key_source, self.wall_clock())
            elif error is None or decision.probe:
                # Any answer that is not a breaker-class failure shows the provider is up.
                self.breaker.record_success(provider, key_source, self.wall_clock())
        except BreakerUnavailable as exc:
            logger.warning("breaker update failed", extra={"provider": provider, "error": str(exc)})

    def _set_timeout(self, request: httpx.Request, settings: ProviderSettings, budget: float) -> None:
        request.extensions["timeout"] = httpx.Timeout(budget, connect=min(settings.connect_timeout_s, budget)).as_dict()

    def _call(
        self, provider: Provider, plan: ProviderPlan, settings: ProviderSettings, run: _Run
    ) -> ProviderResult | ProviderError:
        if provider.render is not None:
            return provider.render(plan)
        build, parse = provider.build_request, provider.parse_response
        assert build is not None and parse is not None
        budget = max(0.1, min(settings.timeout_s, self._remaining(run)))
        return self._send(build(plan, settings), settings, budget, lambda response: parse(response, plan))

    def _send(
        self,
        request: httpx.Request,
        settings: ProviderSettings,
        budget: float,
        parse: Callable[[httpx.Response], ProviderResult | ProviderError],
    ) -> ProviderResult | ProviderError:
        self._set_timeout(request, settings, budget)
        try:
            response = self.http.send(request)
        except httpx.TimeoutException:
            return FallThrough("timeout", f"no answer within {budget:.1f} s")
        except httpx.TransportError as exc:
            return FallThrough("connection", f"connection failed ({type(exc).__name__})")
        return parse(response)

    def _materialize(
        self, outcome: ProviderResult, plan: ProviderPlan, link: Link, cancel: threading.Event | None
    ) -> GeneratedImage | ProviderError:
        """Turn a provider result into validated image bytes, or the error that says why not."""
        if isinstance(outcome, ImageBytes):
            data = outcome.data
        elif isinstance(outcome, ImageBase64):
            try:
                data = base64.b64decode(outcome.b64, validate=True)
            except (binascii.Error, ValueError):
                return FallThrough("bad_response", "result is not valid base64", status_code=200)
        elif isinstance(outcome, ResultUrl):
            if cancel is not None and cancel.is_set():
                return FallThrough("hedge_lost", "another link answered first", status_code=None)
            try:
                data = self.fetcher.fetch_bytes(outcome.url).data
            except ImagegenError as exc:
                # The signed link failed, not the provider's API; never show the URL (it carries a signature).
                error_class = "expired" if exc.status == 410 else "result_fetch"
                return FallThrough(error_class, f"result download failed: {exc.code}", status_code=exc.status)
        else:
            return FallThrough("bad_response", f"unexpected result {type(outcome).__name__}")
        try:
            check = validate_image(
                data,
                expected_width=plan.width,
                expected_height=plan.height,
                known_placeholders=self.settings.chain.placeholder_hashes,
            )
        except InvalidImage as exc:
            return FallThrough("invalid_image", str(exc), status_code=200)
        return GeneratedImage(
            data=data,
            content_type=check.content_type,
            width=check.width,
            height=check.height,
            provider=link.provider,
            model=plan.model,
        )

    # --- async (AI Horde) ---------------------------------------------------------------------------

    def _delay(self, wait_time: float, settings: ProviderSettings) -> int:
        floor = settings.min_check_delay_s if isinstance(settings, HordeSettings) else 1
        return int(min(SQS_MAX_DELAY_S, max(floor, math.ceil(wait_time if math.isfinite(wait_time) else 0))))

    def _pending(self, run: _Run, index: int, result: _LinkResult, previous: dict[str, Any] | None) -> ChainPending:
        assert result.pending is not None
        link = run.links[index]
        run.attempts.extend(self._scrub_attempt(run, a) for a in result.attempts)
        run.warnings.extend(result.warnings)
        settings = self.settings.for_provider(link.provider)
        delay = self._delay(result.pending.wait_time, settings)
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "provider": link.provider,
            "remote_id": result.pending.remote_id,
            "key_source": result.pending.key_source,
            "user_id": run.ctx.user_id,
            "link_index": index,
            "links": [[lk.provider, lk.model, lk.model_dropped] for lk in run.links],
            "submitted_at": previous["submitted_at"] if previous else self.wall_clock(),
            "checks": (int(previous.get("checks", 0)) + 1) if previous else 0,
            "attempts": [a.model_dump() for a in run.attempts],
            "warnings": run.warnings,
        }
        return ChainPending(state=state, delay_seconds=delay, attempts=run.attempts)

    def _check_async(self, run: _Run, index: int, remote_id: str, state: dict[str, Any]) -> _LinkResult:
        link = run.links[index]
        provider = self.registry[link.provider]
        hooks = provider.async_hooks
        pending_attempt: dict[str, Any] = next(
            (a for a in reversed(state["attempts"]) if a.get("outcome") == "pending"), {}
        )
        dropped = list(pending_attempt.get("dropped_params") or [])
        submitted_at = float(state.get("submitted_at", self.wall_clock()))
        key = run.keys.get(link.provider)
        if hooks is None or not isinstance(key, ResolvedKey):
            reason = "no_key" if isinstance(key, tuple) or key is None else "bad_chain_state"
            error = FallThrough(reason, f"cannot check {link.provider}: {key[1] if isinstance(key, tuple) else reason}")
            return self._async_failed(link, error, dropped, submitted_at)
        settings = self.settings.for_provider(link.provider).with_key(key.secret)
        plan = provider.plan(run.request, link.model, settings)
        budget = max(0.1, min(settings.timeout_s, self._remaining(run)))
        if self._remaining(run) < settings.min_attempt_s:
            # No time to check in this invocation: check again soon rather than give up on a queued job.
            return _LinkResult([], pending=_Pending(remote_id, 0, key.source))
        checked = self._send(hooks.build_check(remote_id, settings), settings, budget, hooks.parse_check)
        queued_for = self.wall_clock() - submitted_at
        max_queue = settings.max_queue_s if isinstance(settings, HordeSettings) else 1200.0
        if isinstance(checked, AsyncStatus) and checked.done:
            collected = self._send(hooks.build_collect(remote_id, settings), settings, budget, hooks.parse_collect)
            if isinstance(collected, ProviderError):
                self._breaker_result(link.provider, key.source, collected, BreakerDecision(True, "closed"))
                if collected.error_class in RECHECK_CLASSES and queued_for < max_queue:
                    return _LinkResult(
                        [], pending=_Pending(remote_id, getattr(collected, "retry_after", 0), key.source)
                    )
                return self._async_failed(link, collected, dropped, submitted_at)
            image = self._materialize(collected, plan, link, None)
            if isinstance(image, ProviderError):
                return self._async_failed(link, image, dropped, submitted_at)
            latency = int((self.wall_clock() - submitted_at) * 1000)
            self._breaker_result(link.provider, key.source, None, BreakerDecision(True, "closed"))
            self.metrics.attempt(link.provider, "succeeded", None, latency)
            attempt = Attempt(
                provider=link.provider,
                model=image.model,
                outcome="succeeded",
                dropped_params=dropped,
                message=f"done after {int(state.get('checks', 0)) + 1} check(s)",
                latency_ms=latency,
            )
            return _LinkResult([attempt], image=image, started=True)
        if isinstance(checked, ProviderError):
            self._breaker_result(link.provider, key.source, checked, BreakerDecision(True, "closed"))
            if checked.error_class not in RECHECK_CLASSES:
                return self._async_failed(link, checked, dropped, submitted_at)
            wait_time = getattr(checked, "retry_after", 0.0)
        else:
            wait_time = checked.wait_time if isinstance(checked, AsyncStatus) else 0.0
        if queued_for >= max_queue:
            self.cancel(state)
            error = FallThrough("timeout", f"still queued after {int(queued_for)} s; remote request canceled")
            return self._async_failed(link, error, dropped, submitted_at)
        return _LinkResult([], pending=_Pending(remote_id, wait_time, key.source))

    def _async_failed(self, link: Link, error: ProviderError, dropped: list[str], submitted_at: float) -> _LinkResult:
        latency = int((self.wall_clock() - submitted_at) * 1000)
        self.metrics.attempt(link.provider, "failed", error.error_class, latency)
        attempt = Attempt(
            provider=link.provider,
            model=link.model,
            outcome="failed",
            error_class=error.error_class,
            status_code=error.status_code,
            message=error.message,
            dropped_params=dropped,
            latency_ms=latency,
        )
        return _LinkResult([attempt], error=error, started=True)

    # --- failure summary and secret hygiene ---------------------------------------------------------

    @staticmethod
    def _describe(attempt: Attempt) -> str:
        name = attempt.provider + (f"/{attempt.model}" if attempt.model else "")
        status = f"{attempt.status_code} " if attempt.status_code else ""
        detail = f" ({attempt.message})" if attempt.message else ""
        return f"{name}: {attempt.outcome} {status}{attempt.error_class or ''}{detail}".strip()

    def _all_failed(self, run: _Run) -> ChainFailed:
        tried = [a for a in run.attempts if a.outcome in ("failed", "skipped", "canceled")]
        breaker_only = (
            tried
            and all(a.error_class == "breaker_open" for a in tried if a.outcome == "skipped")
            and not any(a.outcome == "failed" for a in tried)
        )
        hint = (
            "Every provider is cooling down after repeated failures; retry in a minute."
            if breaker_only
            else "Retry later, add another provider to the chain, or check the keys named above."
        )
        message = f"All {len({a.provider for a in run.attempts})} providers failed: " + "; ".join(
            self._describe(a) for a in run.attempts if a.outcome != "retried"
        )
        error = ErrorInfo(
            code="all_providers_failed",
            message=self._scrub(run, message),
            hint=hint,
            details={"attempts": [a.model_dump() for a in run.attempts]},
        )
        return ChainFailed(error=error, attempts=run.attempts)

    @staticmethod
    def _scrub(run: _Run, text: str) -> str:
        for secret in run.secrets:
            text = text.replace(secret, "***")
        return text

    def _scrub_attempt(self, run: _Run, attempt: Attempt) -> Attempt:
        if attempt.message and run.secrets:
            return attempt.model_copy(update={"message": self._scrub(run, attempt.message)})
        return attempt
