"""Async providers (Horde, fal, Replicate): park a submitted run, check it without sleeping, collect, or cancel it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx

from imagegen.chain.attempt import CLOSED, LinkCall, LinkResult, LinkRunner, Pending, plan_for, set_timeout
from imagegen.chain.links import Link, Run, Skip
from imagegen.chain.report import scrub_attempt
from imagegen.chain.state import PendingState
from imagegen.generation import ChainPending
from imagegen.keys.types import ResolvedKey
from imagegen.models import Attempt
from imagegen.providers.base import FINAL_RESULTS, AsyncStatus, FallThrough, ProviderError

if TYPE_CHECKING:
    from imagegen.chain.ports import ChainDeps
    from imagegen.providers.spec import AsyncSpec

logger = logging.getLogger(__name__)

# Transient failures of a check or collect: check again later rather than abandon a queued job.
RECHECK_CLASSES = frozenset({"rate_limited", "server_error", "overloaded", "timeout", "connection"})


class AsyncLinks:
    def __init__(self, deps: ChainDeps, runner: LinkRunner) -> None:
        self.deps = deps
        self.runner = runner

    def park(self, run: Run, index: int, result: LinkResult, previous: PendingState | None) -> ChainPending:
        """The run as it stands, to be stored on the job; the worker sends a check message after `delay_seconds`."""
        assert result.pending is not None
        link = run.links[index]
        run.attempts.extend(scrub_attempt(run, a) for a in result.attempts)
        run.warnings.extend(result.warnings)
        checks = previous.checks + 1 if previous else 0
        state = PendingState(
            provider=link.provider,
            remote_id=result.pending.remote.id,
            key_source=result.pending.key_source,
            user_id=run.ctx.user_id,
            link_index=index,
            links=tuple(run.links),
            submitted_at=previous.submitted_at if previous else self.deps.wall_clock(),
            checks=checks,
            attempts=tuple(run.attempts),
            warnings=tuple(run.warnings),
            remote_urls=dict(result.pending.remote.urls),
        )
        delay = self.runner.delay(result.pending.wait_time, self.deps.registry[link.provider], checks)
        return ChainPending(state=state.dump(), delay_seconds=delay, attempts=run.attempts)

    def check(self, run: Run, state: PendingState) -> LinkResult:
        """Ask the provider once; collect the result when it says done. Pending again, an image, or an error."""
        link = state.link
        key = run.keys.get(link.provider)
        spec = self.deps.registry[link.provider]
        if spec.async_ is None:
            return self._failed(link, state, FallThrough("bad_chain_state", f"{link.provider} is not asynchronous"))
        if not isinstance(key, ResolvedKey):
            reason = key.message if isinstance(key, Skip) else "no key"
            return self._failed(link, state, FallThrough("no_key", f"cannot check {link.provider}: {reason}"))
        settings = self.deps.settings.image_provider(link.provider).with_key(key.key)
        if self.runner.remaining(run) < settings.min_attempt_s:
            # No time to check in this invocation: check again soon rather than give up on a queued job.
            return LinkResult([], pending=Pending(state.remote, 0, state.key_source))
        plan = plan_for(spec, run, link, settings)
        assert key.source is not None
        call = LinkCall(link, spec, settings, plan, key.source, key.breaker_scope, CLOSED, [])
        try:
            asked = spec.async_.build_check(state.remote, settings)
        except ValueError:
            error = FallThrough("bad_chain_state", "the stored remote id is not the provider's")
            return self._failed(link, state, error)
        checked = self.runner.send(asked, settings, self.runner.budget(settings, run), spec.async_.parse_check)
        if isinstance(checked, FINAL_RESULTS):
            # The check's answer carries the result (Replicate's prediction): no collect call.
            return self._finish(run, state, call, checked, spec.async_)
        if isinstance(checked, AsyncStatus) and checked.done:
            return self._collect(run, state, call, spec.async_)
        return self._not_done(state, call, checked, spec.async_)

    def _not_done(self, state: PendingState, call: LinkCall, checked: Any, async_: AsyncSpec[Any]) -> LinkResult:
        if isinstance(checked, ProviderError):
            self.runner.gates.answered(call.link, call.scope, call.link.model, checked, CLOSED)
            if checked.error_class not in RECHECK_CLASSES:
                return self._failed(call.link, state, checked)
            wait_time = getattr(checked, "retry_after", 0.0)
        else:
            wait_time = checked.wait_time if isinstance(checked, AsyncStatus) else 0.0
        queued_for = self.deps.wall_clock() - state.submitted_at
        if queued_for >= async_.max_queue_s:
            self.cancel(state)
            error = FallThrough("timeout", f"still queued after {int(queued_for)} s; remote request canceled")
            return self._failed(call.link, state, error)
        return LinkResult([], pending=Pending(state.remote, wait_time, state.key_source))

    def _collect(self, run: Run, state: PendingState, call: LinkCall, async_: AsyncSpec[Any]) -> LinkResult:
        if async_.build_collect is None or async_.parse_collect is None:
            error = FallThrough("bad_response", f"{call.link.provider} said done without a result", status_code=200)
            return self._failed(call.link, state, error)
        budget = self.runner.budget(call.settings, run)
        collected = self.runner.send(
            async_.build_collect(state.remote, call.settings), call.settings, budget, async_.parse_collect
        )
        return self._finish(run, state, call, collected, async_)

    def _finish(
        self, run: Run, state: PendingState, call: LinkCall, collected: Any, async_: AsyncSpec[Any]
    ) -> LinkResult:
        """A collected answer: the image, a transient error worth another check, or the link's failure."""
        provider = call.link.provider
        if isinstance(collected, ProviderError):
            self.runner.gates.answered(call.link, call.scope, call.link.model, collected, CLOSED)
            queued_for = self.deps.wall_clock() - state.submitted_at
            if collected.error_class in RECHECK_CLASSES and queued_for < async_.max_queue_s:
                return LinkResult(
                    [], pending=Pending(state.remote, getattr(collected, "retry_after", 0), state.key_source)
                )
            return self._failed(call.link, state, collected)
        image = self.runner.materialize(collected, call, None, run.ctx)
        if isinstance(image, ProviderError):
            return self._failed(call.link, state, image)
        latency = self._latency(state)
        self.runner.gates.answered(call.link, call.scope, call.link.model, None, CLOSED)
        self.deps.metrics.attempt(provider, "succeeded", None, latency)
        attempt = Attempt(
            provider=provider,
            model=image.model,
            route=call.link.route_name,
            outcome="succeeded",
            dropped_params=self._dropped(state),
            message=f"done after {state.checks + 1} check(s)",
            latency_ms=latency,
        )
        return LinkResult([attempt], image=image, started=True)

    def cancel(self, state: PendingState) -> None:
        """Best effort: the remote request expires by itself; the job is already canceled on our side."""
        spec = self.deps.registry[state.provider]
        if spec.async_ is None:
            return
        key = self.deps.keys.resolve(state.user_id, state.provider)
        settings = self.deps.settings.image_provider(state.provider).with_key(key.key)
        try:
            request = spec.async_.build_cancel(state.remote, settings)
        except ValueError:
            logger.warning("no remote cancel: the remote id is not the provider's", extra={"provider": state.provider})
            return
        if request is None:
            return  # the provider offers no cancel; its request ends by itself
        set_timeout(request, settings, settings.timeout_s)
        try:
            response = self.deps.http.send(request)
        except httpx.HTTPError as exc:
            logger.warning("remote cancel failed", extra={"provider": state.provider, "error": type(exc).__name__})
            return
        logger.info("remote cancel sent", extra={"provider": state.provider, "status_code": response.status_code})

    def _latency(self, state: PendingState) -> int:
        return int((self.deps.wall_clock() - state.submitted_at) * 1000)

    @staticmethod
    def _dropped(state: PendingState) -> list[str]:
        pending = state.pending_attempt
        return list(pending.dropped_params) if pending else []

    def _failed(self, link: Link, state: PendingState, error: ProviderError) -> LinkResult:
        latency = self._latency(state)
        self.deps.metrics.attempt(link.provider, "failed", error.error_class, latency)
        attempt = Attempt(
            provider=link.provider,
            model=link.model,
            route=link.route_name,
            outcome="failed",
            error_class=error.error_class,
            status_code=error.status_code,
            message=error.message,
            dropped_params=self._dropped(state),
            latency_ms=latency,
        )
        return LinkResult([attempt], error=error, started=True)
