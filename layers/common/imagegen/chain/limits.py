"""Rate limits per provider (+ route) and key scope: a token bucket in a shared item, leased by each container in
blocks sized to its own demand, and emptied for everyone on that key when the provider says to wait (Retry-After,
rate-limit headers). A link without a token is "not yet", never a failure.

The bucket is kept as GCRA's theoretical arrival time (`tat`), the generic cell-rate form of a token bucket: taking n
tokens is `tat = tat + n x interval` under a condition (the bucket holds them), so containers that lease at once never
undo each other's writes and a lease is one conditional write, never a read-modify-write race."""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)

LimitKey = tuple[str, str]


class RateLimitUnavailable(Exception):
    """The bucket could not be read or written; the chain lets the call go (the provider's own 429 still counts)."""


@dataclass(frozen=True)
class BucketRecord:
    """The shared bucket as stored: its theoretical arrival time (epoch s; None: never used, so full), and no token
    for anyone before `blocked_until` (a provider's own wait)."""

    tat: float | None = None
    blocked_until: float = 0.0


class RateStore(Protocol):
    """The shared buckets (imagegen.adapters.rate_store in DynamoDB)."""

    def read(self, name: str, scope: str) -> BucketRecord | None: ...

    def advance(self, name: str, scope: str, *, now: float, cost: float, tolerance: float, idle: bool) -> bool:
        """Take `cost` seconds of the bucket: idle, `tat = now + cost` if tat is absent or past; busy,
        `tat += cost` (from now if tat is absent) if tat is not past and stays within `tolerance` of now. Never while
        blocked. False when the condition failed."""
        ...

    def block(self, name: str, scope: str, until: float, now: float) -> None:
        """No token for anyone before `until` (unless a later block is already stored)."""
        ...


@dataclass(frozen=True)
class Bucket:
    """A rate in requests per minute: one token every 60/rpm s, and a burst of 10 seconds' worth (at least one)."""

    rpm: float

    @property
    def interval(self) -> float:
        return 60.0 / self.rpm

    @property
    def capacity(self) -> float:
        return max(1.0, self.rpm / 6.0)

    @property
    def tolerance(self) -> float:
        """How far ahead of now the arrival time may run: the burst."""
        return self.capacity * self.interval

    def available(self, record: BucketRecord | None, now: float) -> float:
        if record is not None and now < record.blocked_until:
            return 0.0
        if record is None or record.tat is None or record.tat <= now:
            return self.capacity
        return max(0.0, (now + self.tolerance - record.tat) / self.interval)

    def next_token(self, record: BucketRecord | None, now: float) -> float:
        """When (epoch s) the next whole token is there."""
        if record is not None and now < record.blocked_until:
            return record.blocked_until
        return now + max(0.0, 1.0 - self.available(record, now)) * self.interval


@dataclass
class _Lease:
    tokens: int = 0
    expires: float = 0.0
    blocked_until: float = 0.0
    # Monotonic times of this container's recent asks: how many tokens its next lease should hold.
    asks: deque[float] = field(default_factory=lambda: deque(maxlen=1024))
    # Races for a scarce bucket lost in a row: this container backs off from the next ones (see RateLimits._lease).
    losses: int = 0


class MemoryRateStore:
    """The shared buckets in one process (unit tests, tools): the same conditions as the DynamoDB adapter."""

    def __init__(self) -> None:
        self.records: dict[LimitKey, BucketRecord] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def read(self, name: str, scope: str) -> BucketRecord | None:
        with self._lock:
            return self.records.get((name, scope))

    def advance(self, name: str, scope: str, *, now: float, cost: float, tolerance: float, idle: bool) -> bool:
        with self._lock:
            self.writes += 1
            record = self.records.get((name, scope)) or BucketRecord()
            if now < record.blocked_until:
                return False
            if idle and (record.tat is None or record.tat < now):
                self.records[(name, scope)] = BucketRecord(now + cost, record.blocked_until)
                return True
            tat = now if record.tat is None else record.tat
            if not idle and now <= tat <= now + tolerance - cost:
                self.records[(name, scope)] = BucketRecord(tat + cost, record.blocked_until)
                return True
            return False

    def block(self, name: str, scope: str, until: float, now: float) -> None:
        with self._lock:
            self.writes += 1
            record = self.records.get((name, scope)) or BucketRecord()
            if record.blocked_until < until:
                self.records[(name, scope)] = BucketRecord(record.tat, until)


