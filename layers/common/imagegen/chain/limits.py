"""Rate limits per provider (+ route) and key scope: a token bucket in a shared item, leased by each container in
blocks sized to its own demand, and emptied for everyone on that key when the provider says to wait (Retry-After,
rate-limit headers). A link without a token is "not yet", never a failure."""

from __future__ import annotations

import logging
import math
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
    """The shared bucket as stored: tokens left at `at` (epoch s), and no token at all before `blocked_until`."""

    tokens: float
    at: float
    blocked_until: float = 0.0


class RateStore(Protocol):
    """The shared buckets (imagegen.adapters.rate_store in DynamoDB)."""

    def read(self, name: str, scope: str) -> BucketRecord | None: ...

    def take(self, name: str, scope: str, *, seen: BucketRecord | None, left: BucketRecord) -> bool:
        """Write `left` if the bucket is still as seen (None: no item yet); False when someone else took first."""
        ...

    def block(self, name: str, scope: str, until: float, now: float) -> None:
        """No token for anyone before `until` (unless a later block is already stored)."""
        ...


@dataclass(frozen=True)
class Bucket:
    """A rate in requests per minute: refills at rpm/60 a second, holds 10 seconds' worth (at least one)."""

    rpm: float

    @property
    def rate(self) -> float:
        return self.rpm / 60.0

    @property
    def capacity(self) -> float:
        return max(1.0, self.rpm / 6.0)

    def available(self, record: BucketRecord | None, now: float) -> float:
        if record is None:
            return self.capacity
        if now < record.blocked_until:
            return 0.0
        since = max(record.at, record.blocked_until)
        return min(self.capacity, record.tokens + max(0.0, now - since) * self.rate)

    def next_token(self, record: BucketRecord | None, now: float) -> float:
        """When (epoch s) the next whole token is there."""
        if record is not None and now < record.blocked_until:
            return record.blocked_until
        return now + max(0.0, 1.0 - self.available(record, now)) / self.rate


@dataclass
class _Lease:
    tokens: int = 0
    expires: float = 0.0
    blocked_until: float = 0.0
    # Monotonic times of this container's recent asks: how many tokens its next lease should hold.
    asks: deque[float] = field(default_factory=lambda: deque(maxlen=256))


class MemoryRateStore:
    """The shared buckets in one process (unit tests, tools): the same conditions as the DynamoDB adapter."""

    def __init__(self) -> None:
        self.records: dict[LimitKey, BucketRecord] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def read(self, name: str, scope: str) -> BucketRecord | None:
        with self._lock:
            return self.records.get((name, scope))

    def take(self, name: str, scope: str, *, seen: BucketRecord | None, left: BucketRecord) -> bool:
        with self._lock:
            self.writes += 1
            if self.records.get((name, scope)) != seen:
                return False
            self.records[(name, scope)] = left
            return True

    def block(self, name: str, scope: str, until: float, now: float) -> None:
        with self._lock:
            self.writes += 1
            current = self.records.get((name, scope))
            if current is None or current.blocked_until < until:
                self.records[(name, scope)] = BucketRecord(0.0, now, until)


class RateLimits:
    """One container's leases on the shared buckets. Thread-safe."""

    # A lease holds what this container asked for in the last LEASE_S seconds, and lapses after that long unused.
    LEASE_S = 2.0
    DEMAND_WINDOW_S = 10.0
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
            recent = sum(1 for t in lease.asks if t > mono - self.DEMAND_WINDOW_S)
        want = max(1, min(int(bucket.capacity // 2) or 1, math.ceil(recent / self.DEMAND_WINDOW_S * self.LEASE_S)))
        return self._lease(key, bucket, want, now)

    def _lease(self, key: LimitKey, bucket: Bucket, want: int, now: float) -> float | None:
        for race in range(self.RACES):
            seen = self._record(key, fresh=race > 0)
            available = bucket.available(seen, now)
            if available < 1.0:
                return bucket.next_token(seen, now)
            granted = min(want, int(available))
            left = BucketRecord(available - granted, now, seen.blocked_until if seen else 0.0)
            if self.store.take(key[0], key[1], seen=seen, left=left):
                with self._lock:
                    self._records[key] = (self._monotonic() + self.cache_s, left)
                    lease = self._leases[key]
                    lease.tokens, lease.expires = granted - 1, self._monotonic() + self.LEASE_S
                return None
        # Others kept taking first: the bucket is busy; look again in a moment.
        return now + 1.0 / bucket.rate

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
            self._records[key] = (self._monotonic() + self.cache_s, BucketRecord(0.0, now, until))
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
