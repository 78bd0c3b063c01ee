"""Key health over time: HF whoami-v2 checked seldom and its 429 ignored, other keys hourly, deployment records."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pytest
from imagegen import wiring
from imagegen.adapters.key_store import KeyStore
from imagegen.keys.health import CheckReport, HealthService
from imagegen.models import utcnow
from imagegen.settings import KeySettings

from tests.integration.keys_and_health.conftest import KeysEnv

pytestmark = pytest.mark.integration

HF_KEY = "hf_Al1ceHealthToken000000001"
SF_KEY = "sk-Al1ceHealthSiliconFlow0001"


def _settings() -> KeySettings:
    return KeySettings.from_env(os.environ)


def _service(at: datetime) -> HealthService:
    return wiring.health_service(_settings(), clock=lambda: at)


def _run(at: datetime, *, max_checks: int = 100) -> CheckReport:
    settings = _settings()
    return _service(at).run_checks(
        wiring.deployment_keys(settings), wiring.key_store(settings), max_checks=max_checks, deadline=float("inf")
    )


def _store() -> KeyStore:
    return wiring.key_store(_settings())


def test_given_hf_key_checked_when_schedule_runs_within_a_day_then_whoami_not_called_again(call_api, keys_env: KeysEnv):
    start = utcnow()
    call_api("PUT", "/v1/keys/huggingface", body={"api_key": HF_KEY})

    soon = _run(start + timedelta(hours=1))
    later = _run(start + timedelta(hours=25))

    assert (soon.user_checked, soon.user_not_due) == (0, 1)
    assert (later.user_checked, later.user_not_due) == (1, 0)
    assert keys_env.double.calls("huggingface") == 2


def test_given_hf_whoami_429_when_checked_then_previous_status_kept_and_next_try_a_day_later(
    call_api, keys_env: KeysEnv
):
    start = utcnow()
    put = call_api("PUT", "/v1/keys/huggingface", body={"api_key": HF_KEY}).body
    keys_env.double.respond("throttled", provider="huggingface")

    throttled_at = start + timedelta(hours=25)
    report = _run(throttled_at)
    after = _run(throttled_at + timedelta(hours=2))

    stored = _store().get("alice", "huggingface")
    assert stored is not None and stored.health is not None
    assert (stored.health.status, stored.health.detail) == ("ok", "user alice, token role fineGrained")
    assert stored.health.checked_at.isoformat() == put["health"]["checked_at"].replace("Z", "+00:00")
    assert stored.health.attempted_at == throttled_at
    assert (report.user_checked, after.user_checked, after.user_not_due) == (1, 0, 1)
    assert keys_env.double.calls("huggingface") == 2


def test_given_new_hf_key_when_whoami_429_then_unreachable_not_invalid(call_api, keys_env: KeysEnv):
    keys_env.double.respond("throttled", provider="huggingface")

    answer = call_api("PUT", "/v1/keys/huggingface", body={"api_key": HF_KEY})

    assert answer.body["health"]["status"] == "unreachable"
    assert answer.body["health"]["detail"] == "rate limited by the key-check endpoint (HTTP 429)"


def test_given_siliconflow_key_when_schedule_runs_then_rechecked_hourly(call_api, keys_env: KeysEnv):
    start = utcnow()
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": SF_KEY})
    keys_env.double.respond("out_of_credit", provider="siliconflow")

    early = _run(start + timedelta(minutes=30))
    due = _run(start + timedelta(minutes=61))

    assert (early.user_checked, due.user_checked) == (0, 1)
    stored = _store().get("alice", "siliconflow")
    assert stored is not None and stored.health is not None
    assert (stored.health.status, stored.health.detail) == ("out_of_credit", "balance -0.50")


def test_given_deployment_keys_when_checked_then_health_recorded_by_fingerprint_and_never_the_key(keys_env: KeysEnv):
    keys_env.set(SILICONFLOW_API_KEY=SF_KEY, HF_TOKEN=HF_KEY)
    start = utcnow()

    first = _run(start)
    second = _run(start + timedelta(hours=1))

    assert first.deployment == {
        "siliconflow": "ok",
        "huggingface": "ok",
        "fal": "not_configured",
        "replicate": "not_configured",
        "horde": "not_configured",
        "pollinations": "not_configured",
        "tavily": "not_configured",
    }
    assert second.deployment["huggingface"] == "ok"
    assert (keys_env.double.calls("siliconflow"), keys_env.double.calls("huggingface")) == (2, 1)
    items = keys_env.aws.client("dynamodb").query(
        TableName=keys_env.aws.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "HEALTH#deployment"}},
    )["Items"]
    assert [item["sk"]["S"] for item in items] == ["KEY#huggingface", "KEY#siliconflow"]
    assert all(len(item["key_fingerprint"]["S"]) == 16 for item in items)
    assert SF_KEY not in str(items) and HF_KEY not in str(items)


def test_given_more_due_keys_than_the_bound_when_run_then_stops_early(call_api, keys_env: KeysEnv):
    for user in ("alice", "bob", "carol"):
        call_api("PUT", "/v1/keys/siliconflow", user=user, body={"api_key": SF_KEY})

    report = _run(utcnow() + timedelta(hours=2), max_checks=2)

    assert (report.user_checked, report.stopped_early) == (2, True)
