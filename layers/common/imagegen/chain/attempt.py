"""One link, one attempt at a time: preflight (already failed, key, deadline, breaker) → call → retry or settle."""

from __future__ import annotations

import base64
import binascii
import logging
import math
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx

from imagegen.breaker import CLOSED, BreakerDecision
from imagegen.chain.gates import Gates
from imagegen.chain.links import Link, Run, Skip, earlier_skip, listing_skip
from imagegen.errors import ImagegenError
from imagegen.generation import Generated, GeneratedImage, RunContext
from imagegen.media.imaging import InvalidImage, validate_image
from imagegen.models import Attempt
from imagegen.providers.base import (
    AsyncSubmitted,
    FallThrough,
    ImageBase64,
    ImageBytes,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    RemoteRequest,
    ResultUrl,
    RetrySameLink,
)

if TYPE_CHECKING:
    from imagegen.chain.ports import ChainDeps
    from imagegen.providers.settings import ProviderSettings
    from imagegen.providers.spec import ProviderSpec

logger = logging.getLogger(__name__)

SQS_MAX_DELAY_S = 900
__all__ = ["CLOSED", "LinkCall", "LinkResult", "LinkRunner", "Pending", "plan_for", "set_timeout"]


@dataclass
class Pending:
    """An async provider took the request: check `remote` again after `wait_time` seconds."""

    remote: RemoteRequest
    wait_time: float
    key_source: str


@dataclass
class LinkResult:
    attempts: list[Attempt]
    image: Generated | None = None
    pending: Pending | None = None
    error: ProviderError | None = None
    warnings: list[str] = field(default_factory=list)
    # False when the link was skipped without a call (a skip is no fallback).
    started: bool = False
    # Skipped as "not yet" (cooling down, rate-limited): why, and until when (epoch s).
    not_yet: tuple[str, float] | None = None


@dataclass
class LinkCall:
    """One link being tried: what is sent, with which key, and the breaker's word on it."""

    link: Link
    spec: ProviderSpec[Any]
    settings: ProviderSettings
    plan: ProviderPlan
    key_source: str
    # Whose key it is (ResolvedKey.scope): the breaker and the rate limit this call counts against.
    scope: str
    decision: BreakerDecision
    # Request fields the provider does not take, as recorded on every attempt of this link.
    dropped: list[str]

    def notes(self) -> list[str]:
        notes = [*([self.link.note] if self.link.note else []), *self.plan.notes]
        return [f"{self.plan.provider}: {note}" for note in notes]


