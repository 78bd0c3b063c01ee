"""Circuit breakers per provider (+ route) and key scope: shared state written on state changes only, read through a
per-container cache, opened by one container's evidence of sustained failure (never by random failures)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

BreakerStateName = Literal["closed", "open", "half_open"]
BreakerKey = tuple[str, str]


@dataclass(frozen=True)
class BreakerPolicy:
    # Breaker-class failures in a row (5xx, timeout, connection, 429), seen by one container within window_s, that open
    # the breaker. 10, not 5: a provider failing 30 % of its calls at random shows 5 in a row about once in 600 calls,
    # 10 in a row about once in 240,000; a dead one shows 10 in its first 10 calls.
    threshold: int = 10
    # Seconds the breaker stays open before one half-open probe is let through.
    cooldown_s: float = 60.0
    # A claimed probe that never reports back frees the slot after this long.
    probe_lease_s: float = 120.0
    # Failures older than this are forgotten: a failure now and then is no streak.
    window_s: float = 300.0
    # How long a container trusts what it read of the shared state (at most a second or two at internet scale).
    cache_s: float = 1.0
    # While another container's probe is out, a waiting job looks again this soon (its answer may come at once).
    recheck_s: float = 10.0


@dataclass(frozen=True)
class BreakerRecord:
    """The shared item as stored: what every container reads."""

    state: str = "closed"
    opened_at: float | None = None
    probe_until: float | None = None


@dataclass(frozen=True)
class BreakerDecision:
    allowed: bool
    state: BreakerStateName
    probe: bool = False
    # When refused: when it is worth asking again (epoch seconds).
    until: float | None = None


@dataclass(frozen=True)
class BreakerStatus:
    """A breaker as a reader sees it at one moment: its state, and until when (epoch seconds) it refuses calls.

    half_open with until None: the cool-down is over and the next call is the trial; with until: a trial is out."""

    state: BreakerStateName = "closed"
    until: float | None = None


class BreakerUnavailable(Exception):
    """The breaker's store could not be read or written; callers treat the breaker as closed."""


class BreakerStore(Protocol):
    """The shared items (imagegen.adapters.breaker_store in DynamoDB); each write is conditional on what was read."""

    def read(self, name: str, scope: str) -> BreakerRecord: ...

    def open(self, name: str, scope: str, now: float, *, expected: str) -> bool:
        """closed (or no item) → open when expected is "closed"; half_open → open when it is "half_open"."""
        ...

    def claim_probe(self, name: str, scope: str, now: float, lease_s: float, *, seen: BreakerRecord) -> bool:
        """The single half-open probe, if the breaker is still as seen."""
        ...

    def close(self, name: str, scope: str, now: float) -> bool:
        """half_open → closed: the probe answered."""
        ...


def breaker_status(record: BreakerRecord, policy: BreakerPolicy, now: float) -> BreakerStatus:
    """The one reading of a breaker record: open until the cool-down ends, half-open after it (a trial call may go,
    or one is out until probe_until); unknown states read as closed."""
    if record.state == "open" and record.opened_at is not None:
        reopens = record.opened_at + policy.cooldown_s
        return BreakerStatus("open", reopens) if now < reopens else BreakerStatus("half_open")
    if record.state == "half_open":
        probe_out = record.probe_until is not None and now < record.probe_until
        return BreakerStatus("half_open", record.probe_until if probe_out else None)
    return BreakerStatus()


CLOSED = BreakerDecision(True, "closed")


