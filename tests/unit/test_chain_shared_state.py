"""The chain's shared state, in memory: latency sketches, rate-limit buckets and their leases, rate-limit headers,
the hedge budget and this container's suspects."""

from __future__ import annotations

import math
import random

import pytest
from imagegen.chain.latency import BASE_S, RATIO, Histogram, LatencyBook, LatencyPolicy, MemoryLatencyStore, bucket_of
from imagegen.chain.limits import Bucket, BucketRecord, MemoryRateStore, RateLimits, exhausted_for, reset_seconds
from imagegen.chain.memory import HedgeBudget, Suspects


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- latency sketches ------------------------------------------------------------------------------------------------


def test_given_latencies_when_bucketed_then_each_lands_in_its_log_scale_bucket() -> None:
    assert bucket_of(0.01) == 0
    assert bucket_of(1.0) == math.floor(math.log(1.0 / BASE_S) / math.log(RATIO))
    assert bucket_of(10_000.0) == 42


def test_given_a_histogram_when_quantiles_are_read_then_they_are_within_a_bucket_of_the_truth() -> None:
    # Given 90 answers at about 1 s and 10 at about 8 s
    histogram = Histogram()
    for _ in range(90):
        histogram.add(1.0)
    for _ in range(10):
        histogram.add(8.0)
    # Then the median is near 1 s and the p95 near 8 s (each within one 25 % bucket)
    p50, p95 = histogram.quantile(0.5), histogram.quantile(0.95)
    assert p50 is not None and 1.0 / RATIO <= p50 <= 1.0 * RATIO
    assert p95 is not None and 8.0 / RATIO <= p95 <= 8.0 * RATIO
    assert Histogram().quantile(0.5) is None


def test_given_samples_when_fewer_than_the_minimum_then_no_quantile_and_when_enough_then_one() -> None:
    clock = Clock()
    book = LatencyBook(MemoryLatencyStore(), LatencyPolicy(min_samples=10), wall_clock=clock, monotonic=clock)
    for _ in range(9):
        book.record("siliconflow", "kolors", 2.0)
    assert book.quantile("siliconflow", "kolors", 0.95) is None
    book.record("siliconflow", "kolors", 2.0)
    p95 = book.quantile("siliconflow", "kolors", 0.95)
    assert p95 is not None and 2.0 / RATIO <= p95 <= 2.0 * RATIO
    assert book.quantile("siliconflow", "other-model", 0.95) is None


def test_given_one_container_flushing_when_another_reads_then_it_sees_the_aggregate_and_writes_are_few() -> None:
    # Given two containers on one store, the first flushing every 20 samples
    clock, store = Clock(), MemoryLatencyStore()
    policy = LatencyPolicy(min_samples=10, flush_samples=20, cache_s=0)
    writer = LatencyBook(store, policy, wall_clock=clock, monotonic=clock)
    reader = LatencyBook(store, policy, wall_clock=clock, monotonic=clock)
    # When the first makes 100 calls, reading the sketch before each (as the chain does for its timeout)
    for _ in range(100):
        writer.quantile("huggingface/fal-ai", "dev", 0.95)
        writer.record("huggingface/fal-ai", "dev", 3.0)
    # Then it wrote every 5 samples while the shared sketch had fewer than 10 (twice), then every 20 (at 30, 50, 70
    # and 90 samples): 6 writes for 100 calls; the other container sees all 90 written, and the writer all 100
    assert store.writes == 6
    assert reader.histogram("huggingface/fal-ai", "dev").total == pytest.approx(90)
    writer.flush()
    assert reader.histogram("huggingface/fal-ai", "dev").total == pytest.approx(100)
    # And the writer counts its own samples once, not twice (before and after its next read)
    assert writer.histogram("huggingface/fal-ai", "dev").total == pytest.approx(100)


def test_given_samples_in_older_slots_when_read_then_they_weigh_half_per_slot_of_age() -> None:
    clock, store = Clock(), MemoryLatencyStore()
    policy = LatencyPolicy(slot_s=300, min_samples=1, flush_samples=1, cache_s=0)
    book = LatencyBook(store, policy, wall_clock=clock, monotonic=clock)
    for _ in range(8):
        book.record("horde", None, 1.0)
    clock.now += 600  # two slots later
    assert LatencyBook(store, policy, wall_clock=clock, monotonic=clock).histogram("horde", None).total == 2.0