class LinkRunner:
    """Tries one link: the same link again after a short Retry-After, else settles on one outcome."""

    def __init__(self, deps: ChainDeps) -> None:
        self.deps = deps
        self.gates = Gates(deps)

    # --- preflight --------------------------------------------------------------------------------------------

    def remaining(self, run: Run) -> float:
        return run.ctx.deadline - self.deps.settings.chain.deadline_margin_s - self.deps.clock()

    def _preflight(self, run: Run, link: Link) -> LinkCall | Skip:
        earlier = earlier_skip(run, link)
        if earlier is not None:
            return earlier
        key = run.keys[link.provider]
        if isinstance(key, Skip):
            return key
        unlisted = listing_skip(link, key)
        if unlisted is not None:
            return unlisted
        spec = self.deps.registry[link.provider]
        base = self.deps.settings.image_provider(link.provider)
        if self.remaining(run) < base.min_attempt_s:
            return Skip("deadline", "skipped: not enough time left before the job deadline")
        assert key.source is not None
        decision = self.gates.admit(link, key, spec, base.rpm)
        if isinstance(decision, Skip):
            return decision
        settings = base.with_key(key.key)
        plan = plan_for(spec, run, link, settings)
        # The attempt's timeout follows the link's observed latencies (its configured one until they are known).
        settings = settings.model_copy(update={"timeout_s": self.gates.timeout(link, link.model, base, spec)})
        dropped = [*plan.dropped_params, *(["model"] if link.model_dropped else [])]
        return LinkCall(link, spec, settings, plan, key.source, key.breaker_scope, decision, dropped)

    # --- the attempt loop -------------------------------------------------------------------------------------

    def try_link(self, run: Run, index: int, cancel: threading.Event | None) -> LinkResult:
        link = run.links[index]
        call = self._preflight(run, link)
        if isinstance(call, Skip):
            not_yet = (call.reason, call.until) if call.until is not None else None
            return LinkResult([call.attempt(link)], not_yet=not_yet)
        result = LinkResult(attempts=[], started=True)
        retries = 0
        while True:
            started = self.deps.clock()
            if not call.spec.offline:
                self.deps.hedge_budget.called()
            outcome = self.call(call.spec, call.plan, call.settings, run, call)
            call_s = self.deps.clock() - started
            if isinstance(outcome, AsyncSubmitted):
                return self._submitted(call, result, outcome, self._since(started))
            image = outcome if isinstance(outcome, ProviderError) else self.materialize(outcome, call, cancel, run.ctx)
            latency = self._since(started)
            if not isinstance(image, ProviderError):
                self.gates.answered(link, call.scope, call.link.model, None, call.decision, call_s)
                return self._succeeded(call, result, image, latency)
            self.gates.answered(link, call.scope, call.link.model, image, call.decision)
            self.deps.metrics.attempt(link.provider, "failed", image.error_class, latency)
            wait_s = self._retry_wait(image, call.settings, retries, run, cancel)
            if wait_s is None:
                return self._failed(call, result, image, latency)
            result.attempts.append(self._retried(call, image, latency, wait_s))
            self.deps.sleep(wait_s)
            retries += 1
            call.decision = CLOSED

    def _since(self, started: float) -> int:
        return int((self.deps.clock() - started) * 1000)

    def _submitted(self, call: LinkCall, result: LinkResult, outcome: AsyncSubmitted, latency: int) -> LinkResult:
        self.gates.answered(call.link, call.scope, call.link.model, None, call.decision)
        delay = self.delay(outcome.wait_time, call.spec)
        message = f"queued at {call.link.provider}; checking again in {delay} s"
        result.attempts.append(self._pending(call, latency, message))
        result.pending = Pending(RemoteRequest(outcome.remote_id, outcome.urls), outcome.wait_time, call.key_source)
        result.warnings.extend(call.notes())
        self.deps.metrics.attempt(call.link.provider, "pending", None, latency)
        return result

    @staticmethod
    def _pending(call: LinkCall, latency: int, message: str) -> Attempt:
        return Attempt(
            provider=call.link.provider,
            model=call.plan.model,
            route=call.link.route_name,
            outcome="pending",
            message=message,
            dropped_params=call.dropped,
            latency_ms=latency,
        )

    def _succeeded(self, call: LinkCall, result: LinkResult, image: Generated, latency: int) -> LinkResult:
        provider = call.link.provider
        notes = call.notes()
        result.attempts.append(
            Attempt(
                provider=provider,
                model=call.plan.model,
                route=call.link.route_name,
                outcome="succeeded",
                message="; ".join(notes) or None,
                dropped_params=call.dropped,
                latency_ms=latency,
            )
        )
        result.image = image
        result.warnings.extend(notes)
        if call.dropped:
            result.warnings.append(f"{provider} does not take: {', '.join(call.dropped)}")
        if call.spec.offline:
            result.warnings.append(f"served by the offline {provider} provider, not an image model")
        self.deps.metrics.attempt(provider, "succeeded", None, latency)
        return result

    def _failed(self, call: LinkCall, result: LinkResult, error: ProviderError, latency: int) -> LinkResult:
        if isinstance(error, RetrySameLink):
            # Not retried after all (budget, deadline, or a winner elsewhere): from here on it is a fall-through.
            error = FallThrough(error.error_class, error.message, status_code=error.status_code)
        result.attempts.append(self._error_attempt(call, "failed", error, latency))
        result.error = error
        logger.info(
            "link failed",
            extra={
                "provider": call.link.provider,
                "model": call.plan.model,
                "error_class": error.error_class,
                "status_code": error.status_code,
            },
        )
        return result

    def _retried(self, call: LinkCall, error: ProviderError, latency: int, wait_s: float) -> Attempt:
        return self._error_attempt(call, "retried", error, latency, suffix=f"; retrying in {wait_s:.1f} s")

    @staticmethod
    def _error_attempt(
        call: LinkCall, outcome: Literal["failed", "retried"], error: ProviderError, latency: int, suffix: str = ""
    ) -> Attempt:
        note = f"{call.link.note}; " if call.link.note else ""
        return Attempt(
            provider=call.link.provider,
            model=call.plan.model,
            route=call.link.route_name,
            outcome=outcome,
            error_class=error.error_class,
            status_code=error.status_code,
            message=note + error.message + suffix,
            dropped_params=call.dropped,
            latency_ms=latency,
        )

    def _retry_wait(
        self, error: ProviderError, settings: ProviderSettings, retries: int, run: Run, cancel: threading.Event | None
    ) -> float | None:
        """Seconds to wait before repeating the same link, or None to fall through instead."""
        if not isinstance(error, RetrySameLink):
            return None
        chain = self.deps.settings.chain
        budget = settings.max_loading_wait_s if error.error_class == "model_loading" else chain.max_retry_wait_s
        if retries >= chain.max_retries or not math.isfinite(error.retry_after) or error.retry_after > budget:
            return None
        # Never earlier than Retry-After; a little later, at random, so callers do not return in lockstep.
        wait_s = error.retry_after + self.deps.rng.uniform(0, min(1.0, 0.2 * max(error.retry_after, 0.5)))
        if wait_s + settings.min_attempt_s > self.remaining(run) or (cancel is not None and cancel.is_set()):
            return None
        return wait_s

    # --- calls and their bookkeeping --------------------------------------------------------------------------

    def budget(self, settings: ProviderSettings, run: Run) -> float:
        return max(0.1, min(settings.timeout_s, self.remaining(run)))

    def call(
        self, spec: ProviderSpec[Any], plan: ProviderPlan, settings: ProviderSettings, run: Run, call: LinkCall
    ) -> ProviderResult | ProviderError:
        if spec.render is not None:
            return spec.render(plan)
        build, parse = spec.build_request, spec.parse_response
        assert build is not None and parse is not None
        budget = self.budget(settings, run)
        # The request is built with this attempt's budget as timeout_s (a route that asks the provider to wait, as
        # Replicate's `Prefer: wait=N`, waits within it).
        built = build(plan, settings.model_copy(update={"timeout_s": budget}))

        def read(answer: httpx.Response) -> ProviderResult | ProviderError:
            self.gates.headers(call.link, call.scope, answer.headers)
            return parse(answer, plan)

        return self.send(built, settings, budget, read)

    def send(
        self,
        request: httpx.Request,
        settings: ProviderSettings,
        budget: float,
        parse: Callable[[httpx.Response], ProviderResult | ProviderError],
    ) -> ProviderResult | ProviderError:
        set_timeout(request, settings, budget)
        response: httpx.Response | None = None
        try:
            # Streamed, then read here: a body that cannot be decoded (a gzip that is not) is then told apart from
            # the answer it came with, whose status the attempt still records.
            response = self.deps.http.send(request, stream=True)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TimeoutException:
            return FallThrough("timeout", f"no answer within {budget:.1f} s")
        except httpx.DecodingError as exc:
            status = response.status_code if response is not None else None
            return FallThrough(
                "bad_response", f"the answer could not be decoded ({type(exc).__name__})", status_code=status
            )
        except httpx.TransportError as exc:
            return FallThrough("connection", f"connection failed ({type(exc).__name__})")
        return read_answer(response, parse)

    def materialize(
        self, outcome: ProviderResult, call: LinkCall, cancel: threading.Event | None, ctx: RunContext
    ) -> Generated | ProviderError:
        """Turn a provider result into validated image bytes (a video chain: a stored video), or the error that says
        why not."""
        if self.deps.videos is not None:
            return self.deps.videos.store(outcome, ctx, call.link.provider, call.plan.model)
        data = self._bytes(outcome, cancel)
        if isinstance(data, ProviderError):
            return data
        plan = call.plan
        try:
            check = validate_image(
                data,
                expected_width=plan.width,
                expected_height=plan.height,
                known_placeholders=self.deps.settings.chain.placeholder_hashes,
            )
        except InvalidImage as exc:
            return FallThrough("invalid_image", str(exc), status_code=200)
        return GeneratedImage(
            data=data,
            content_type=check.content_type,
            width=check.width,
            height=check.height,
            provider=call.link.provider,
            model=plan.model,
        )

    def _bytes(self, outcome: ProviderResult, cancel: threading.Event | None) -> bytes | ProviderError:
        if isinstance(outcome, ImageBytes):
            return outcome.data
        if isinstance(outcome, ImageBase64):
            try:
                return base64.b64decode(outcome.b64, validate=True)
            except (binascii.Error, ValueError):
                return FallThrough("bad_response", "result is not valid base64", status_code=200)
        if not isinstance(outcome, ResultUrl):
            return FallThrough("bad_response", f"unexpected result {type(outcome).__name__}")
        if cancel is not None and cancel.is_set():
            return FallThrough("hedge_lost", "another link answered first", status_code=None)
        try:
            return self.deps.fetcher.fetch_bytes(outcome.url).data
        except ImagegenError as exc:
            # The signed link failed, not the provider's API; never show the URL (it carries a signature).
            error_class = "expired" if exc.status == 410 else "result_fetch"
            return FallThrough(error_class, f"result download failed: {exc.code}", status_code=exc.status)

    def delay(self, wait_time: float, spec: ProviderSpec[Any], checks: int = 0) -> int:
        """Seconds until an async request is checked again after `checks` checks: the provider's wait_time, or its
        spec's backoff, from the spec's floor up to SQS's limit."""
        if spec.async_ is not None:
            return min(SQS_MAX_DELAY_S, spec.async_.delay(wait_time, checks))
        wait = math.ceil(wait_time) if math.isfinite(wait_time) else 0
        return int(min(SQS_MAX_DELAY_S, max(1, wait)))


