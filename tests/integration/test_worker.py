"""The worker against moto's server: claims, duplicates, crashes, redelivery and the last delivery."""

from __future__ import annotations

import hashlib
import io
import json
import time
from typing import Any

import pytest
from imagegen import wiring
from imagegen.adapters.image_store import ImageStore
from imagegen.adapters.job_store import JobStore
from imagegen.adapters.queue import SqsQueue
from imagegen.generation import ChainFailed, ChainOutcome, ChainPending, RunContext
from imagegen.jobs.work import Worker, WorkerConfig
from imagegen.media.offline import render_placeholder
from imagegen.messages import GenerateMessage, read_job_message
from imagegen.models import Attempt, ErrorInfo, ImageRequest, utcnow
from imagegen.settings import WorkerSettings
from PIL import Image

from tests.conftest import Aws
from tests.doubles.generators import PlaceholderGenerator

pytestmark = pytest.mark.integration


class WorkerDied(BaseException):
    """Stands for the Lambda process dying: no except clause of ours runs, nothing is cleaned up."""


class DyingImages:
    def __init__(self, real: ImageStore) -> None:
        self.real = real
        self.die_next = True

    def put(self, user_id: str, job_id: str, data: bytes, content_type: str) -> str:
        if self.die_next:
            self.die_next = False
            raise WorkerDied
        return self.real.put(user_id, job_id, data, content_type)

    def delete(self, key: str) -> None:
        self.real.delete(key)


class CountingGenerator(PlaceholderGenerator):
    def __init__(self) -> None:
        self.calls = 0

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        self.calls += 1
        return super().start(request, ctx)


class BrokenGenerator(PlaceholderGenerator):
    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        raise ConnectionError("the chain's own dependency is down")


def _worker(aws: Aws, generator: Any, *, images: Any = None, lease: int = 60, max_receive: int = 3) -> Worker:
    settings = WorkerSettings.from_env(
        {
            "TABLE_NAME": aws.table,
            "BUCKET_NAME": aws.bucket,
            "QUEUE_URL": aws.queue_url,
            "AWS_ENDPOINT_URL": aws.endpoint,
        }
    )
    store, queue, real_images = wiring._job_adapters(settings)
    config = WorkerConfig(lease_seconds=lease, deadline_seconds=30, max_receive_count=max_receive)
    return Worker(store, images or real_images, queue, generator, config)


def _store(aws: Aws) -> JobStore:
    return JobStore(aws.table, aws.client("dynamodb"), ttl_seconds=86400)


def _image_count(aws: Aws) -> int:
    return int(aws.client("s3").list_objects_v2(Bucket=aws.bucket).get("KeyCount", 0))


def test_given_each_message_delivered_twice_when_worked_then_one_generation_and_one_image(call_api, aws: Aws):
    job_ids = [
        call_api("POST", "/v1/images", body={"prompt": f"twice {n}", "width": 64, "height": 64}).body["id"]
        for n in range(2)
    ]
    bodies = [m["Body"] for m in aws.receive()]
    generator = CountingGenerator()
    worker = _worker(aws, generator)

    for body in bodies + bodies:
        worker.handle(read_job_message(body), receive_count=1, remaining_seconds=60)

    assert generator.calls == 2
    assert _image_count(aws) == 2
    assert {call_api("GET", f"/v1/images/{job_id}").body["status"] for job_id in job_ids} == {"succeeded"}


def test_given_duplicate_in_one_sqs_batch_when_handler_runs_then_no_failures_and_one_image(call_api, run_worker, aws):
    call_api("POST", "/v1/images", body={"prompt": "dup", "width": 64, "height": 64})
    message = aws.receive()[0]
    duplicate = {**message, "MessageId": message["MessageId"] + "-dup"}

    result = run_worker([message, duplicate], delete=False)

    assert result["batchItemFailures"] == []
    assert _image_count(aws) == 1


def test_given_worker_dies_after_provider_call_when_redelivered_then_job_ends_with_one_image(call_api, aws: Aws):
    job_id = call_api("POST", "/v1/images", body={"prompt": "crash", "width": 64, "height": 64}).body["id"]
    body = aws.receive()[0]["Body"]
    generator = CountingGenerator()
    real_images = ImageStore(aws.bucket, aws.client("s3"))
    images = DyingImages(real_images)
    worker = _worker(aws, generator, images=images, lease=1)

    with pytest.raises(WorkerDied):
        worker.handle(read_job_message(body), receive_count=1, remaining_seconds=60)
    running = call_api("GET", f"/v1/images/{job_id}").body
    time.sleep(1.1)  # the dead worker's lease runs out, as SQS's visibility timeout would
    worker.handle(read_job_message(body), receive_count=2, remaining_seconds=60)

    assert running["status"] == "running"
    assert generator.calls == 2
    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "succeeded"
    assert _image_count(aws) == 1


