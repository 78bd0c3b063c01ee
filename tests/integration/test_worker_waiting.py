"""Wait, don't fail, on moto's server: a job whose providers are all cooling goes back to queued with `waiting` and a
delayed message, the sweeper leaves it be, and the next run picks up where the first left off."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from imagegen import wiring
from imagegen.adapters.active_jobs import ActiveJobs
from imagegen.generation import ChainOutcome, ChainWaiting, RunContext
from imagegen.jobs.sweeper import SweepConfig, Sweeper
from imagegen.jobs.work import Worker, WorkerConfig
from imagegen.messages import CheckMessage, GenerateMessage, read_job_message
from imagegen.models import Attempt, ImageRequest, utcnow
from imagegen.settings import WorkerSettings

from tests.conftest import Aws
from tests.doubles.generators import PlaceholderGenerator
from tests.doubles.keys import SF_KEY
from tests.doubles.server import Reply
from tests.doubles.siliconflow import SiliconFlowDouble

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration

COOLING = Attempt(provider="siliconflow", model="kolors", outcome="skipped", error_class="breaker_open")


class CoolingThenServing(PlaceholderGenerator):
    """Every provider cooling down for the first `waits` runs (until `until_s` from now), then the placeholder."""

    def __init__(self, waits: int = 1, until_s: float = 30.0) -> None:
        self.waits = waits
        self.until_s = until_s
        self.contexts: list[RunContext] = []

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        self.contexts.append(ctx)
        if self.waits > 0:
            self.waits -= 1
            return ChainWaiting("breaker_open", time.time() + self.until_s, [*ctx.earlier, COOLING])
        served = super().start(request, ctx)
        return type(served)(image=served.image, attempts=[*ctx.earlier, *served.attempts])  # type: ignore[call-arg]


def _settings(aws: Aws) -> WorkerSettings:
    environ = {"TABLE_NAME": aws.table, "BUCKET_NAME": aws.bucket, "QUEUE_URL": aws.queue_url}
    return WorkerSettings.from_env({**environ, "AWS_ENDPOINT_URL": aws.endpoint})


def _worker(aws: Aws, generator: Any) -> Worker:
    store, queue, images = wiring._job_adapters(_settings(aws))
    config = WorkerConfig(lease_seconds=60, deadline_seconds=30, max_receive_count=3, max_age_seconds=3600)
    return Worker(store, images, queue, generator, config)


def _delayed(aws: Aws) -> int:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def test_given_every_provider_cooling_when_the_job_runs_then_it_waits_queued_and_later_succeeds(call_api, aws: Aws):
    # Given a job, and a chain whose providers are all cooling down for 30 s on its first run
    job_id = call_api("POST", "/v1/images", body={"prompt": "patience", "width": 64, "height": 64}).body["id"]
    body = aws.receive()[0]["Body"]
    generator = CoolingThenServing(waits=1, until_s=30)
    worker = _worker(aws, generator)

    # When the worker runs it
    worker.handle(read_job_message(body), receive_count=1, remaining_seconds=60)

    # Then the job is queued again, says what it waits for and until when, and a delayed message is on its way
    job = call_api("GET", f"/v1/images/{job_id}").body
    assert (job["status"], job["waiting"]["reason"], job["error"]) == ("queued", "breaker_open", None)
    assert [(a["provider"], a["outcome"]) for a in job["attempts"]] == [("siliconflow", "skipped")]
    assert _delayed(aws) == 1
    # And the run knew how long the job may still wait: created_at + 3600 s minus a run (30 s) and its slack (30 s)
    created = job["created_at"]
    assert generator.contexts[0].latest_start == pytest.approx(
        utcnow().fromisoformat(created).timestamp() + 3600 - 60, abs=1
    )

    # And the sweeper leaves a waiting job alone past the time a plain queued job would be re-queued (10 s), as long
    # as its delayed message can still come; only a message lost for good makes it re-queue the job
    def sweeper(after_s: float) -> Sweeper:
        return Sweeper(
            ActiveJobs(aws.table, aws.client("dynamodb"), ttl_seconds=86400),
            wiring._job_adapters(_settings(aws))[1],
            SweepConfig(max_receive_count=3, queued_requeue_seconds=10, max_jobs=10),
            clock=lambda: utcnow() + timedelta(seconds=after_s),
        )

    assert (sweeper(35).sweep().examined, sweeper(35).sweep().requeued) == (1, 0)
    assert sweeper(45).sweep().requeued == 1

    # When the delayed message comes (here: the same message, its wait over)
    again = GenerateMessage(user_id="alice", job_id=job_id, not_before=time.time() - 1)
    worker.handle(again, receive_count=1, remaining_seconds=60)

    # Then the job succeeds, and its attempts tell the whole story
    done = call_api("GET", f"/v1/images/{job_id}").body
    assert (done["status"], done["waiting"]) == ("succeeded", None)
    assert [(a["provider"], a["outcome"]) for a in done["attempts"]] == [
        ("siliconflow", "skipped"),
        ("placeholder", "succeeded"),
    ]


def test_given_a_wait_longer_than_sqs_allows_when_the_message_comes_back_early_then_it_is_sent_on(call_api, aws: Aws):
    # Given a job that waits 2000 s (SQS delays a message 900 s at most)
    job_id = call_api("POST", "/v1/images", body={"prompt": "a long wait", "width": 64, "height": 64}).body["id"]
    aws.receive()
    worker = _worker(aws, CoolingThenServing())
    early = GenerateMessage(user_id="alice", job_id=job_id, not_before=time.time() + 2000)

    # When its message comes back after the first 900 s
    worker.handle(early, receive_count=1, remaining_seconds=60)

    # Then it goes out again for the rest, and the job was not touched
    job = call_api("GET", f"/v1/images/{job_id}").body
    assert (job["status"], job["started_at"]) == ("queued", None)
    assert _delayed(aws) == 1


def test_given_a_waiting_job_when_its_message_is_read_then_the_body_names_when_it_may_run(aws: Aws):
    message = GenerateMessage(user_id="alice", job_id="img_1", not_before=1_800_000_000.5)
    assert json.loads(message.model_dump_json())["not_before"] == 1_800_000_000.5
    assert read_job_message(message.model_dump_json()) == message


def test_given_siliconflow_cooling_when_a_video_job_runs_then_it_waits_queued_and_succeeds_once_it_recovers(
    call_api, aws: Aws, siliconflow_double: SiliconFlowDouble, monkeypatch: pytest.MonkeyPatch
):
    # Given video jobs on SiliconFlow (the worker as the handler builds it), whose breaker opens at the first 5xx
    # for a 2 s cool-down, and SiliconFlow failing the first video job's submit
    for name, value in {
        "SILICONFLOW_API_KEY": SF_KEY,
        "SILICONFLOW_BASE_URL": siliconflow_double.base_url,
        "SILICONFLOW_TIMEOUT_S": "2",
        "MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
        "IMAGEGEN_BREAKER_THRESHOLD": "1",
        "IMAGEGEN_BREAKER_COOLDOWN_S": "2",
    }.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    siliconflow_double.answer_for_key[SF_KEY] = Reply.json(500, {"message": "internal error"})
    first = call_api("POST", "/v1/videos", body={"prompt": "the first one"}).body["id"]
    wiring.worker().handle(read_job_message(aws.receive()[0]["Body"]), receive_count=1, remaining_seconds=100)
    assert call_api("GET", f"/v1/videos/{first}").body["status"] == "failed"
    siliconflow_double.answer_for_key.clear()

    # When a second video job runs while the breaker is open
    job_id = call_api("POST", "/v1/videos", body={"prompt": "patience"}).body["id"]
    message = read_job_message(aws.receive()[0]["Body"])
    wiring.worker().handle(message, receive_count=1, remaining_seconds=100)

    # Then it is queued again, waiting for the cool-down's end, with a delayed message on its way
    job = call_api("GET", f"/v1/videos/{job_id}").body
    assert (job["status"], job["waiting"]["reason"], job["error"]) == ("queued", "breaker_open", None)
    # (fal and Replicate, the rest of the default video chain, have no key: skipped for good, they do not fail it)
    assert [(a["provider"], a["outcome"], a["error_class"]) for a in job["attempts"]] == [
        ("siliconflow", "skipped", "breaker_open"),
        ("fal", "skipped", "no_key"),
        ("replicate", "skipped", "no_key"),
    ]
    assert _delayed(aws) == 1

    # When its delayed message comes after the cool-down (SiliconFlow answers again), and its checks follow
    store = wiring._job_adapters(_settings(aws))[0]
    until = store.get("alice", job_id).waiting
    assert until is not None
    time.sleep(max(0.0, until.until.timestamp() - time.time()) + 0.1)
    wiring.worker().handle(
        GenerateMessage(user_id="alice", job_id=job_id, not_before=until.until.timestamp()),
        receive_count=1,
        remaining_seconds=100,
    )
    for _ in range(5):
        record = store.get("alice", job_id)
        if record.terminal or record.lease_token is None:
            break
        check = CheckMessage(user_id="alice", job_id=job_id, check_token=record.lease_token)
        wiring.worker().handle(check, receive_count=1, remaining_seconds=100)

    # Then the video job succeeds at SiliconFlow, and no longer says it waits
    wiring.metrics().clear_metrics()  # recorded by the worker outside its handler, which would have flushed them
    done = call_api("GET", f"/v1/videos/{job_id}").body
    assert (done["status"], done["waiting"], done["provider"]) == ("succeeded", None, "siliconflow")
    assert done["attempts"][0]["error_class"] == "breaker_open"