def plan_for(spec: ProviderSpec[Any], run: Run, link: Link, settings: ProviderSettings) -> ProviderPlan:
    """The portable request on this link: through its route for a routing provider's routed link."""
    if spec.routing is not None and link.route is not None:
        return spec.routing.plan(run.request, link.model, link.route, settings)
    assert spec.plan is not None
    return spec.plan(run.request, link.model, settings)


def read_answer(
    response: httpx.Response, parse: Callable[[httpx.Response], ProviderResult | ProviderError]
) -> ProviderResult | ProviderError:
    """The provider adapter's reading of an answer. An adapter that trips over an answer it did not expect (a bug,
    or a shape no document showed) costs this link, never the job: the chain moves on with `bad_response`."""
    try:
        return parse(response)
    except Exception as exc:  # noqa: BLE001 - any adapter failure; the message is not logged (it may quote the body)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        logger.error(
            "provider answer could not be read",
            extra={
                "error": type(exc).__name__,
                "at": f"{where.filename.rsplit('/', 1)[-1]}:{where.lineno}",
                "status_code": response.status_code,
            },
        )
        message = f"the answer could not be read ({type(exc).__name__})"
        return FallThrough("bad_response", message, status_code=response.status_code)


def set_timeout(request: httpx.Request, settings: ProviderSettings, budget: float) -> None:
    request.extensions["timeout"] = httpx.Timeout(budget, connect=min(settings.connect_timeout_s, budget)).as_dict()