def test_given_live_lease_when_duplicate_arrives_then_message_is_left_for_redelivery(call_api, run_worker, aws):
    job_id = call_api("POST", "/v1/images", body={"prompt": "busy"}).body["id"]
    message = aws.receive(visibility=0)[0]
    _store(aws).claim("alice", job_id, now=utcnow(), lease_seconds=120)

    result = run_worker([message])

    assert result["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]
    assert len(aws.receive()) == 1


def test_given_failing_chain_when_not_last_delivery_then_redelivered_and_lease_released(call_api, run_worker, aws):
    job_id = call_api("POST", "/v1/images", body={"prompt": "flaky"}).body["id"]
    body = aws.receive()[0]["Body"]
    worker = _worker(aws, BrokenGenerator(), max_receive=3)

    with pytest.raises(ConnectionError):
        worker.handle(read_job_message(body), receive_count=1, remaining_seconds=60)
    # The lease was given back, so the next delivery claims at once instead of waiting it out.
    _worker(aws, PlaceholderGenerator()).handle(read_job_message(body), receive_count=2, remaining_seconds=60)

    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "succeeded"


def test_given_failing_chain_when_last_delivery_then_job_failed_with_reason(call_api, aws: Aws):
    job_id = call_api("POST", "/v1/images", body={"prompt": "doomed"}).body["id"]
    body = aws.receive()[0]["Body"]

    _worker(aws, BrokenGenerator(), max_receive=3).handle(read_job_message(body), receive_count=3, remaining_seconds=60)

    job = call_api("GET", f"/v1/images/{job_id}").body
    assert job["status"] == "failed"
    assert job["error"]["code"] == "worker_error"
    assert "3 deliveries" in job["error"]["message"]
    assert "dependency is down" not in json.dumps(job)


def test_given_failing_handler_when_redelivered_past_max_then_message_lands_in_dlq(
    call_api, run_worker, aws, monkeypatch
):
    call_api("POST", "/v1/images", body={"prompt": "to the dlq"})
    monkeypatch.setattr(wiring, "generator", lambda settings: BrokenGenerator())
    monkeypatch.setenv("JOB_MAX_RECEIVE_COUNT", "99")  # the worker never gives up by itself here: SQS must redrive
    wiring.reset()

    for _ in range(3):
        batch = aws.receive(wait=1, visibility=0)
        assert len(batch) == 1
        assert run_worker(batch)["batchItemFailures"] == [{"itemIdentifier": batch[0]["MessageId"]}]

    assert aws.receive(visibility=0) == []
    assert len(aws.receive(aws.dlq_url)) == 1


def test_given_chain_failure_when_worked_then_job_failed_with_attempts(call_api, aws: Aws):
    class FailingChain(PlaceholderGenerator):
        def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
            attempt = Attempt(provider="horde", outcome="failed", error_class="server_error", status_code=503)
            return ChainFailed(ErrorInfo(code="all_providers_failed", message="horde: 503"), [attempt])

    job_id = call_api("POST", "/v1/images", body={"prompt": "nope"}).body["id"]
    _worker(aws, FailingChain()).handle(
        read_job_message(aws.receive()[0]["Body"]), receive_count=1, remaining_seconds=60
    )

    job = call_api("GET", f"/v1/images/{job_id}").body
    assert job["status"] == "failed"
    assert job["error"] == {"code": "all_providers_failed", "message": "horde: 503", "hint": None, "details": None}
    assert job["attempts"][0]["status_code"] == 503


def test_given_async_provider_pending_when_worked_then_check_message_delayed_and_resume_completes(call_api, aws: Aws):
    class AsyncChain(PlaceholderGenerator):
        def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
            return ChainPending(
                state={"remote_id": "r-1"}, delay_seconds=1, attempts=[Attempt(provider="horde", outcome="pending")]
            )

        def resume(self, request: ImageRequest, state: dict[str, Any], ctx: RunContext) -> ChainOutcome:
            assert state == {"remote_id": "r-1"}
            return super().start(request, ctx)

    job_id = call_api("POST", "/v1/images", body={"prompt": "slow", "width": 64, "height": 64}).body["id"]
    worker = _worker(aws, AsyncChain())
    worker.handle(read_job_message(aws.receive()[0]["Body"]), receive_count=1, remaining_seconds=60)

    assert aws.receive() == []  # delayed: not visible yet
    check = aws.receive(wait=3)
    assert [json.loads(m["Body"])["kind"] for m in check] == ["check"]
    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "running"
    worker.handle(read_job_message(check[0]["Body"]), receive_count=1, remaining_seconds=60)
    worker.handle(
        read_job_message(check[0]["Body"]), receive_count=2, remaining_seconds=60
    )  # a duplicate check is a no-op

    job = call_api("GET", f"/v1/images/{job_id}").body
    assert job["status"] == "succeeded"
    assert _image_count(aws) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body: json_invalid"),
        ("[1,2]", "body: dict_type"),
        ('{"kind":"generate"}', "generate.user_id: missing"),
        ('{"kind":"explode","user_id":"a","job_id":"b"}', "body: union_tag_invalid"),
    ],
)
def test_given_malformed_message_when_the_worker_handler_runs_then_dropped_with_a_log_line_not_retried(
    aws: Aws, run_worker, caplog: pytest.LogCaptureFixture, body: str, reason: str
):
    # Given a body on the jobs queue that is no job message
    aws.client("sqs").send_message(QueueUrl=aws.queue_url, MessageBody=body)
    batch = aws.receive(visibility=0)

    # When the worker function's BatchProcessor parses and handles it
    with caplog.at_level("ERROR"):
        result = run_worker(batch)

    # Then it is acknowledged (no batch item failure, nothing left to redeliver), with the reason logged
    assert (result["received"], result["batchItemFailures"]) == (1, [])
    assert aws.receive(visibility=0) == []
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"dropping a message that is no job message ({reason})"
    ]
    assert _image_count(aws) == 0