def test_given_a_quiet_container_when_its_oldest_sample_is_old_enough_then_it_is_written_anyway() -> None:
    clock, store = Clock(), MemoryLatencyStore()
    book = LatencyBook(store, LatencyPolicy(flush_samples=50, flush_s=300), wall_clock=clock, monotonic=clock)
    book.record("siliconflow", "kolors", 1.0)
    clock.now += 301
    book.record("siliconflow", "kolors", 1.0)
    assert store.writes == 1


# --- rate limits -----------------------------------------------------------------------------------------------------


def test_given_a_bucket_when_read_then_it_refills_at_rpm_per_minute_up_to_ten_seconds_worth() -> None:
    bucket = Bucket(rpm=60)
    assert (bucket.interval, bucket.capacity, bucket.tolerance) == (1.0, 10.0, 10.0)
    assert bucket.available(None, 100.0) == 10.0
    # Ten tokens taken at t=100 (the arrival time ran 10 s ahead): 3.5 back at 103.5, all ten back at 110
    assert bucket.available(BucketRecord(tat=110.0), 103.5) == 3.5
    assert bucket.available(BucketRecord(tat=110.0), 1000.0) == 10.0
    assert bucket.available(BucketRecord(tat=100.0, blocked_until=110.0), 105.0) == 0.0
    assert bucket.next_token(BucketRecord(tat=110.5), 100.0) == 101.0
    assert Bucket(rpm=2).capacity == 1.0


def test_given_an_rpm_when_calls_come_faster_then_the_extra_ones_are_told_when_to_come_back() -> None:
    # Given 6 calls a minute (a burst of one), one container
    clock, store = Clock(), MemoryRateStore()
    limits = RateLimits(store, cache_s=1.0, wall_clock=clock, monotonic=clock)
    # When two calls come at once
    assert limits.acquire("siliconflow", "user:alice:v1", 6, clock.now) is None
    later = limits.acquire("siliconflow", "user:alice:v1", 6, clock.now)
    # Then the second is "not yet", until the next token in 10 s
    assert later == pytest.approx(clock.now + 10.0)
    clock.now += 10.0
    assert limits.acquire("siliconflow", "user:alice:v1", 6, clock.now) is None


def test_given_two_keys_when_one_is_exhausted_then_the_other_is_not_touched() -> None:
    clock = Clock()
    limits = RateLimits(MemoryRateStore(), wall_clock=clock, monotonic=clock)
    for _ in range(3):
        limits.acquire("siliconflow", "user:alice:v1", 6, clock.now)
    assert limits.acquire("siliconflow", "user:alice:v1", 6, clock.now) is not None
    assert limits.acquire("siliconflow", "user:bob:v7", 6, clock.now) is None


def test_given_no_rpm_when_acquired_then_nothing_is_written_and_only_a_provider_block_holds_calls_back() -> None:
    clock, store = Clock(), MemoryRateStore()
    limits = RateLimits(store, cache_s=0, wall_clock=clock, monotonic=clock)
    assert [limits.acquire("fal", "deployment:x", 0, clock.now) for _ in range(100)] == [None] * 100
    assert (store.records, store.writes) == ({}, 0)
    store.block("fal", "deployment:x", clock.now + 5, clock.now)  # another container met a Retry-After
    assert limits.acquire("fal", "deployment:x", 0, clock.now) == clock.now + 5


def test_given_a_busy_container_when_it_leases_then_it_takes_tokens_in_blocks_with_few_writes() -> None:
    # Given 600 calls a minute (Replicate's create limit) and a container asking 10 times a second
    clock, store = Clock(), MemoryRateStore()
    limits = RateLimits(store, wall_clock=clock, monotonic=clock)
    granted = 0
    for _ in range(200):
        granted += limits.acquire("replicate", "deployment:x", 600, clock.now) is None
        clock.now += 0.1
    # Then every call got a token, for about one write per 20 calls once its demand is known
    assert granted == 200
    assert store.writes <= 30


def test_given_containers_with_room_to_spare_when_they_lease_then_the_bucket_is_written_once_in_20_calls() -> None:
    # Given 6,000 calls a minute, and a quiet container (one call every 15 s) beside a busy one (five a second)
    clock, store = Clock(), MemoryRateStore()
    quiet = RateLimits(store, wall_clock=clock, monotonic=clock)
    busy = RateLimits(store, wall_clock=clock, monotonic=clock)
    calls = 0
    # When both run for an hour
    for tick in range(3600 * 5):
        if tick % 75 == 0:
            assert quiet.acquire("siliconflow", "deployment:x", 6000, clock.now) is None
            calls += 1
        assert busy.acquire("siliconflow", "deployment:x", 6000, clock.now) is None
        calls += 1
        clock.now += 0.2
    # Then every call had a token; the shared item took one write per 20 calls of the quiet one, and one per 200 or
    # more of the busy one (its leases are two minutes of its demand, but at most a quarter of the bucket: 250)
    assert calls == 18_000 + 240
    assert store.writes <= 240 / 20 + 18_000 / 200


