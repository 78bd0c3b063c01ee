"""Batches against moto's server: validation as a whole, parallel jobs, progress, retry, cancel, idempotency."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from imagegen import wiring
from imagegen.generation import ChainFailed, ChainOutcome, RunContext
from imagegen.jobs.batch_models import BatchCreate
from imagegen.models import Attempt, ErrorInfo, ImageRequest

from tests.conftest import Aws
from tests.doubles.generators import PlaceholderGenerator

pytestmark = pytest.mark.integration

SMALL = {"width": 64, "height": 64}


class FlakyGenerator(PlaceholderGenerator):
    """Fails the first run of every prompt that contains "flaky", as a provider outage would; later runs succeed."""

    def __init__(self) -> None:
        self.failed: set[str] = set()
        self.prompts: list[str] = []

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        self.prompts.append(request.prompt)
        if "flaky" in request.prompt and request.prompt not in self.failed:
            self.failed.add(request.prompt)
            attempt = Attempt(provider="placeholder", outcome="failed", error_class="server_error", status_code=503)
            return ChainFailed(
                error=ErrorInfo(code="all_providers_failed", message="every link failed"), attempts=[attempt]
            )
        return super().start(request, ctx)


@pytest.fixture
def flaky(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> FlakyGenerator:
    generator = FlakyGenerator()
    monkeypatch.setattr(wiring, "generator", lambda settings: generator)
    wiring.reset()
    return generator


def _job_items(aws: Aws) -> list[dict[str, Any]]:
    answer = aws.client("dynamodb").scan(
        TableName=aws.table,
        FilterExpression="begins_with(sk, :job)",
        ExpressionAttributeValues={":job": {"S": "JOB#"}},
        ConsistentRead=True,
    )
    return list(answer["Items"])


def _messages(aws: Aws) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while batch := aws.receive():
        out.extend(batch)
    return out


def _drain(run_worker) -> None:
    while run_worker()["received"]:
        pass


def test_given_bad_items_when_batch_created_then_422_names_each_item_field_and_nothing_is_created(call_api, aws: Aws):
    body = {
        "defaults": {"prompt": "a fox", "width": 64, "height": 64},
        "items": [{}, {"colour": "red"}, {"prompt": "ok"}, {"width": 4096}, {"prompt": ""}],
    }

    answer = call_api("POST", "/v1/batches", body=body)

    assert answer.status == 422
    assert answer.body["error"]["code"] == "validation_error"
    fields = [detail["field"] for detail in answer.body["error"]["details"]]
    assert fields == ["items.1.colour", "items.3.width", "items.4.prompt"]
    assert "items.3.width" in answer.body["error"]["message"]
    assert _job_items(aws) == []
    assert aws.receive() == []


def test_given_bad_default_when_batch_created_then_422_names_the_default_once(call_api):
    body = {"defaults": {"width": 10, "height": 64}, "items": [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}]}

    answer = call_api("POST", "/v1/batches", body=body)

    assert answer.status == 422
    assert [d["field"] for d in answer.body["error"]["details"]] == ["defaults.width"]


def test_given_no_items_or_too_many_when_batch_created_then_422_on_items(call_api):
    for items in ([], [{"prompt": "x"}] * 51):
        answer = call_api("POST", "/v1/batches", body={"defaults": SMALL, "items": items})
        assert answer.status == 422
        assert answer.body["error"]["details"][0]["field"] == "items"


def test_given_eight_items_when_created_then_eight_jobs_with_batch_id_and_all_enqueued(call_api, aws: Aws):
    body = {"defaults": {**SMALL, "seed": 7}, "items": [{"prompt": f"page {n}"} for n in range(8)]}

    answer = call_api("POST", "/v1/batches", body=body)

    assert answer.status == 202
    batch = answer.body
    assert batch["id"].startswith("bat_")
    assert answer.headers["Location"] == f"/api/v1/batches/{batch['id']}"  # the stage prefix, as deployed
    assert answer.headers["Retry-After"] == "2"
    assert (batch["status"], batch["progress"], batch["total"]) == ("running", "0/8", 8)
    assert batch["counts"] == {"queued": 8, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
    job_ids = [item["job_id"] for item in batch["items"]]
    assert [item["index"] for item in batch["items"]] == list(range(8))
    stored = {item["id"]["S"]: item for item in _job_items(aws)}
    assert set(stored) == set(job_ids)
    assert {item["batch_id"]["S"] for item in stored.values()} == {batch["id"]}
    for n, job_id in enumerate(job_ids):
        request = json.loads(stored[job_id]["request"]["S"])
        assert (request["prompt"], request["seed"], request["width"]) == (f"page {n}", 7, 64)
    bodies = [json.loads(m["Body"]) for m in _messages(aws)]
    assert sorted(b["job_id"] for b in bodies) == sorted(job_ids)
    assert {b["kind"] for b in bodies} == {"generate"}


def test_given_batch_when_worker_runs_then_progress_counts_and_items_in_order(call_api, run_worker, aws: Aws):
    body = {"defaults": SMALL, "items": [{"prompt": f"scene {n}"} for n in range(5)]}
    batch_id = call_api("POST", "/v1/batches", body=body).body["id"]
    messages = _messages(aws)
    run_worker(messages[:2])

    midway = call_api("GET", f"/v1/batches/{batch_id}").body
    run_worker(messages[2:])
    done = call_api("GET", f"/v1/batches/{batch_id}")

    assert (midway["status"], midway["progress"], midway["counts"]["succeeded"]) == ("running", "2/5", 2)
    assert done.status == 200
    assert "Retry-After" not in done.headers
    batch = done.body
    assert (batch["status"], batch["progress"], batch["completed_at"] is not None) == ("succeeded", "5/5", True)
    assert batch["counts"]["succeeded"] == 5
    for n, item in enumerate(batch["items"]):
        job = call_api("GET", f"/v1/images/{item['job_id']}").body
        assert (item["index"], job["request"]["prompt"], item["status"]) == (n, f"scene {n}", "succeeded")
        assert item["image"]["url"] == f"/v1/images/{item['job_id']}/content"
        assert job["batch_id"] == batch_id


def test_given_failed_items_when_retried_then_only_those_rerun_and_batch_succeeds(
    call_api, run_worker, aws: Aws, flaky: FlakyGenerator
):
    prompts = ["calm sea", "flaky storm", "harbour", "flaky lighthouse"]
    batch_id = call_api(
        "POST", "/v1/batches", body={"defaults": SMALL, "items": [{"prompt": p} for p in prompts]}
    ).body["id"]
    _drain(run_worker)
    before = call_api("GET", f"/v1/batches/{batch_id}").body

    retried = call_api("POST", f"/v1/batches/{batch_id}/retry")
    _drain(run_worker)
    after = call_api("GET", f"/v1/batches/{batch_id}").body

    assert (before["status"], before["progress"], before["counts"]["failed"]) == ("partial", "4/4", 2)
    assert retried.status == 202
    assert retried.body["retries"] == 1
    old_ids = [item["job_id"] for item in before["items"]]
    new_ids = [item["job_id"] for item in after["items"]]
    assert [old == new for old, new in zip(old_ids, new_ids, strict=True)] == [True, False, True, False]
    assert (after["status"], after["progress"], after["retries"]) == ("succeeded", "4/4", 1)
    # Only the two failed prompts ran again: six runs in all.
    assert sorted(flaky.prompts) == sorted([*prompts, "flaky storm", "flaky lighthouse"])
    assert call_api("GET", f"/v1/images/{old_ids[1]}").body["status"] == "failed"
    assert call_api("POST", f"/v1/batches/{batch_id}/retry").status == 409


def test_given_batch_partly_done_when_canceled_then_the_rest_is_canceled_and_never_runs(call_api, run_worker, aws: Aws):
    batch_id = call_api(
        "POST", "/v1/batches", body={"defaults": SMALL, "items": [{"prompt": f"p{n}"} for n in range(6)]}
    ).body["id"]
    messages = _messages(aws)
    run_worker(messages[:2])

    canceled = call_api("POST", f"/v1/batches/{batch_id}/cancel")
    again = call_api("POST", f"/v1/batches/{batch_id}/cancel")
    outcome = run_worker(messages[2:])
    final = call_api("GET", f"/v1/batches/{batch_id}").body

    assert canceled.status == 200
    assert canceled.body["counts"] == {"queued": 0, "running": 0, "succeeded": 2, "failed": 0, "canceled": 4}
    assert (canceled.body["status"], canceled.body["progress"]) == ("partial", "6/6")
    assert again.body["counts"] == canceled.body["counts"]
    assert outcome["batchItemFailures"] == []
    assert final["counts"] == canceled.body["counts"]
    assert int(aws.client("s3").list_objects_v2(Bucket=aws.bucket).get("KeyCount", 0)) == 2
    # Canceled items are not failures: there is nothing to retry.
    assert call_api("POST", f"/v1/batches/{batch_id}/retry").status == 409


def test_given_all_items_canceled_when_read_then_batch_is_canceled(call_api, aws: Aws):
    batch_id = call_api(
        "POST", "/v1/batches", body={"defaults": SMALL, "items": [{"prompt": "a"}, {"prompt": "b"}]}
    ).body["id"]

    batch = call_api("POST", f"/v1/batches/{batch_id}/cancel").body

    assert (batch["status"], batch["progress"]) == ("canceled", "2/2")


def test_given_alice_batch_when_bob_reads_retries_or_cancels_then_404(call_api):
    batch_id = call_api("POST", "/v1/batches", body={"defaults": SMALL, "items": [{"prompt": "mine"}]}).body["id"]

    for method, path in (
        ("GET", f"/v1/batches/{batch_id}"),
        ("POST", f"/v1/batches/{batch_id}/retry"),
        ("POST", f"/v1/batches/{batch_id}/cancel"),
        ("GET", "/v1/batches/bat_nope"),
    ):
        answer = call_api(method, path, user="bob")
        assert (path, answer.status, answer.body["error"]["code"]) == (path, 404, "not_found")
    assert call_api("GET", f"/v1/batches/{batch_id}").body["status"] == "running"


def test_given_same_idempotency_key_when_posted_twice_then_same_batch_and_one_set_of_jobs(call_api, aws: Aws):
    body = {"defaults": SMALL, "items": [{"prompt": "one"}, {"prompt": "two"}]}
    headers = {"Idempotency-Key": "story-42"}

    first = call_api("POST", "/v1/batches", body=body, headers=headers)
    second = call_api("POST", "/v1/batches", body=body, headers=headers)
    other = call_api("POST", "/v1/batches", body={**body, "items": [{"prompt": "three"}]}, headers=headers)

    assert (first.status, second.status) == (202, 202)
    assert second.body["id"] == first.body["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert [i["job_id"] for i in second.body["items"]] == [i["job_id"] for i in first.body["items"]]
    assert other.status == 409
    assert len(_job_items(aws)) == 2
    assert len(_messages(aws)) == 2


def test_given_racing_repeats_with_one_key_when_created_then_one_batch_and_no_stray_jobs(aws: Aws):
    service = wiring.batch_service()
    body = BatchCreate.model_validate({"defaults": SMALL, "items": [{"prompt": f"r{n}"} for n in range(3)]})
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        barrier.wait()
        batch, created = service.create("alice", body, "race-1")
        results.append((batch.id, created))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({batch_id for batch_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len(_job_items(aws)) == 3
    assert len(_messages(aws)) == 3


def _quota_used(aws: Aws, user: str = "alice") -> int:
    from imagegen.models import utcnow

    item = aws.client("dynamodb").get_item(
        TableName=aws.table, Key={"pk": {"S": f"USER#{user}"}, "sk": {"S": f"QUOTA#{utcnow().date().isoformat()}"}}
    )
    return int(item.get("Item", {}).get("used", {"N": "0"})["N"])


def test_given_racing_creates_with_one_key_and_different_bodies_when_the_loser_gets_409_then_it_leaves_nothing(
    call_api, aws: Aws, monkeypatch: pytest.MonkeyPatch
):
    # Given a daily quota, and a batch created under an idempotency key
    monkeypatch.setenv("DAILY_IMAGE_QUOTA", "10")
    wiring.reset()
    headers = {"Idempotency-Key": "story-7"}
    first = call_api(
        "POST", "/v1/batches", body={"defaults": SMALL, "items": [{"prompt": "a"}, {"prompt": "b"}]}, headers=headers
    )
    # When a racing create with another body under the same key got past the replay check before the first's marker
    # existed (as a concurrent request does), and loses the write
    from imagegen.adapters.batch_store import BatchStore

    monkeypatch.setattr(BatchStore, "find_replay", lambda self, user_id, key, digest: None)
    loser = call_api(
        "POST",
        "/v1/batches",
        body={"defaults": SMALL, "items": [{"prompt": f"x{n}"} for n in range(3)]},
        headers=headers,
    )

    # Then it answers 409, and none of its jobs is stored, queued or charged
    assert (first.status, loser.status) == (202, 409)
    assert loser.body["error"]["details"] == {"field": "Idempotency-Key"}
    first_jobs = {item["job_id"] for item in first.body["items"]}
    assert {item["id"]["S"] for item in _job_items(aws)} == first_jobs
    assert len(_messages(aws)) == 2
    assert _quota_used(aws) == 2
