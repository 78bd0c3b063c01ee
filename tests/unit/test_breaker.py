"""Breakers: opened by one container's evidence of sustained failure, never by random failure; written on state
changes only; read through a short cache; half-open once the cool-down is over."""

from __future__ import annotations

import random

import pytest
from imagegen.breaker import (
    CLOSED,
    BreakerDecision,
    BreakerPolicy,
    BreakerRecord,
    Breakers,
    BreakerStatus,
    InMemoryBreakerStore,
    breaker_status,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**policy: float) -> tuple[Breakers, InMemoryBreakerStore, Clock]:
    store, clock = InMemoryBreakerStore(), Clock()
    return Breakers(store, BreakerPolicy(**policy), monotonic=clock), store, clock  # type: ignore[arg-type]


def test_given_a_dead_provider_when_threshold_failures_come_in_a_row_then_it_opens_with_one_write() -> None:
    breakers, store, clock = make(cooldown_s=60)
    for _ in range(9):
        breakers.failed("siliconflow", "deployment:abc", clock.now, CLOSED)
    assert (store.read("siliconflow", "deployment:abc").state, store.writes) == ("closed", 0)

    breakers.failed("siliconflow", "deployment:abc", clock.now, CLOSED)

    assert (store.read("siliconflow", "deployment:abc"), store.writes) == (BreakerRecord("open", clock.now), 1)
    assert breakers.acquire("siliconflow", "deployment:abc", clock.now) == BreakerDecision(
        False, "open", until=clock.now + 60
    )


def test_given_successes_between_failures_when_counted_then_no_streak_and_no_write() -> None:
    breakers, store, clock = make(threshold=3)
    for _ in range(20):
        breakers.failed("hf", "keyless", clock.now, CLOSED)
        breakers.failed("hf", "keyless", clock.now, CLOSED)
        breakers.succeeded("hf", "keyless", clock.now, CLOSED)
    assert (store.read("hf", "keyless").state, store.writes) == ("closed", 0)


def test_given_failures_further_apart_than_the_window_when_counted_then_they_make_no_streak() -> None:
    breakers, store, clock = make(threshold=3, window_s=60)
    for _ in range(10):
        breakers.failed("hf", "keyless", clock.now, CLOSED)
        clock.now += 31  # two in any 60 s, never three
    assert store.read("hf", "keyless").state == "closed"


@pytest.mark.parametrize("seed", range(20))
def test_given_thirty_percent_random_failures_when_a_thousand_calls_are_made_then_the_default_never_opens(
    seed: int,
) -> None:
    # Given the default policy and a provider that fails 30 % of its calls at random
    breakers, store, clock = make()
    rng = random.Random(seed)
    # When 1,000 calls are made, 1 s apart
    for _ in range(1000):
        if rng.random() < 0.3:
            breakers.failed("siliconflow", "deployment:abc", clock.now, CLOSED)
        else:
            breakers.succeeded("siliconflow", "deployment:abc", clock.now, CLOSED)
        clock.now += 1
    # Then it never opened (10 in a row at 30 %: about once in 240,000 calls)
    assert (store.read("siliconflow", "deployment:abc").state, store.writes) == ("closed", 0)


def test_given_an_open_breaker_when_the_cool_down_ends_then_it_reads_half_open_and_one_probe_goes() -> None:
    breakers, store, clock = make(threshold=1, cooldown_s=60, probe_lease_s=120, cache_s=0)
    other, _, _ = make(threshold=1, cooldown_s=60, probe_lease_s=120, cache_s=0)
    other.store = store  # a second container on the same item
    breakers.failed("horde", "keyless", clock.now, CLOSED)
    clock.now += 61

    assert breakers.status("horde", "keyless", clock.now) == BreakerStatus("half_open")
    probe = breakers.acquire("horde", "keyless", clock.now)
    second = other.acquire("horde", "keyless", clock.now)

    assert (probe.allowed, probe.probe) == (True, True)
    assert (second.allowed, second.state, second.until) == (False, "half_open", clock.now + 10)
    assert other.status("horde", "keyless", clock.now) == BreakerStatus("half_open", clock.now + 120)
    breakers.succeeded("horde", "keyless", clock.now, probe)
    assert (store.read("horde", "keyless"), other.status("horde", "keyless", clock.now)) == (
        BreakerRecord(),
        BreakerStatus(),
    )


def test_given_a_cached_read_when_another_container_opens_the_breaker_then_it_is_seen_after_the_cache_expires() -> None:
    breakers, store, clock = make(cache_s=1.0)
    assert breakers.acquire("hf", "keyless", clock.now) == CLOSED
    store.open("hf", "keyless", clock.now, expected="closed")

    assert breakers.acquire("hf", "keyless", clock.now).allowed is True  # within the cache's second
    clock.now += 1.01
    assert breakers.acquire("hf", "keyless", clock.now).allowed is False


def test_given_records_when_read_then_one_reading_serves_every_reader() -> None:
    policy = BreakerPolicy(cooldown_s=60)
    assert breaker_status(BreakerRecord("open", 100.0), policy, 120.0) == BreakerStatus("open", 160.0)
    assert breaker_status(BreakerRecord("open", 100.0), policy, 160.0) == BreakerStatus("half_open")
    assert breaker_status(BreakerRecord("half_open", 100.0, 300.0), policy, 200.0) == BreakerStatus("half_open", 300.0)
    assert breaker_status(BreakerRecord("half_open", 100.0, 300.0), policy, 301.0) == BreakerStatus("half_open")
    assert breaker_status(BreakerRecord("weird"), policy, 0.0) == BreakerStatus()
