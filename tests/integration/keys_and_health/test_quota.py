"""The daily image quota against moto: atomic reserve, 429 with the reset time, release on failure, refund once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from imagegen import wiring
from imagegen.adapters.job_store import JobStore
from imagegen.adapters.quota_store import DynamoQuotaStore
from imagegen.generation import ChainFailed, ChainOutcome, RunContext
from imagegen.jobs.quota import QuotaRefunds
from imagegen.models import Attempt, ErrorInfo, ImageRequest, utcnow

from tests.conftest import ROOT, FakeLambdaContext, load_function
from tests.doubles.generators import PlaceholderGenerator
from tests.integration.keys_and_health.conftest import KeysEnv

pytestmark = pytest.mark.integration


class FailingChain(PlaceholderGenerator):
    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        attempt = Attempt(provider="horde", outcome="failed", error_class="server_error", status_code=503)
        return ChainFailed(ErrorInfo(code="all_providers_failed", message="horde: 503"), [attempt])


def _used(keys_env: KeysEnv, user: str = "alice") -> int | None:
    item = (
        keys_env.aws.client("dynamodb")
        .get_item(
            TableName=keys_env.aws.table,
            Key={"pk": {"S": f"USER#{user}"}, "sk": {"S": f"QUOTA#{utcnow().date().isoformat()}"}},
        )
        .get("Item")
    )
    return int(item["used"]["N"]) if item else None


def _create(call_api, **kwargs: Any):
    return call_api("POST", "/v1/images", body={"prompt": "quota", "width": 64, "height": 64}, **kwargs)


def test_given_quota_of_two_when_third_image_created_then_429_with_reset_time_and_no_job(call_api, keys_env: KeysEnv):
    keys_env.set(DAILY_IMAGE_QUOTA="2")
    now = datetime.now(UTC)
    reset = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    statuses = [_create(call_api).status for _ in range(2)]
    refused = _create(call_api)

    assert statuses == [202, 202]
    assert refused.status == 429
    assert refused.body["error"] == {
        "code": "quota_exceeded",
        "message": f"daily image quota of 2 used up; it resets at {reset.isoformat()}",
        "hint": "try again after the reset",
        "details": {"limit": 2, "resets_at": reset.isoformat()},
    }
    assert 0 < (reset - now).total_seconds() - int(refused.headers["Retry-After"]) < 5
    assert len(call_api("GET", "/v1/images").body["items"]) == 2
    assert len(keys_env.aws.receive()) == 2
    assert _used(keys_env) == 2
    assert _create(call_api, user="bob").status == 202  # quotas are per user


def test_given_idempotent_replay_when_quota_spent_then_same_job_and_one_unit(call_api, keys_env: KeysEnv):
    keys_env.set(DAILY_IMAGE_QUOTA="1")

    first = _create(call_api, headers={"Idempotency-Key": "once"})
    replay = _create(call_api, headers={"Idempotency-Key": "once"})
    other = _create(call_api)

    assert (first.status, replay.status, other.status) == (202, 202, 429)
    assert replay.body["id"] == first.body["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert _used(keys_env) == 1


def test_given_create_racing_past_the_replay_check_when_it_loses_then_its_unit_is_released(
    call_api, keys_env: KeysEnv, monkeypatch
):
    keys_env.set(DAILY_IMAGE_QUOTA="5")
    first = _create(call_api, headers={"Idempotency-Key": "race-q"})
    # A racing create checked for a replay before the first create's marker existed.
    monkeypatch.setattr(JobStore, "find_replay", lambda self, user_id, key, digest: None)

    second = _create(call_api, headers={"Idempotency-Key": "race-q"})

    assert (first.status, second.status) == (202, 202)
    assert second.body["id"] == first.body["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _used(keys_env) == 1


def test_given_job_write_fails_when_created_then_no_unit_is_taken(call_api, keys_env: KeysEnv, monkeypatch):
    keys_env.set(DAILY_IMAGE_QUOTA="1")

    def broken_create(self: JobStore, record: Any, idempotency_key: str | None = None, charges: Any = ()) -> Any:
        raise ConnectionError("DynamoDB went away")

    monkeypatch.setattr(JobStore, "create", broken_create)
    answer = _create(call_api)
    monkeypatch.undo()

    assert (answer.status, answer.body["error"]["code"]) == (500, "internal_error")
    assert _used(keys_env) is None  # the units are taken in the job's own write: no job, no units


def test_given_failed_job_delivered_twice_and_reported_again_then_refunded_exactly_once(
    call_api, run_worker, keys_env: KeysEnv, monkeypatch
):
    keys_env.set(DAILY_IMAGE_QUOTA="3")
    doomed = _create(call_api).body["id"]
    message = keys_env.aws.receive()[0]
    _create(call_api)
    assert _used(keys_env) == 2
    monkeypatch.setattr(wiring, "generator", lambda settings: FailingChain())
    wiring.reset()

    run_worker([message, {**message, "MessageId": message["MessageId"] + "-dup"}], delete=False)
    run_worker([message], delete=False)
    failed = JobStore(keys_env.aws.table, keys_env.aws.client("dynamodb"), ttl_seconds=60).get("alice", doomed)
    refunds = QuotaRefunds(DynamoQuotaStore(keys_env.aws.table, keys_env.aws.client("dynamodb")))
    threads = [threading.Thread(target=refunds, args=(failed,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failed.status == "failed"
    assert failed.quota_day == utcnow().date().isoformat()
    assert _used(keys_env) == 1


def test_given_canceled_twice_when_quota_on_then_refunded_once(call_api, keys_env: KeysEnv):
    keys_env.set(DAILY_IMAGE_QUOTA="3")
    job_id = _create(call_api).body["id"]
    _create(call_api)

    first = call_api("POST", f"/v1/images/{job_id}/cancel")
    second = call_api("POST", f"/v1/images/{job_id}/cancel")

    assert (first.status, second.status) == (200, 200)
    assert _used(keys_env) == 1


def test_given_succeeded_job_when_quota_on_then_unit_kept(call_api, run_worker, keys_env: KeysEnv):
    keys_env.set(DAILY_IMAGE_QUOTA="3")
    job_id = _create(call_api).body["id"]

    run_worker()

    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "succeeded"
    assert _used(keys_env) == 1


def test_given_stuck_job_failed_by_sweeper_when_quota_on_then_refunded(call_api, keys_env: KeysEnv):
    keys_env.set(DAILY_IMAGE_QUOTA="3")
    job_id = _create(call_api).body["id"]
    store = JobStore(keys_env.aws.table, keys_env.aws.client("dynamodb"), ttl_seconds=60)
    for n in range(3):
        store.claim("alice", job_id, now=utcnow() - timedelta(seconds=1800 - n * 100), lease_seconds=60)
    event = json.loads((ROOT / "events" / "scheduled_event.json").read_text())

    load_function("scheduled").lambda_handler(event, FakeLambdaContext("ScheduledFunction", 60))
    load_function("scheduled").lambda_handler(event, FakeLambdaContext("ScheduledFunction", 60))

    assert call_api("GET", f"/v1/images/{job_id}").body["error"]["code"] == "stuck"
    assert _used(keys_env) == 0


def test_given_quota_off_when_created_then_no_counter(call_api, keys_env: KeysEnv):
    _create(call_api)

    assert _used(keys_env) is None


def test_given_quota_when_batches_created_then_one_unit_per_image_all_or_none(call_api, keys_env: KeysEnv):
    keys_env.set(DAILY_IMAGE_QUOTA="3")
    two = {"defaults": {"width": 64, "height": 64}, "items": [{"prompt": "one"}, {"prompt": "two"}]}

    first = call_api("POST", "/v1/batches", body=two)
    refused = call_api("POST", "/v1/batches", body=two)
    replay = call_api("POST", "/v1/batches", body=two, headers={"Idempotency-Key": "b1"})

    assert (first.status, refused.status, replay.status) == (202, 429, 429)
    assert refused.body["error"]["details"]["requested"] == 2
    assert refused.body["error"]["message"].startswith("daily image quota of 3 has no room for 2 more images")
    assert _used(keys_env) == 2
    assert _create(call_api).status == 202
    assert _used(keys_env) == 3


def test_given_batch_item_canceled_when_quota_on_then_that_unit_refunded(call_api, keys_env: KeysEnv):
    keys_env.set(DAILY_IMAGE_QUOTA="5")
    batch = call_api(
        "POST",
        "/v1/batches",
        body={"defaults": {"width": 64, "height": 64}, "items": [{"prompt": "a"}, {"prompt": "b"}]},
    ).body

    call_api("POST", f"/v1/batches/{batch['id']}/cancel")

    assert _used(keys_env) == 0


def test_given_idempotent_retry_racing_its_original_at_the_quota_limit_when_it_loses_then_it_gets_that_job(
    call_api, keys_env: KeysEnv, monkeypatch
):
    # Given a quota of one, and a create under an idempotency key that took the last unit
    keys_env.set(DAILY_IMAGE_QUOTA="1")
    first = _create(call_api, headers={"Idempotency-Key": "retry-me"})
    # When its retry got past the replay check before the first's marker existed (a client retrying a slow POST)
    monkeypatch.setattr(JobStore, "find_replay", lambda self, user_id, key, digest: None)
    retry = _create(call_api, headers={"Idempotency-Key": "retry-me"})

    # Then the retry answers with the first job, not 429, and the quota holds one unit
    assert (first.status, retry.status) == (202, 202)
    assert retry.body["id"] == first.body["id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert _used(keys_env) == 1


def test_given_a_per_minute_limit_when_exceeded_then_429_rate_limited_with_a_short_retry_after_and_no_job(
    call_api, keys_env: KeysEnv
):
    # Given a limit of three images a minute per user
    keys_env.set(IMAGES_PER_MINUTE="3")

    # When alice creates a two-image batch, one image, and then one more
    batch = call_api(
        "POST",
        "/v1/batches",
        body={"defaults": {"width": 64, "height": 64}, "items": [{"prompt": "a"}, {"prompt": "b"}]},
    )
    one = _create(call_api)
    refused = _create(call_api)

    # Then the fourth image is refused until the minute turns, and bob is not affected
    assert (batch.status, one.status, refused.status) == (202, 202, 429)
    assert refused.body["error"]["code"] == "rate_limited"
    assert refused.body["error"]["details"]["window"] == "minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert len(call_api("GET", "/v1/images").body["items"]) == 3
    assert _create(call_api, user="bob").status == 202


def test_given_a_50_item_batch_when_created_with_quota_then_every_job_and_unit_is_written(call_api, keys_env: KeysEnv):
    # Given a quota, and a batch larger than one emulator transaction (25 actions)
    keys_env.set(DAILY_IMAGE_QUOTA="60")
    body = {"defaults": {"width": 64, "height": 64}, "items": [{"prompt": f"p{n}"} for n in range(50)]}

    # When it is created
    answer = call_api("POST", "/v1/batches", body=body, headers={"Idempotency-Key": "fifty"})

    # Then all fifty jobs exist and fifty units are taken
    assert answer.status == 202
    batch = call_api("GET", f"/v1/batches/{answer.body['id']}").body
    assert batch["counts"]["queued"] == 50
    assert _used(keys_env) == 50