def test_given_job_queue_adapter_when_delay_exceeds_sqs_limit_then_clamped(aws: Aws):
    SqsQueue(aws.queue_url, aws.client("sqs")).send(GenerateMessage(user_id="a", job_id="b"), delay_seconds=5000)

    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesDelayed"]) == 1


class InterruptedGenerator(PlaceholderGenerator):
    """Draws the image, but while it draws, `meanwhile` changes the job behind the worker's back."""

    def __init__(self, meanwhile: Any) -> None:
        self.meanwhile = meanwhile

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        self.meanwhile(ctx.user_id, ctx.job_id)
        return super().start(request, ctx)


def test_given_job_canceled_while_generating_when_worker_finishes_then_no_image_is_left(call_api, aws: Aws):
    job_id = call_api("POST", "/v1/images", body={"prompt": "cancel me", "width": 64, "height": 64}).body["id"]
    body = aws.receive()[0]["Body"]
    canceled = InterruptedGenerator(lambda user, job: call_api("POST", f"/v1/images/{job}/cancel", user=user))

    _worker(aws, canceled).handle(read_job_message(body), receive_count=1, remaining_seconds=60)

    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "canceled"
    assert _image_count(aws) == 0


def test_given_job_taken_over_while_generating_when_worker_finishes_then_the_image_is_kept(call_api, aws: Aws):
    job_id = call_api("POST", "/v1/images", body={"prompt": "taken over", "width": 64, "height": 64}).body["id"]
    body = aws.receive()[0]["Body"]
    store = _store(aws)

    def take_over(user: str, job: str) -> None:
        # Another worker claims the job after this one's lease ran out (lease 0 here), and will write the same key.
        store.claim(user, job, now=utcnow(), lease_seconds=120)

    _worker(aws, InterruptedGenerator(take_over), lease=0).handle(
        read_job_message(body), receive_count=1, remaining_seconds=60
    )

    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "running"
    assert _image_count(aws) == 1


class FixedSizeGenerator(PlaceholderGenerator):
    """A provider with a fixed size list: it always makes 1024x1024, whatever was asked."""

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        square = request.model_copy(update={"width": 1024, "height": 1024})
        return super().start(square, ctx)


@pytest.mark.parametrize(("width", "height"), [(768, 512), (1024, 1024)])
def test_given_a_provider_that_makes_1024_square_when_a_size_is_asked_then_the_stored_image_is_that_size(
    call_api, aws: Aws, width: int, height: int
):
    # Given a job for width x height and a provider that only makes 1024x1024
    job_id = call_api("POST", "/v1/images", body={"prompt": "fit", "width": width, "height": height}).body["id"]
    body = aws.receive()[0]["Body"]

    # When the worker runs it
    _worker(aws, FixedSizeGenerator()).handle(read_job_message(body), receive_count=1, remaining_seconds=60)

    # Then the stored image is exactly the size asked for, and the job says what the provider made
    job = call_api("GET", f"/v1/images/{job_id}").body
    image = job["image"]
    assert (image["width"], image["height"], image["source_width"], image["source_height"]) == (
        width,
        height,
        1024,
        1024,
    )
    s3 = aws.client("s3")
    (key,) = [item["Key"] for item in s3.list_objects_v2(Bucket=aws.bucket)["Contents"]]
    data = s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.size == (width, height)
    assert (image["bytes"], image["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    # Nothing to change: the provider's bytes as they came, not re-encoded.
    assert (data == render_placeholder("fit", 1024, 1024, None)) is ((width, height) == (1024, 1024))
