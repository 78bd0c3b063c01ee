"""Observed latencies per provider (+ route) and model: a small log-scale histogram per item, written as aggregates.

Each container keeps the successful call latencies it saw and adds them to the shared item in one write every
`flush_samples` samples or `flush_s` seconds; readers merge the recent time slots of the shared item (older slots
weigh less) with what this container has not written yet. The chain sets attempt timeouts and hedge delays from it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)

# Bucket i holds latencies in [BASE_S * RATIO**i, BASE_S * RATIO**(i + 1)): 50 ms to about 10 minutes in 43 buckets,
# each 25 % wider than the last, so any quantile read from them is within 25 % of the truth.
BASE_S = 0.05
RATIO = 1.25
BUCKETS = 43

SketchKey = tuple[str, str]


def bucket_of(seconds: float) -> int:
    if seconds <= BASE_S:
        return 0
    return min(BUCKETS - 1, int(math.log(seconds / BASE_S) / math.log(RATIO)))


@dataclass
class Histogram:
    """Weighted counts per bucket."""

    counts: dict[int, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.counts.values())

    def add(self, seconds: float, weight: float = 1.0) -> None:
        index = bucket_of(seconds)
        self.counts[index] = self.counts.get(index, 0.0) + weight

    def merge(self, other: Mapping[int, float], weight: float = 1.0) -> None:
        for index, count in other.items():
            self.counts[index] = self.counts.get(index, 0.0) + count * weight

    def quantile(self, q: float) -> float | None:
        """The q-quantile in seconds (log-interpolated inside its bucket); None when empty."""
        total = self.total
        if total <= 0:
            return None
        target, seen = q * total, 0.0
        for index in sorted(self.counts):
            count = self.counts[index]
            if count > 0 and seen + count >= target:
                within = min(1.0, max(0.0, (target - seen) / count))
                return BASE_S * RATIO ** (index + within)
            seen += count
        return BASE_S * RATIO ** (max(self.counts) + 1)


class LatencyStore(Protocol):
    """Slot items per sketch (imagegen.adapters.latency_store in DynamoDB)."""

    def read(self, name: str, model: str, since_slot: int) -> dict[int, dict[int, float]]:
        """Counts per bucket of each stored slot from since_slot on."""
        ...

    def add(self, name: str, model: str, slot: int, counts: Mapping[int, int]) -> None:
        """Add counts to one slot (a commutative ADD: concurrent writers never conflict)."""
        ...


@dataclass(frozen=True)
class LatencyPolicy:
    slot_s: int = 300
    # Slots read back (30 minutes); each slot weighs half as much as the one after it.
    slots: int = 6
    # Below this many (weighted) samples the chain keeps its configured timeouts and hedge delays.
    min_samples: float = 10.0
    # A container writes its samples when it has this many, or when the oldest is this old; while the shared sketch has
    # fewer than min_samples, every bootstrap_samples.
    flush_samples: int = 50
    flush_s: float = 300.0
    bootstrap_samples: int = 5
    cache_s: float = 2.0


@dataclass
class _Local:
    pending: dict[int, int] = field(default_factory=dict)
    pending_since: float | None = None
    # Written since the shared item was last read: counted until a read includes them.
    written: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LatencySummary:
    p50_s: float
    p95_s: float
    samples: float


class MemoryLatencyStore:
    """The shared slot items in one process (unit tests, tools)."""

    def __init__(self) -> None:
        self.slots: dict[SketchKey, dict[int, dict[int, float]]] = {}
        self.writes = 0

    def read(self, name: str, model: str, since_slot: int) -> dict[int, dict[int, float]]:
        stored = self.slots.get((name, model), {})
        return {slot: dict(counts) for slot, counts in stored.items() if slot >= since_slot}

    def add(self, name: str, model: str, slot: int, counts: Mapping[int, int]) -> None:
        self.writes += 1
        target = self.slots.setdefault((name, model), {}).setdefault(slot, {})
        for index, count in counts.items():
            target[index] = target.get(index, 0.0) + count


class LatencyBook:
    """One container's view of the shared sketches, and its samples not written yet. Thread-safe."""

    def __init__(
        self,
        store: LatencyStore | None = None,
        policy: LatencyPolicy | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store or MemoryLatencyStore()
        self.policy = policy or LatencyPolicy()
        self._wall = wall_clock
        self._monotonic = monotonic
        self._local: dict[SketchKey, _Local] = {}
        self._shared: dict[SketchKey, tuple[float, dict[int, dict[int, float]]]] = {}
        self._lock = threading.Lock()

    def _slot(self) -> int:
        return int(self._wall() // self.policy.slot_s)

    def record(self, name: str, model: str | None, seconds: float) -> None:
        """A successful call's latency; written to the shared item with the others once enough have gathered."""
        key = (name, model or "-")
        with self._lock:
            local = self._local.setdefault(key, _Local())
            index = bucket_of(seconds)
            local.pending[index] = local.pending.get(index, 0) + 1
            if local.pending_since is None:
                local.pending_since = self._monotonic()
            pending = sum(local.pending.values())
            due = (
                pending >= self.policy.flush_samples
                or self._monotonic() - local.pending_since >= self.policy.flush_s
                # A sketch still learning is shared sooner, so other containers learn from the first calls too.
                or (pending >= self.policy.bootstrap_samples and self._thin(key))
            )
        if due:
            self.flush(key)

    def _thin(self, key: SketchKey) -> bool:
        """Whether the shared sketch, as last read (never read: assumed so), has fewer than min_samples samples."""
        cached = self._shared.get(key)
        if cached is None:
            return True
        return sum(sum(counts.values()) for counts in cached[1].values()) < self.policy.min_samples

    def flush(self, key: SketchKey | None = None) -> None:
        """Write pending samples (of one sketch, or of all): one ADD per sketch."""
        keys = [key] if key is not None else list(self._local)
        for each in keys:
            with self._lock:
                local = self._local.get(each)
                if local is None or not local.pending:
                    continue
                counts, local.pending, local.pending_since = local.pending, {}, None
            try:
                self.store.add(each[0], each[1], self._slot(), counts)
            except Exception as exc:  # noqa: BLE001 - a lost flush only delays learning; never fails a job
                logger.warning("latency flush failed", extra={"sketch": each[0], "error": type(exc).__name__})
                continue
            with self._lock:
                for index, count in counts.items():
                    local.written[index] = local.written.get(index, 0) + count

    def histogram(self, name: str, model: str | None) -> Histogram:
        key = (name, model or "-")
        slots = self._shared_slots(key)
        now_slot = self._slot()
        merged = Histogram()
        for slot, counts in slots.items():
            merged.merge(counts, 0.5 ** max(0, now_slot - slot))
        with self._lock:
            local = self._local.get(key)
            if local is not None:
                merged.merge({i: float(c) for i, c in local.pending.items()})
                merged.merge({i: float(c) for i, c in local.written.items()})
        return merged

    def _shared_slots(self, key: SketchKey) -> dict[int, dict[int, float]]:
        with self._lock:
            cached = self._shared.get(key)
        if cached is not None and self._monotonic() < cached[0]:
            return cached[1]
        try:
            slots = self.store.read(key[0], key[1], self._slot() - self.policy.slots + 1)
        except Exception as exc:  # noqa: BLE001 - without the shared view the container uses its own samples
            logger.warning("latency read failed", extra={"sketch": key[0], "error": type(exc).__name__})
            slots = cached[1] if cached is not None else {}
        else:
            with self._lock:
                local = self._local.get(key)
                if local is not None:
                    local.written = {}  # the read includes what this container wrote
        with self._lock:
            self._shared[key] = (self._monotonic() + self.policy.cache_s, slots)
        return slots

    def quantile(self, name: str, model: str | None, q: float) -> float | None:
        """The observed q-quantile in seconds, or None while there are fewer than min_samples samples."""
        histogram = self.histogram(name, model)
        if histogram.total < self.policy.min_samples:
            return None
        return histogram.quantile(q)

    def summary(self, names: list[tuple[str, str | None]]) -> LatencySummary | None:
        """p50 and p95 over several sketches (a provider's models), or None while there are too few samples."""
        merged = Histogram()
        for name, model in names:
            merged.merge(self.histogram(name, model).counts)
        p50, p95 = merged.quantile(0.5), merged.quantile(0.95)
        if merged.total < self.policy.min_samples or p50 is None or p95 is None:
            return None
        return LatencySummary(p50, p95, merged.total)
