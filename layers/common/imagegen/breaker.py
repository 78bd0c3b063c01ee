"""Circuit breaker port (per provider + key source) and the in-memory store used by unit tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, Protocol

BreakerStateName = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerPolicy:
    # Consecutive breaker-class failures (5xx, timeout, connection, 429) that open the breaker.
    threshold: int = 5
    # Seconds the breaker stays open before one half-open probe is let through.
    cooldown_s: float = 60.0
    # A claimed probe that never reports back frees the slot after this long.
    probe_lease_s: float = 120.0


@dataclass(frozen=True)
class BreakerDecision:
    allowed: bool
    state: BreakerStateName
    probe: bool = False


@dataclass(frozen=True)
class BreakerStatus:
    """A breaker as a reader sees it: its state, and until when (epoch seconds) it refuses calls, if it does."""

    state: BreakerStateName = "closed"
    until: float | None = None


class BreakerUnavailable(Exception):
    """The breaker's store could not be read or written; callers treat the breaker as closed."""


class BreakerStore(Protocol):
    def acquire(self, provider: str, key_source: str, now: float) -> BreakerDecision:
        """May a call go out now? Claims the single half-open probe when the cool-down is over."""
        ...

    def record_success(self, provider: str, key_source: str, now: float) -> None: ...

    def record_failure(self, provider: str, key_source: str, now: float) -> None: ...

    def state(self, provider: str, key_source: str, now: float) -> BreakerStateName: ...

    def status(self, provider: str, key_source: str) -> BreakerStatus:
        """State and until when it refuses calls: open until the cool-down ends, half-open while a probe is out."""
        ...


@dataclass
class _Entry:
    state: BreakerStateName = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probe_until: float = 0.0


class InMemoryBreakerStore:
    """Same state machine as the DynamoDB adapter, for one process."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def acquire(self, provider: str, key_source: str, now: float) -> BreakerDecision:
        with self._lock:
            entry = self._entries.setdefault((provider, key_source), _Entry())
            if entry.state == "closed":
                return BreakerDecision(True, "closed")
            if entry.state == "open" and now < entry.opened_at + self.policy.cooldown_s:
                return BreakerDecision(False, "open")
            if entry.state == "half_open" and now < entry.probe_until:
                return BreakerDecision(False, "half_open")
            entry.state = "half_open"
            entry.probe_until = now + self.policy.probe_lease_s
            return BreakerDecision(True, "half_open", probe=True)

    def record_success(self, provider: str, key_source: str, now: float) -> None:
        with self._lock:
            self._entries[(provider, key_source)] = _Entry()

    def record_failure(self, provider: str, key_source: str, now: float) -> None:
        with self._lock:
            entry = self._entries.setdefault((provider, key_source), _Entry())
            entry.failures += 1
            if entry.state == "half_open" or (entry.state == "closed" and entry.failures >= self.policy.threshold):
                entry.state = "open"
                entry.opened_at = now

    def state(self, provider: str, key_source: str, now: float) -> BreakerStateName:
        return self.status(provider, key_source).state

    def status(self, provider: str, key_source: str) -> BreakerStatus:
        with self._lock:
            entry = self._entries.get((provider, key_source), _Entry())
        return breaker_status(entry.state, entry.opened_at, entry.probe_until, self.policy)


def breaker_status(
    state: str, opened_at: float | None, probe_until: float | None, policy: BreakerPolicy
) -> BreakerStatus:
    """One reading of a breaker record for every store: unknown states read as closed."""
    if state == "open":
        return BreakerStatus("open", opened_at + policy.cooldown_s if opened_at is not None else None)
    if state == "half_open":
        return BreakerStatus("half_open", probe_until)
    return BreakerStatus()