class Breakers:
    """The breakers as one container uses them: cached reads, local evidence, and a write only when a state changes.

    Safe to share between the threads of a container (hedged links run in two)."""

    def __init__(
        self,
        store: BreakerStore,
        policy: BreakerPolicy | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.policy = policy or BreakerPolicy()
        self._monotonic = monotonic
        self._cache: dict[BreakerKey, tuple[float, BreakerRecord]] = {}
        # Wall-clock times of the failures in a row this container saw, per breaker.
        self._streaks: dict[BreakerKey, deque[float]] = {}
        self._lock = threading.Lock()

    # --- reading ----------------------------------------------------------------------------------------------------

    def record(self, name: str, scope: str, *, fresh: bool = False) -> BreakerRecord:
        key = (name, scope)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and not fresh and self._monotonic() < cached[0]:
            return cached[1]
        record = self.store.read(name, scope)
        self._remember(key, record)
        return record

    def status(self, name: str, scope: str, now: float) -> BreakerStatus:
        return breaker_status(self.record(name, scope), self.policy, now)

    def _remember(self, key: BreakerKey, record: BreakerRecord) -> None:
        with self._lock:
            self._cache[key] = (self._monotonic() + self.policy.cache_s, record)

    # --- the chain's calls ------------------------------------------------------------------------------------------

    def acquire(self, name: str, scope: str, now: float) -> BreakerDecision:
        """May a call go out now? Claims the single half-open probe when the cool-down is over."""
        record = self.record(name, scope)
        status = breaker_status(record, self.policy, now)
        if status.state == "closed":
            return CLOSED
        if status.state == "open":
            return BreakerDecision(False, "open", until=status.until)
        recheck = now + self.policy.recheck_s
        if status.until is not None:
            return BreakerDecision(False, "half_open", until=min(status.until, recheck))
        # The trial call: read afresh and claim it conditionally, so one container alone probes.
        record = self.record(name, scope, fresh=True)
        if breaker_status(record, self.policy, now) != BreakerStatus("half_open"):
            return self.acquire(name, scope, now)
        claimed = self.store.claim_probe(name, scope, now, self.policy.probe_lease_s, seen=record)
        lease_end = now + self.policy.probe_lease_s
        self._remember((name, scope), BreakerRecord("half_open", record.opened_at, lease_end))
        if not claimed:
            return BreakerDecision(False, "half_open", until=recheck)
        return BreakerDecision(True, "half_open", probe=True)

    def succeeded(self, name: str, scope: str, now: float, decision: BreakerDecision) -> None:
        """The provider answered (any answer that is no breaker-class failure): the streak ends; a probe closes it."""
        key = (name, scope)
        with self._lock:
            self._streaks.pop(key, None)
        if decision.probe:
            self.store.close(name, scope, now)
            self._remember(key, BreakerRecord())

    def failed(self, name: str, scope: str, now: float, decision: BreakerDecision) -> None:
        """A breaker-class failure: a failed probe reopens the breaker; a long enough streak opens it."""
        key = (name, scope)
        if decision.probe:
            self.store.open(name, scope, now, expected="half_open")
            self._remember(key, BreakerRecord("open", now))
            return
        if not self._streak_complete(key, now):
            return
        current = self.record(name, scope)
        if current.state not in ("closed", ""):
            return  # already open or probing: nothing to change
        self.store.open(name, scope, now, expected="closed")
        self._remember(key, replace(current, state="open", opened_at=now, probe_until=None))

    def _streak_complete(self, key: BreakerKey, now: float) -> bool:
        with self._lock:
            streak = self._streaks.setdefault(key, deque(maxlen=self.policy.threshold))
            while streak and streak[0] < now - self.policy.window_s:
                streak.popleft()
            streak.append(now)
            if len(streak) < self.policy.threshold:
                return False
            streak.clear()
            return True


class InMemoryBreakerStore:
    """The shared items in one process (unit tests, tools): the same conditions as the DynamoDB adapter."""

    def __init__(self) -> None:
        self.records: dict[BreakerKey, BreakerRecord] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def read(self, name: str, scope: str) -> BreakerRecord:
        with self._lock:
            return self.records.get((name, scope), BreakerRecord())

    def _change(self, key: BreakerKey, holds: Callable[[BreakerRecord], bool], new: BreakerRecord) -> bool:
        with self._lock:
            self.writes += 1  # a refused conditional write is still a write
            if not holds(self.records.get(key, BreakerRecord())):
                return False
            self.records[key] = new
            return True

    def open(self, name: str, scope: str, now: float, *, expected: str) -> bool:
        return self._change((name, scope), lambda r: r.state == expected, BreakerRecord("open", now))

    def claim_probe(self, name: str, scope: str, now: float, lease_s: float, *, seen: BreakerRecord) -> bool:
        return self._change(
            (name, scope), lambda r: r == seen, BreakerRecord("half_open", seen.opened_at, now + lease_s)
        )

    def close(self, name: str, scope: str, now: float) -> bool:
        return self._change((name, scope), lambda r: r.state == "half_open", BreakerRecord())
