"""The scheduled function replayed from events/: the sweeper on stuck jobs, key checks, metrics, no secrets."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from imagegen.adapters.active_jobs import ActiveJobs
from imagegen.adapters.job_store import JobStore
from imagegen.ids import new_id
from imagegen.models import ErrorInfo, ImageRequest, JobRecord, utcnow

from tests.conftest import ROOT, Aws, FakeLambdaContext, load_function
from tests.integration.keys_and_health.conftest import KeysEnv

pytestmark = pytest.mark.integration

EVENT = json.loads((ROOT / "events" / "scheduled_event.json").read_text())


def _run_scheduled() -> dict[str, Any]:
    handler = load_function("scheduled").lambda_handler
    return handler(EVENT, FakeLambdaContext("ScheduledFunction", timeout_seconds=60))


def _store(aws: Aws) -> JobStore:
    return JobStore(aws.table, aws.client("dynamodb"), ttl_seconds=86400)


def _queued(aws: Aws, *, age_seconds: int = 0, **fields: Any) -> JobRecord:
    record = JobRecord(
        id=new_id("img"),
        status="queued",
        request=ImageRequest(prompt="stuck?", width=64, height=64),
        user_id="alice",
        created_at=utcnow() - timedelta(seconds=age_seconds),
        **fields,
    )
    return _store(aws).create(record)[0]


def _running_past_lease(aws: Aws, *, deliveries: int, age_seconds: int = 2000) -> JobRecord:
    job = _queued(aws, age_seconds=age_seconds)
    store = _store(aws)
    for n in range(deliveries):
        # Each claim is a delivery whose worker died: its lease ran out long ago.
        job = store.claim("alice", job.id, now=utcnow() - timedelta(seconds=1800 - n * 100), lease_seconds=60)
    return job


def _messages(aws: Aws) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in aws.receive()]


def test_given_running_job_past_its_lease_when_swept_then_requeued_and_the_worker_finishes_it(
    keys_env: KeysEnv, run_worker
):
    aws = keys_env.aws
    job = _running_past_lease(aws, deliveries=1)

    report = _run_scheduled()
    requeued = _store(aws).get("alice", job.id)
    messages = aws.receive()
    run_worker(messages)

    assert report["sweep"] == {"examined": 1, "requeued": 1, "failed": 0, "send_errors": 0}
    assert [json.loads(m["Body"]) for m in messages] == [{"kind": "generate", "user_id": "alice", "job_id": job.id}]
    assert (requeued.status, requeued.requeues) == ("running", 1)
    assert _store(aws).get("alice", job.id).status == "succeeded"


def test_given_running_job_past_lease_after_max_deliveries_when_swept_then_failed_stuck(keys_env: KeysEnv):
    aws = keys_env.aws
    job = _running_past_lease(aws, deliveries=3)

    report = _run_scheduled()

    failed = _store(aws).get("alice", job.id)
    assert report["sweep"] == {"examined": 1, "requeued": 0, "failed": 1, "send_errors": 0}
    assert failed.status == "failed"
    assert failed.error == ErrorInfo(
        code="stuck",
        message="the job did not finish: the worker stopped without finishing it on each of 3 deliveries",
        hint=f"retry it with POST /v1/images/{job.id}/retry",
    )
    assert failed.completed_at is not None
    assert _messages(aws) == []
    item = aws.client("dynamodb").get_item(
        TableName=aws.table, Key={"pk": {"S": "USER#alice"}, "sk": {"S": f"JOB#{job.id}"}}
    )["Item"]
    assert "gsi1pk" not in item and "lease_token" not in item


def test_given_queued_jobs_when_swept_then_only_the_stale_one_is_requeued(keys_env: KeysEnv):
    aws = keys_env.aws
    stale = _queued(aws, age_seconds=301)
    fresh = _queued(aws, age_seconds=10)

    report = _run_scheduled()

    assert report["sweep"] == {"examined": 2, "requeued": 1, "failed": 0, "send_errors": 0}
    assert _messages(aws) == [{"kind": "generate", "user_id": "alice", "job_id": stale.id}]
    assert (_store(aws).get("alice", stale.id).requeues, _store(aws).get("alice", fresh.id).requeues) == (1, 0)


def test_given_queued_job_requeued_max_times_when_swept_then_failed_stuck(keys_env: KeysEnv):
    job = _queued(keys_env.aws, age_seconds=1800, requeues=3)

    _run_scheduled()

    failed = _store(keys_env.aws).get("alice", job.id)
    assert (failed.status, failed.error.code) == ("failed", "stuck")  # type: ignore[union-attr]
    assert failed.error.message == (  # type: ignore[union-attr]
        "the job did not finish: it stayed queued; it was re-queued 3 times and no worker took it"
    )


def test_given_jobs_older_than_the_max_age_when_swept_then_failed_whatever_their_counters(keys_env: KeysEnv):
    aws = keys_env.aws
    queued = _queued(aws, age_seconds=3601)
    running = _running_past_lease(aws, deliveries=1, age_seconds=3601)  # its one worker died
    store = _store(aws)
    leased = _queued(aws, age_seconds=7200)
    store.claim("alice", leased.id, now=utcnow(), lease_seconds=600)  # a worker is on it right now
    young = _queued(aws, age_seconds=60)
    store.claim("alice", young.id, now=utcnow(), lease_seconds=600)

    report = _run_scheduled()

    assert report["sweep"] == {"examined": 3, "requeued": 0, "failed": 3, "send_errors": 0}
    for job, status in ((queued, "queued"), (running, "running"), (leased, "running")):
        failed = store.get("alice", job.id)
        assert failed.status == "failed"
        assert failed.error is not None and failed.error.code == "stuck"
        assert failed.error.message.startswith(f"the job did not finish: it was still {status} ")
        assert failed.error.message.endswith(" s after it was created")
    assert store.get("alice", young.id).status == "running"
    assert _messages(aws) == []


def test_given_live_lease_or_pending_check_not_due_when_swept_then_left_alone(keys_env: KeysEnv):
    aws = keys_env.aws
    job = _queued(aws, age_seconds=1800)
    _store(aws).claim("alice", job.id, now=utcnow(), lease_seconds=600)

    report = _run_scheduled()

    assert report["sweep"]["examined"] == 0
    assert _store(aws).get("alice", job.id).status == "running"
    assert _messages(aws) == []


def test_given_async_job_whose_check_message_vanished_when_swept_then_check_requeued_with_its_token(
    keys_env: KeysEnv,
):
    aws = keys_env.aws
    store = _store(aws)
    job = _running_past_lease(aws, deliveries=5)  # an async job counts a delivery per status check
    parked = job.model_copy(
        update={
            "chain_state": {"provider": "horde", "remote_id": "r-1"},
            "lease_token": "check-token-1",
            "lease_until": utcnow() - timedelta(seconds=30),
        }
    )
    store.park(parked, job.lease_token or "")

    report = _run_scheduled()

    assert report["sweep"]["requeued"] == 1
    assert _messages(aws) == [{"kind": "check", "user_id": "alice", "job_id": job.id, "check_token": "check-token-1"}]


def test_given_job_moved_on_after_the_sweeper_read_it_when_written_then_nothing_changes(keys_env: KeysEnv):
    aws = keys_env.aws
    store, active = _store(aws), ActiveJobs(aws.table, aws.client("dynamodb"))
    job = _running_past_lease(aws, deliveries=1)
    seen = active.due_active(utcnow(), 10)
    store.claim("alice", job.id, now=utcnow(), lease_seconds=60)  # a redelivery took it meanwhile

    requeued = active.mark_requeued(seen[0], now=utcnow())
    failed = active.fail_stuck(seen[0], ErrorInfo(code="stuck", message="x"), now=utcnow())

    assert (requeued, failed) == (False, None)
    current = store.get("alice", job.id)
    assert (current.status, current.requeues, current.deliveries) == ("running", 0, 2)


def test_given_keys_everywhere_when_scheduled_event_replayed_then_all_checked_metrics_emitted_and_no_key_logged(
    call_api, keys_env: KeysEnv, caplog, capsys
):
    caplog.set_level(logging.DEBUG, logger="imagegen")
    deployment_sf, deployment_tavily = "sk-DeploymentScheduled0001", "tvly-DeploymentScheduled0001"
    user_keys = {"alice": ("siliconflow", "sk-Al1ceScheduledKey00001"), "bob": ("horde", "B0bScheduledHordeKey")}
    keys_env.set(SILICONFLOW_API_KEY=deployment_sf, TAVILY_API_KEY=deployment_tavily, KEYCHECK_INTERVAL_SECONDS="0")
    keys_env.double.respond("invalid", key=deployment_tavily)
    for user, (provider, key) in user_keys.items():
        call_api("PUT", f"/v1/keys/{provider}", user=user, body={"api_key": key})
    keys_env.double.respond("invalid", key=user_keys["bob"][1])
    capsys.readouterr()

    report = _run_scheduled()

    assert report["keys"] == {
        "deployment": {
            "siliconflow": "ok",
            "huggingface": "not_configured",
            "fal": "not_configured",
            "replicate": "not_configured",
            "horde": "not_configured",
            "pollinations": "not_configured",
            "tavily": "invalid",
        },
        "user_checked": 2,
        "user_not_due": 0,
        "errors": 0,
        "stopped_early": False,
    }
    bob = call_api("GET", "/v1/keys", user="bob").body["items"][0]["health"]
    assert (bob["status"], bob["detail"]) == ("invalid", "AI Horde does not know this key (UserNotFound)")
    out = capsys.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    checks = sorted((m["provider"], m["source"], m["status"]) for m in emf if "KeyCheck" in m)
    assert checks == [
        ("horde", "user", "invalid"),
        ("siliconflow", "deployment", "ok"),
        ("siliconflow", "user", "ok"),
        ("tavily", "deployment", "invalid"),
    ]
    assert {m["_aws"]["CloudWatchMetrics"][0]["Namespace"] for m in emf} == {"imagegen-test"}
    text = caplog.text + out
    for secret in (deployment_sf, deployment_tavily, *(key for _, key in user_keys.values())):
        assert secret not in text
