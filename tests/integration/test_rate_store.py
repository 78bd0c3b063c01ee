"""Rate-limit buckets on moto's DynamoDB: the conditional writes the chain's leases make, as DynamoDB evaluates them."""

from __future__ import annotations

import pytest
from imagegen.adapters.rate_store import DynamoRateStore
from imagegen.chain.limits import RateLimits

from tests.conftest import Aws

pytestmark = pytest.mark.integration

NOW = 1_800_000_000.0


def _store(aws: Aws) -> DynamoRateStore:
    return DynamoRateStore(aws.table, aws.client("dynamodb"))


def test_given_a_new_bucket_when_two_containers_lease_it_at_once_then_both_leases_are_added(aws: Aws):
    # Given a bucket nobody has used, and two containers that both read it as new
    store = _store(aws)
    # When both take 0.5 s of it as a new bucket (neither read the other's write)
    first = store.advance("siliconflow", "deployment:x", now=NOW, cost=0.5, tolerance=10, idle=False)
    second = store.advance("siliconflow", "deployment:x", now=NOW, cost=0.5, tolerance=10, idle=False)
    # Then both writes hold, and the arrival time counts both
    assert (first, second) == (True, True)
    record = store.read("siliconflow", "deployment:x")
    assert record is not None and record.tat == pytest.approx(NOW + 1.0)


def test_given_a_bucket_when_taken_beyond_its_burst_or_guessed_idle_wrongly_then_the_write_is_refused(aws: Aws):
    store = _store(aws)
    assert store.advance("siliconflow", "deployment:x", now=NOW, cost=9.5, tolerance=10, idle=False)
    # Beyond the burst: refused, the bucket unchanged
    assert not store.advance("siliconflow", "deployment:x", now=NOW, cost=1.0, tolerance=10, idle=False)
    # A container that thought it idle (a stale read): refused, so it reads again
    assert not store.advance("siliconflow", "deployment:x", now=NOW + 1, cost=1.0, tolerance=10, idle=True)
    record = store.read("siliconflow", "deployment:x")
    assert record is not None and record.tat == pytest.approx(NOW + 9.5)
    # Once the arrival time is past, an idle lease starts it from now
    assert store.advance("siliconflow", "deployment:x", now=NOW + 20, cost=1.0, tolerance=10, idle=True)
    record = store.read("siliconflow", "deployment:x")
    assert record is not None and record.tat == pytest.approx(NOW + 21)


def test_given_a_provider_wait_when_blocked_then_no_lease_until_then_and_other_keys_are_untouched(aws: Aws):
    store = _store(aws)
    store.block("siliconflow", "user:alice:1", NOW + 30, NOW)
    assert not store.advance("siliconflow", "user:alice:1", now=NOW + 1, cost=1.0, tolerance=10, idle=False)
    assert store.advance("siliconflow", "user:bob:1", now=NOW + 1, cost=1.0, tolerance=10, idle=False)
    assert store.advance("siliconflow", "user:alice:1", now=NOW + 31, cost=1.0, tolerance=10, idle=False)


def test_given_containers_sharing_a_table_when_they_lease_then_no_more_than_the_bucket_holds_is_granted(aws: Aws):
    # Given 60 calls a minute (a burst of 10) and three containers on the same table, their clocks at the same time
    clock = [NOW]
    boxes = [RateLimits(_store(aws), cache_s=0, wall_clock=lambda: clock[0], monotonic=lambda: clock[0]) for _ in "abc"]
    # When each asks 10 times at once
    granted = sum(box.acquire("horde", "keyless", 60, clock[0]) is None for box in boxes for _ in range(10))
    # Then the burst is all they get between them
    assert granted == 10
