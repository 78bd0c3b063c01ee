"""What a link passes before its call (breaker, rate limit), the timeout and hedge delay it gets from its observed
latencies, and what each answer teaches them: scoped per provider (+ route) and, for breakers and limits, per key."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imagegen.breaker import CLOSED, BreakerDecision, BreakerUnavailable
from imagegen.chain.limits import RateLimitUnavailable, exhausted_for
from imagegen.chain.links import Link, Skip, link_is_async

if TYPE_CHECKING:
    from imagegen.chain.ports import ChainDeps
    from imagegen.keys.types import ResolvedKey
    from imagegen.providers.base import ProviderError
    from imagegen.providers.settings import ProviderSettings
    from imagegen.providers.spec import ProviderSpec

logger = logging.getLogger(__name__)

# These failures say the provider hangs or is unreachable: its other links go after the other providers'.
HANG_CLASSES = frozenset({"timeout", "connection"})


def _at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class Gates:
    def __init__(self, deps: ChainDeps) -> None:
        self.deps = deps

    # --- before a call ----------------------------------------------------------------------------------------------

    def admit(self, link: Link, key: ResolvedKey, spec: ProviderSpec[Any], rpm: float) -> BreakerDecision | Skip:
        """The breaker's word (a probe claimed when due), or the "not yet" skip: cooling down, or no token now."""
        if spec.offline:
            return CLOSED
        name, scope, now = link.breaker_name, key.breaker_scope, self.deps.wall_clock()
        whose = f"{key.source} key"
        try:
            status = self.deps.breakers.status(name, scope, now)
            if status.state == "open" or (status.state == "half_open" and status.until is not None):
                return self._cooling(name, whose, status.state, status.until)
        except BreakerUnavailable as exc:
            self._unavailable("breaker", name, exc)
        limited = self._limited(name, scope, rpm, now)
        if limited is not None:
            return Skip("rate_limited", f"skipped: rate limit for {name} ({whose}) until {_at(limited)}", limited)
        try:
            decision = self.deps.breakers.acquire(name, scope, now)
        except BreakerUnavailable as exc:
            # A breaker we cannot read must not fail the job: behave as closed, and say so in the log.
            self._unavailable("breaker", name, exc)
            return CLOSED
        return decision if decision.allowed else self._cooling(name, whose, decision.state, decision.until)

    def looks_open(self, link: Link, key: ResolvedKey) -> bool:
        """From what this container last read, with no write: would the breaker let a call through now?"""
        spec = self.deps.registry[link.provider]
        if spec.offline:
            return True
        try:
            status = self.deps.breakers.status(link.breaker_name, key.breaker_scope, self.deps.wall_clock())
        except BreakerUnavailable:
            return True
        return status.state == "closed" or (status.state == "half_open" and status.until is None)

    @staticmethod
    def _cooling(name: str, whose: str, state: str, until: float | None) -> Skip:
        when = f" until {_at(until)}" if until is not None else ""
        return Skip("breaker_open", f"skipped: circuit breaker {state} for {name} ({whose}){when}", until)

    def _limited(self, name: str, scope: str, rpm: float, now: float) -> float | None:
        try:
            return self.deps.limits.acquire(name, scope, rpm, now)
        except RateLimitUnavailable as exc:
            self._unavailable("rate limit", name, exc)
            return None

    @staticmethod
    def _unavailable(what: str, name: str, exc: Exception) -> None:
        logger.warning(f"{what} unavailable; letting the call go", extra={"provider": name, "error": str(exc)})

    def timeout(self, link: Link, model: str | None, settings: ProviderSettings, spec: ProviderSpec[Any]) -> float:
        """A multiple of the observed p95, within the floor and the provider's own timeout; its own until known.
        Queued providers' calls are short submits and checks: they keep their configured timeouts."""
        if spec.offline or link_is_async(spec, link):
            return settings.timeout_s
        p95 = self.deps.latency.quantile(link.breaker_name, model, 0.95)
        if p95 is None:
            return settings.timeout_s
        chain = self.deps.settings.chain
        return min(settings.timeout_s, max(chain.timeout_floor_s, chain.timeout_multiplier * p95))

    def hedge_delay(self, link: Link, model: str | None) -> float:
        """How long the link may stay silent before a hedge starts: its observed p90, else the configured delay."""
        p90 = self.deps.latency.quantile(link.breaker_name, model, 0.90)
        return p90 if p90 is not None else self.deps.settings.image_provider(link.provider).hedge_delay_s

    def overdue(self, link: Link, model: str | None, silent_s: float) -> bool:
        """Silent half again past its observed p99: not a slow answer, a hang."""
        p99 = self.deps.latency.quantile(link.breaker_name, model, 0.99)
        return p99 is not None and silent_s > 1.5 * p99

    # --- after an answer ----------------------------------------------------------------------------------------

    def answered(
        self,
        link: Link,
        scope: str,
        model: str | None,
        error: ProviderError | None,
        decision: BreakerDecision,
        call_s: float | None = None,
    ) -> None:
        """What one answer teaches: the breaker's evidence, the latency sketch, this container's suspects, and a
        provider's wait for everyone on the key (a 429's Retry-After)."""
        if self.deps.registry[link.provider].offline:
            return
        name, now = link.breaker_name, self.deps.wall_clock()
        if error is None and call_s is not None:
            self.deps.latency.record(name, model, call_s)
        if error is None:
            self.deps.suspects.cleared(name)
        elif error.error_class in HANG_CLASSES:
            self.deps.suspects.suspect(name)
        retry_after = getattr(error, "retry_after", None)
        if error is not None and error.error_class == "rate_limited" and retry_after is not None:
            self.wait_for(link, scope, float(retry_after))
        try:
            if error is not None and error.trips_breaker:
                self.deps.breakers.failed(name, scope, now, decision)
            else:
                # Any answer that is not a breaker-class failure shows the provider is up.
                self.deps.breakers.succeeded(name, scope, now, decision)
        except BreakerUnavailable as exc:
            logger.warning("breaker update failed", extra={"provider": name, "error": str(exc)})

    def headers(self, link: Link, scope: str, headers: Mapping[str, str]) -> None:
        """An answer's rate-limit headers that say no request remains: nobody on this key calls until the reset."""
        seconds = exhausted_for(headers, self.deps.wall_clock())
        if seconds is not None and seconds > 0:
            self.wait_for(link, scope, seconds)

    def wait_for(self, link: Link, scope: str, seconds: float) -> None:
        now = self.deps.wall_clock()
        try:
            self.deps.limits.block(link.breaker_name, scope, now + seconds, now)
        except RateLimitUnavailable as exc:
            logger.warning("rate limit update failed", extra={"provider": link.breaker_name, "error": str(exc)})