class BeatenToIt(MemoryRateStore):
    """Another container takes the free token between this one's read and its write, every time."""

    def advance(self, name: str, scope: str, *, now: float, cost: float, tolerance: float, idle: bool) -> bool:
        record = self.records.get((name, scope)) or BucketRecord()
        self.records[(name, scope)] = BucketRecord(max(now, record.tat or now) + tolerance, record.blocked_until)
        return super().advance(name, scope, now=now, cost=cost, tolerance=tolerance, idle=idle)


def test_given_a_scarce_bucket_when_a_container_keeps_losing_the_race_then_it_backs_off_from_writing() -> None:
    # Given one token every 10 s, and a container always beaten to it by another one
    clock, store = Clock(), BeatenToIt()
    limits = RateLimits(store, cache_s=0, wall_clock=clock, monotonic=clock)
    limits._rng = random.Random(15)
    # When it asks once every token's time, 100 times
    answers = []
    for _ in range(100):
        answers.append(limits.acquire("siliconflow", "deployment:x", 6, clock.now))
        clock.now += 10.0
    # Then it never got a token ("not yet", never a failure), and after its first lost races it tried seldom: a
    # refused conditional write is billed as a write
    assert all(answer is not None and answer > 0 for answer in answers)
    assert store.writes <= 15


def test_given_a_retry_after_when_blocked_then_every_container_on_the_key_waits_until_then() -> None:
    clock, store = Clock(), MemoryRateStore()
    first = RateLimits(store, cache_s=0, wall_clock=clock, monotonic=clock)
    second = RateLimits(store, cache_s=0, wall_clock=clock, monotonic=clock)
    first.block("siliconflow", "deployment:x", clock.now + 30, clock.now)
    assert first.acquire("siliconflow", "deployment:x", 600, clock.now) == clock.now + 30
    assert second.acquire("siliconflow", "deployment:x", 600, clock.now) == clock.now + 30
    assert second.acquire("siliconflow", "deployment:y", 600, clock.now) is None
    clock.now += 31
    assert second.acquire("siliconflow", "deployment:x", 600, clock.now) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1.5"}, 1.5),
        ({"ratelimit-remaining": "0", "ratelimit-reset": "250ms"}, 0.25),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1800000030"}, 30.0),
        ({"ratelimit": '"api";r=0;t=55'}, 55.0),
        ({"ratelimit": '"api";r=3;t=55'}, None),
        ({"x-ratelimit-remaining": "4", "x-ratelimit-reset": "30"}, None),
        ({"x-ratelimit-remaining": "0"}, None),
        ({}, None),
    ],
)
def test_given_rate_limit_headers_when_read_then_only_exhausted_ones_say_how_long_to_wait(
    headers: dict[str, str], expected: float | None
) -> None:
    assert exhausted_for(headers, 1_800_000_000.0) == expected


def test_given_bad_reset_values_when_read_then_they_mean_nothing() -> None:
    assert reset_seconds("soon", 0.0) is None
    assert reset_seconds("-3", 0.0) is None
    assert reset_seconds("nan", 0.0) is None


# --- hedge budget and suspects ---------------------------------------------------------------------------------------


def test_given_a_five_percent_budget_when_calls_accumulate_then_one_hedge_per_twenty_calls() -> None:
    clock = Clock()
    budget = HedgeBudget(0.05, window_s=600, monotonic=clock)
    assert budget.try_spend() is False  # a fresh container has earned nothing yet
    for _ in range(19):
        budget.called()
    assert budget.try_spend() is False
    budget.called()
    assert budget.try_spend() is True
    assert budget.try_spend() is False
    for _ in range(20):
        budget.called()
    assert budget.try_spend() is True
    clock.now += 601  # the window moved past all of it
    assert (budget.counts, budget.try_spend()) == ((0, 0), False)


def test_given_a_suspect_when_time_passes_or_it_answers_then_it_is_no_longer_one() -> None:
    clock = Clock()
    suspects = Suspects(30, monotonic=clock)
    suspects.suspect("siliconflow")
    suspects.suspect("huggingface/fal-ai")
    assert suspects.current() == {"siliconflow", "huggingface/fal-ai"}
    suspects.cleared("huggingface/fal-ai")
    clock.now += 31
    assert suspects.current() == frozenset()
