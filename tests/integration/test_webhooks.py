"""Webhooks against moto's server and a receiver double on loopback: signatures, retries, redirects, SSRF, batches."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from imagegen import wiring
from imagegen.adapters.webhook_http import WebhookHttpSender
from imagegen.messages import WebhookMessage, read_webhook_message
from imagegen.webhooks.delivery import WebhookDelivery

from tests.conftest import Aws, FakeLambdaContext, load_function, sqs_event
from tests.doubles.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

SMALL = {"width": 64, "height": 64}


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance: int = 300) -> bool:
    """A receiver's check, written from the Standard Webhooks spec, independent of imagegen's signing code."""
    key = base64.b64decode(secret[len("whsec_") :])
    if abs(time.time() - int(headers["webhook-timestamp"])) > tolerance:
        return False
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


@dataclass
class Hooks:
    queue_url: str
    run: Callable[[], int]

    def drain(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            if not self.run():
                return
        raise AssertionError("the webhook queue did not drain")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as double:
        yield double


@pytest.fixture
def hooks(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Hooks:
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"webhooks-{aws.table[-10:]}")["QueueUrl"]
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", queue_url)
    monkeypatch.setenv("MEDIA_ALLOW_PRIVATE_NETWORKS", "true")
    # The real schedule waits minutes; here every retry is due at once (the schedule is tested on its own below).
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "0,0,0,0,0,0")
    wiring.reset()
    handler = load_function("webhooks").lambda_handler

    def run() -> int:
        messages = aws.receive(queue_url)
        if not messages:
            return 0
        result = handler(sqs_event(messages), FakeLambdaContext("WebhookFunction"))
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    return Hooks(queue_url=queue_url, run=run)


def _secret(call_api, user: str = "alice") -> str:
    answer = call_api("GET", "/v1/webhooks/secret", user=user)
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    return str(answer.body["secret"])


def test_given_job_with_webhook_when_it_succeeds_then_receiver_gets_a_verifiable_signed_post(
    call_api, run_worker, hooks: Hooks, receiver: Receiver
):
    secret = _secret(call_api)
    job_id = call_api(
        "POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/hook"}
    ).body["id"]

    run_worker()
    hooks.drain()

    [post] = receiver.received
    assert post.path == "/hook"
    assert post.headers["content-type"] == "application/json"
    assert post.headers["webhook-id"] == f"msg_{job_id}"
    assert verify(secret, post.headers, post.body)
    assert not verify(secret, post.headers, post.body + b" ")
    payload = json.loads(post.body)
    assert (payload["type"], payload["data"]["id"], payload["data"]["status"]) == ("job.succeeded", job_id, "succeeded")
    assert payload["timestamp"].endswith("Z")
    assert b"whsec_" not in post.body
    assert secret.encode() not in post.body


def test_given_receiver_fails_twice_when_delivered_then_third_attempt_lands_with_the_same_webhook_id(
    call_api, run_worker, hooks: Hooks, receiver: Receiver
):
    secret = _secret(call_api)
    receiver.script = [500, 503]
    call_api("POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/hook"})

    run_worker()
    hooks.drain()

    assert len(receiver.received) == 3
    assert len({post.headers["webhook-id"] for post in receiver.received}) == 1
    assert len({post.body for post in receiver.received}) == 1
    assert all(verify(secret, post.headers, post.body) for post in receiver.received)


class RecordingQueue:
    """Stands for the webhook queue where only the delay of each re-queued attempt matters."""

    def __init__(self) -> None:
        self.sent: list[tuple[WebhookMessage, int]] = []

    def send(self, message: WebhookMessage, *, delay_seconds: int = 0) -> None:
        self.sent.append((message, delay_seconds))


def test_given_receiver_always_fails_when_delivered_then_six_attempts_over_about_an_hour_then_it_gives_up(
    aws: Aws, receiver: Receiver
):
    receiver.script = [500] * 10
    queue = RecordingQueue()
    delivery = WebhookDelivery(wiring.webhook_secrets(), WebhookHttpSender(allow_private=True), queue)
    message = WebhookMessage(
        user_id="alice", event_id="msg_test", url=f"{receiver.url}/hook", body='{"type":"job.failed"}'
    )

    outcomes = []
    for _ in range(6):
        outcomes.append(delivery.handle(message))
        if queue.sent:
            message = queue.sent[-1][0]

    assert [o.result for o in outcomes if o] == ["retry"] * 5 + ["gave_up"]
    delays = [delay for _, delay in queue.sent]
    assert delays == [60, 300, 900, 900, 900]
    assert sum(delays) == 3060  # 51 minutes from the first attempt to the last
    assert [m.attempt for m, _ in queue.sent] == [2, 3, 4, 5, 6]
    assert len(receiver.received) == 6


def test_given_receiver_redirects_when_delivered_then_redirect_not_followed_and_attempt_retried(
    call_api, run_worker, hooks: Hooks, receiver: Receiver
):
    receiver.script = [302]
    call_api("POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/hook"})

    run_worker()
    hooks.drain()

    assert receiver.at("/elsewhere") == []
    assert len(receiver.at("/hook")) == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_given_receiver_down_when_job_ends_then_job_succeeds_and_delivery_gives_up_after_its_attempts(
    call_api, run_worker, hooks: Hooks, aws: Aws
):
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    job_id = call_api("POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": url}).body["id"]

    outcome = run_worker()
    hooks.drain()

    assert outcome["batchItemFailures"] == []
    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "succeeded"
    assert aws.receive(hooks.queue_url) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost/hook",
        "https://10.0.0.1/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "http://example.com/hook",
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_given_private_or_plain_http_webhook_url_when_job_or_batch_created_then_400_naming_the_field(
    call_api, aws: Aws, url
):
    image = call_api("POST", "/v1/images", body={"prompt": "x", "webhook_url": url})
    batch = call_api("POST", "/v1/batches", body={"defaults": SMALL, "items": [{"prompt": "a"}], "webhook_url": url})
    item = call_api(
        "POST", "/v1/batches", body={"defaults": SMALL, "items": [{"prompt": "a"}, {"prompt": "b", "webhook_url": url}]}
    )

    for answer, field in ((image, "webhook_url"), (batch, "webhook_url"), (item, "items.1.webhook_url")):
        # A scheme that is not even http(s) fails the request's own validation (422); the rest the SSRF check (400).
        expected = (422, "validation_error") if url.startswith("ftp:") else (400, "url_not_allowed")
        assert (answer.status, answer.body["error"]["code"]) == expected, url
        assert answer.body["error"]["details"][0]["field"] == field
    assert aws.receive() == []


def test_given_private_networks_allowed_when_metadata_url_given_then_still_refused(call_api, hooks: Hooks):
    answer = call_api("POST", "/v1/images", body={"prompt": "x", "webhook_url": "http://169.254.169.254/"})

    assert (answer.status, answer.body["error"]["code"]) == (400, "url_not_allowed")


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "127.0.0.1"])
def test_given_host_resolves_to_private_address_at_delivery_when_delivered_then_refused_without_retry(
    aws: Aws, address: str
):
    # The name passed at create time; by delivery its DNS answer points inside (rebinding). No connection is made.
    sender = WebhookHttpSender(allow_private=False, resolver=lambda host, port: [address])
    queue = RecordingQueue()
    delivery = WebhookDelivery(wiring.webhook_secrets(), sender, queue)
    message = {"kind": "webhook", "user_id": "alice", "event_id": "msg_x", "url": "https://hooks.example.test/x"}

    outcome = delivery.handle(read_webhook_message(json.dumps({**message, "body": "{}", "attempt": 1})))

    assert outcome is not None
    assert outcome.result == "gave_up"
    assert address in (outcome.detail or "")
    assert queue.sent == []


def test_given_batch_with_webhook_when_last_item_ends_then_one_batch_event(
    call_api, run_worker, hooks: Hooks, receiver: Receiver, aws: Aws
):
    secret = _secret(call_api)
    body = {"defaults": SMALL, "items": [{"prompt": f"p{n}"} for n in range(3)], "webhook_url": f"{receiver.url}/b"}
    batch_id = call_api("POST", "/v1/batches", body=body).body["id"]

    run_worker()
    # A late duplicate notice for the last job must not send the batch event again.
    last = wiring._job_adapters(wiring.api_settings())[0].get(
        "alice", call_api("GET", f"/v1/batches/{batch_id}").body["items"][-1]["job_id"]
    )
    for listener in wiring.job_service()._on_terminal:
        listener(last)
    hooks.drain()

    [post] = receiver.received
    assert post.headers["webhook-id"] == f"msg_{batch_id}_0"
    assert verify(secret, post.headers, post.body)
    payload = json.loads(post.body)
    assert payload["type"] == "batch.succeeded"
    assert (payload["data"]["id"], payload["data"]["progress"], payload["data"]["status"]) == (
        batch_id,
        "3/3",
        "succeeded",
    )


def test_given_batch_retried_when_it_ends_again_then_a_second_event_with_a_new_id(
    call_api, run_worker, hooks: Hooks, receiver: Receiver, monkeypatch
):
    from tests.integration.test_batches import FlakyGenerator

    generator = FlakyGenerator()
    monkeypatch.setattr(wiring, "generator", lambda settings: generator)
    wiring.reset()
    body = {"defaults": SMALL, "items": [{"prompt": "ok"}, {"prompt": "flaky"}], "webhook_url": f"{receiver.url}/b"}
    batch_id = call_api("POST", "/v1/batches", body=body).body["id"]
    run_worker()
    hooks.drain()
    call_api("POST", f"/v1/batches/{batch_id}/retry")
    run_worker()
    hooks.drain()

    assert [post.headers["webhook-id"] for post in receiver.received] == [f"msg_{batch_id}_0", f"msg_{batch_id}_1"]
    assert [json.loads(post.body)["type"] for post in receiver.received] == ["batch.partial", "batch.succeeded"]


def test_given_job_canceled_when_it_had_a_webhook_then_a_canceled_event(call_api, hooks: Hooks, receiver: Receiver):
    job_id = call_api(
        "POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/h"}
    ).body["id"]

    call_api("POST", f"/v1/images/{job_id}/cancel")
    call_api("POST", f"/v1/images/{job_id}/cancel")
    hooks.drain()

    [post] = receiver.received
    assert json.loads(post.body)["type"] == "job.canceled"


def test_given_secret_rotated_when_delivered_then_both_old_and_new_secret_verify(
    call_api, run_worker, hooks: Hooks, receiver: Receiver
):
    old = _secret(call_api)
    same = _secret(call_api)
    rotated = call_api("POST", "/v1/webhooks/secret/rotate")
    new = _secret(call_api)
    call_api("POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/hook"})

    run_worker()
    hooks.drain()

    assert old == same
    assert old.startswith("whsec_") and len(base64.b64decode(old[6:])) == 32
    assert rotated.status == 200
    assert rotated.body["secret"] == new != old
    assert rotated.body["previous_valid_until"] is not None
    assert _secret(call_api, user="bob") not in (old, new)
    [post] = receiver.received
    assert len(post.headers["webhook-signature"].split(" ")) == 2
    assert verify(new, post.headers, post.body)
    assert verify(old, post.headers, post.body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "body: json_invalid"),
        ('{"kind":"generate","user_id":"a","job_id":"b"}', "kind: literal_error"),
        ('{"kind":"webhook","user_id":"a","event_id":"e","url":"https://x.test/h"}', "body: missing"),
    ],
)
def test_given_malformed_message_when_the_webhook_handler_runs_then_dropped_with_a_log_line_not_retried(
    aws: Aws, hooks: Hooks, receiver: Receiver, caplog: pytest.LogCaptureFixture, body: str, reason: str
):
    # Given a body on the webhooks queue that is no webhook message
    aws.client("sqs").send_message(QueueUrl=hooks.queue_url, MessageBody=body)

    # When the webhook function's BatchProcessor parses and handles it
    with caplog.at_level("ERROR"):
        received = hooks.run()

    # Then it is acknowledged (gone from the queue, nothing redelivered), nothing is posted, and the reason is logged
    assert received == 1
    assert aws.receive(hooks.queue_url, visibility=0) == []
    assert receiver.received == []
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"dropping a webhook message that is malformed ({reason})"
    ]