class RateLimits:
    """One container's leases on the shared buckets. Thread-safe."""

    # A container's first lease is FIRST_LEASE tokens: a burst of fresh containers (a batch landing on 50 of them)
    # must not take more than the bucket's burst between them before any of them knows its demand. After that a
    # lease holds twice what the container asked for in the last minute, and at least MIN_LEASE, but never more than
    # a quarter of what the bucket holds now, and lapses after LEASE_S. With room to spare a container making 8 calls
    # a minute or more (a Lambda container running 7 s jobs back to back) writes the bucket at most once in 40 of its
    # calls, one making 4 a minute once in 20 (0.05 writes per call), and at most once in LEASE_S/2 however busy;
    # near the limit every container takes one token at a time, so none hoards them.
    LEASE_S = 300.0
    DEMAND_S = 60.0
    FIRST_LEASE = 10
    MIN_LEASE = 40
    RACES = 3

    def __init__(
        self,
        store: RateStore | None = None,
        *,
        cache_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store or MemoryRateStore()
        self.cache_s = cache_s
        self._wall = wall_clock
        self._monotonic = monotonic
        self._leases: dict[LimitKey, _Lease] = {}
        self._rng = random.Random()  # noqa: S311 - back-off, not security
        self._records: dict[LimitKey, tuple[float, BucketRecord | None]] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str, scope: str, rpm: float, now: float) -> float | None:
        """None: a token is this call's; else the epoch second when one is expected (the link is "not yet")."""
        key, mono = (name, scope), self._monotonic()
        if rpm <= 0:
            # No limit of ours, but the provider's own word (a 429's Retry-After) still holds for everyone on the key.
            with self._lock:
                blocked = self._leases[key].blocked_until if key in self._leases else 0.0
            if now < blocked:
                return blocked
            shared = self._record(key, fresh=False)
            return shared.blocked_until if shared is not None and now < shared.blocked_until else None
        bucket = Bucket(rpm)
        with self._lock:
            lease = self._leases.setdefault(key, _Lease())
            lease.asks.append(mono)
            if now < lease.blocked_until:
                return lease.blocked_until
            if lease.tokens > 0 and mono < lease.expires:
                lease.tokens -= 1
                return None
            recent = sum(1 for t in lease.asks if t > mono - self.DEMAND_S)
            first = lease.expires == 0.0
        want = self.FIRST_LEASE if first else max(self.MIN_LEASE, 2 * recent)
        return self._lease(key, bucket, want, now)

    def _lease(self, key: LimitKey, bucket: Bucket, want: int, now: float) -> float | None:
        seen = self._record(key, fresh=False)
        for race in range(self.RACES):
            available = bucket.available(seen, now)
            if available < 1.0 or (race == 0 and available < want + 1):
                # Scarce, or too close to call from a cached read: look again before writing (a read is cheaper
                # than a refused conditional write, which DynamoDB bills as a write).
                seen = self._record(key, fresh=True)
                available = bucket.available(seen, now)
                if available < 1.0:
                    return bucket.next_token(seen, now)
            scarce = available < want
            if scarce and self._backs_off(key):
                return now + bucket.interval
            granted = max(1, min(want, int(available // 4) or 1, int(available)))
            # A new bucket is taken like a busy one (a commutative ADD), so fresh containers never race for it.
            idle = seen is not None and seen.tat is not None and seen.tat < now
            cost = granted * bucket.interval
            if self.store.advance(*key, now=now, cost=cost, tolerance=bucket.tolerance, idle=idle):
                start = now if idle or seen is None or seen.tat is None else seen.tat
                with self._lock:
                    # What this container knows: at least its own lease (others may have taken more meanwhile).
                    blocked = seen.blocked_until if seen else 0.0
                    self._records[key] = (self._monotonic() + self.cache_s, BucketRecord(start + cost, blocked))
                    lease = self._leases[key]
                    lease.tokens, lease.expires, lease.losses = granted - 1, self._monotonic() + self.LEASE_S, 0
                return None
            if scarce:
                with self._lock:
                    lease = self._leases[key]
                    lease.losses = min(lease.losses + 1, 8)
            seen = self._record(key, fresh=True)
        # The bucket changed under each try (taken empty, or another container's lease crossed idle and busy).
        return now + bucket.interval

    def _backs_off(self, key: LimitKey) -> bool:
        """Whether to let this scarce token go without trying: a refused conditional write is billed as a write, and
        at a scarce bucket every container that read the same free token races for it. After n lost races in a row a
        container tries with probability 2^-n (Ethernet's back-off), so the contenders for each token stay few."""
        with self._lock:
            losses = self._leases[key].losses
        return losses > 0 and self._rng.random() >= 0.5**losses

    def _record(self, key: LimitKey, *, fresh: bool) -> BucketRecord | None:
        with self._lock:
            cached = self._records.get(key)
        if cached is not None and not fresh and self._monotonic() < cached[0]:
            return cached[1]
        record = self.store.read(*key)
        with self._lock:
            self._records[key] = (self._monotonic() + self.cache_s, record)
        return record

    def block(self, name: str, scope: str, until: float, now: float) -> None:
        """The provider said to wait until `until`: nobody on this key calls it before then."""
        key = (name, scope)
        with self._lock:
            lease = self._leases.setdefault(key, _Lease())
            if until <= lease.blocked_until:
                return
            lease.blocked_until, lease.tokens = until, 0
            previous = self._records.get(key)
            tat = previous[1].tat if previous is not None and previous[1] is not None else None
            self._records[key] = (self._monotonic() + self.cache_s, BucketRecord(tat, until))
        self.store.block(name, scope, until, now)


# Rate-limit headers that say how long until requests are allowed again, when none remain.
_REMAINING = ("x-ratelimit-remaining-requests", "x-ratelimit-remaining", "ratelimit-remaining")
_RESET = ("x-ratelimit-reset-requests", "x-ratelimit-reset", "ratelimit-reset")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")
# RFC draft "RateLimit: "api";r=0;t=55" (Replicate's answers through Hugging Face's router).
_STRUCTURED = re.compile(r"\br=(\d+)\s*;\s*t=(\d+)")
# A reset value above this is an epoch second, not a number of seconds.
_EPOCH = 1_000_000_000


def reset_seconds(value: str, now: float) -> float | None:
    """A reset header as seconds from now: "30", "1.5", "6m0s", "250ms", or an epoch second."""
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        match = _DURATION.match(value)
        if match is None or not any(match.groups()):
            return None
        hours, minutes, seconds, millis = (float(part) if part else 0.0 for part in match.groups())
        return hours * 3600 + minutes * 60 + seconds + millis / 1000
    if not math.isfinite(number) or number < 0:
        return None
    return max(0.0, number - now) if number > _EPOCH else number


def exhausted_for(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the provider's rate-limit headers say to wait because no request remains; None when they do not."""
    structured = _STRUCTURED.search(headers.get("ratelimit", ""))
    if structured is not None and int(structured.group(1)) == 0:
        return float(structured.group(2))
    remaining = next((headers[name] for name in _REMAINING if name in headers), None)
    if remaining is None or remaining.strip() not in ("0", "0.0"):
        return None
    reset = next((headers[name] for name in _RESET if name in headers), None)
    return reset_seconds(reset, now) if reset is not None else None
