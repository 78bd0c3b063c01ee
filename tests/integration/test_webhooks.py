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
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from imagegen import wiring
from imagegen.adapters.delivery_store import DeliveryRecords
from imagegen.adapters.outbox_store import DynamoOutboxStore
from imagegen.adapters.webhook_http import WebhookHttpSender
from imagegen.jobs.outbox import Outbox, OutboxItem
from imagegen.messages import WebhookMessage, read_webhook_message
from imagegen.models import utcnow
from imagegen.webhooks.deliveries import new_delivery
from imagegen.webhooks.delivery import WebhookDelivery, send_effect
from standardwebhooks.webhooks import Webhook

from tests.conftest import ROOT, Aws, FakeLambdaContext, load_function, sqs_event
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
    run: Callable[..., int]

    def drain(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            if not self.run():
                return
        raise AssertionError("the webhook queue did not drain")

    def drain_until(self, done: Callable[[], bool], rounds: int = 60) -> None:
        """Run the function on what arrives (waiting for delayed messages) until `done()`."""
        for _ in range(rounds):
            if done():
                return
            self.run(wait=1)
        raise AssertionError("the deliveries did not reach the expected state")


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
    # The real schedule waits hours; here every retry is due at once (the schedule is tested on its own below).
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "0,0,0,0,0,0,0,0")
    wiring.reset()
    handler = load_function("webhooks").lambda_handler

    def run(wait: int = 0) -> int:
        messages = aws.receive(queue_url, wait=wait)
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
    """Stands for the webhook queue where only what is sent, and with which delay, matters."""

    def __init__(self) -> None:
        self.sent: list[tuple[WebhookMessage, int]] = []

    def send(self, message: WebhookMessage, *, delay_seconds: int = 0) -> None:
        self.sent.append((message, delay_seconds))

    def send_many(self, messages: object) -> None:
        raise AssertionError("not used by webhooks")


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def _records(aws: Aws) -> DeliveryRecords:
    return DeliveryRecords(aws.table, aws.client("dynamodb"), outbox_ttl_seconds=86400)


def _delivery_function(aws: Aws, queue: RecordingQueue, clock: Clock, sender: object | None = None) -> WebhookDelivery:
    outbox = Outbox(DynamoOutboxStore(aws.table, aws.client("dynamodb")), clock=clock)
    outbox.on("webhook_send", send_effect(queue, clock))  # type: ignore[arg-type]
    return WebhookDelivery(
        wiring.webhook_secrets(),
        sender or WebhookHttpSender(allow_private=True),  # type: ignore[arg-type]
        queue,  # type: ignore[arg-type]
        _records(aws),
        outbox,
        clock=clock,
    )


def _record(aws: Aws, url: str, clock: Clock, event_id: str = "msg_img_01JD0000000000000000000000") -> None:
    delivery = new_delivery(
        user_id="alice",
        event_id=event_id,
        event_type="job.failed",
        url=url,
        body='{"type":"job.failed"}',
        now=clock(),
        expires_at=clock() + timedelta(days=30),
        job_id=event_id.removeprefix("msg_"),
    )
    outbox = Outbox(DynamoOutboxStore(aws.table, aws.client("dynamodb")))
    assert _records(aws).create(delivery, delivery.first_send(clock()))
    outbox.on("webhook_send", lambda item: None)
    outbox.dispatch(delivery.first_send(clock()))


def test_given_receiver_down_for_a_day_when_delivered_on_the_standard_schedule_then_eight_attempts_over_27_hours(
    aws: Aws, receiver: Receiver
):
    # Given a receiver that fails every attempt, and a delivery on the default (Standard Webhooks) schedule
    receiver.script = [500] * 20
    clock, queue = Clock(), RecordingQueue()
    started = clock.now
    _record(aws, f"{receiver.url}/hook", clock)
    delivery = _delivery_function(aws, queue, clock)
    message = WebhookMessage(user_id="alice", event_id="msg_img_01JD0000000000000000000000", due_at=clock.now)

    # When every queued message is handled once its SQS delay has passed (a fake clock stands for the waiting)
    outcomes = [delivery.handle(message)]
    while queue.sent:
        message, delay = queue.sent.pop(0)
        clock.now += timedelta(seconds=delay)
        outcomes.append(delivery.handle(message))

    # Then there are eight attempts at 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, each SQS delay at most
    # 15 minutes (longer waits hop), and after the eighth the delivery is failed
    attempts = [o for o in outcomes if o and o.result in ("retry", "gave_up")]
    assert [o.result for o in attempts] == ["retry"] * 7 + ["gave_up"]
    assert [o.next_delay for o in attempts[:-1]] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    hops = [o for o in outcomes if o and o.result == "waiting"]
    assert hops and all(0 < (o.next_delay or 0) <= 900 for o in hops)
    assert len(receiver.received) == 8
    assert timedelta(hours=27) < clock.now - started < timedelta(hours=28)
    record = _records(aws).get("alice", "msg_img_01JD0000000000000000000000")
    assert record is not None
    assert (record.status, record.attempts, record.last_status_code) == ("failed", 8, 500)


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
    clock, queue = Clock(), RecordingQueue()
    _record(aws, "https://hooks.example.test/x", clock)
    delivery = _delivery_function(aws, queue, clock, sender)
    message = {"kind": "webhook", "user_id": "alice", "event_id": "msg_img_01JD0000000000000000000000"}

    outcome = delivery.handle(read_webhook_message(json.dumps(message)))

    assert outcome is not None
    assert outcome.result == "gave_up"
    assert address in (outcome.detail or "")
    assert queue.sent == []
    record = _records(aws).get("alice", "msg_img_01JD0000000000000000000000")
    assert record is not None and record.status == "failed"
    assert record.view().url_host == "hooks.example.test"


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
    for _ in range(2):
        assert wiring.job_service()._outbox is not None
        wiring.job_service()._outbox.dispatch(OutboxItem.job_ended("alice", last.id, utcnow()))
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
        ('{"kind":"webhook","user_id":"a","event_id":"e","attempt":0}', "attempt: greater_than_equal"),
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


def _standard_verify(secret: str, post: Any) -> dict[str, Any]:
    """The official Standard Webhooks library's check (it raises WebhookVerificationError when anything is off)."""
    payload: dict[str, Any] = Webhook(secret).verify(post.body, post.headers)
    return payload


def _deliveries(call_api, **query: str) -> list[dict[str, Any]]:
    answer = call_api("GET", "/v1/webhooks/deliveries", query=query or None)
    assert answer.status == 200, answer.body
    return list(answer.body["items"])


def test_given_receiver_failing_five_attempts_when_it_recovers_then_attempt_six_lands_with_the_same_webhook_id(
    call_api, run_worker, hooks: Hooks, receiver: Receiver, monkeypatch
):
    # Given a short retry schedule (1 s between attempts) and a receiver that fails its first five requests
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "0,1,1,1,1,1,1,1")
    wiring.reset()
    secret = _secret(call_api)
    receiver.script = [500, 503, 502, 500, 429]
    url = f"{receiver.url}/hook?token=receiver-capability"
    job_id = call_api("POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": url}).body["id"]

    # When the job ends and the webhook function handles what arrives, delayed retries included
    run_worker()
    hooks.drain_until(lambda: len(receiver.received) >= 6 and not hooks.run())

    # Then the sixth attempt is answered 2xx, every attempt carried the same webhook-id and body, and the official
    # library verifies each signature
    assert len(receiver.received) == 6
    assert {post.headers["webhook-id"] for post in receiver.received} == {f"msg_{job_id}"}
    assert len({post.body for post in receiver.received}) == 1
    payloads = [_standard_verify(secret, post) for post in receiver.received]
    assert payloads[-1]["type"] == "job.succeeded" and payloads[-1]["data"]["id"] == job_id
    [delivery] = _deliveries(call_api, status="succeeded")
    assert delivery["id"] == f"msg_{job_id}"
    assert (delivery["attempts"], delivery["last_status_code"], delivery["job_id"]) == (6, 204, job_id)
    assert delivery["url_host"] == "127.0.0.1:" + str(receiver.server.port)
    assert "receiver-capability" not in json.dumps(delivery)
    assert _deliveries(call_api, status="pending") == []


def test_given_receiver_failing_every_attempt_when_listed_then_failed_and_a_redelivery_lands_with_the_same_id(
    call_api, run_worker, hooks: Hooks, receiver: Receiver
):
    # Given a receiver that fails all eight attempts of a job's event
    secret = _secret(call_api)
    receiver.script = [500] * 8
    job_id = call_api(
        "POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/hook"}
    ).body["id"]
    run_worker()
    hooks.drain()

    # When the deliveries are listed, then it is failed after eight attempts
    [failed] = _deliveries(call_api, status="failed")
    assert (failed["id"], failed["attempts"], failed["last_status_code"]) == (f"msg_{job_id}", 8, 500)
    assert failed["last_error"] == "receiver answered 500"
    assert failed["next_attempt_at"] is None
    assert len(receiver.received) == 8

    # When it is redelivered (the receiver works again), then 202, and the event lands with the same webhook-id
    answer = call_api("POST", f"/v1/webhooks/deliveries/msg_{job_id}/redeliver")
    again = call_api("POST", f"/v1/webhooks/deliveries/msg_{job_id}/redeliver")
    hooks.drain()
    assert (answer.status, answer.body["status"], answer.body["attempts"]) == (202, "pending", 0)
    assert again.status in (202, 409)  # 409 while the first redelivery is still pending
    last = receiver.received[8]
    assert last.headers["webhook-id"] == f"msg_{job_id}"
    assert _standard_verify(secret, last)["data"]["id"] == job_id
    [succeeded] = _deliveries(call_api, status="succeeded")
    assert (succeeded["id"], succeeded["attempts"]) == (f"msg_{job_id}", 1)
    assert _deliveries(call_api, status="failed") == []


def test_given_a_pending_delivery_when_redelivered_then_409_and_unknown_or_other_users_ids_are_404(
    call_api, run_worker, hooks: Hooks, receiver: Receiver
):
    job_id = call_api(
        "POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/hook"}
    ).body["id"]
    run_worker()  # the delivery is recorded and queued, not yet attempted

    pending = call_api("POST", f"/v1/webhooks/deliveries/msg_{job_id}/redeliver")
    bobs = call_api("POST", f"/v1/webhooks/deliveries/msg_{job_id}/redeliver", user="bob")
    unknown = call_api("POST", "/v1/webhooks/deliveries/msg_img_01JD0000000000000000000000/redeliver")
    malformed = call_api("POST", "/v1/webhooks/deliveries/not-an-id/redeliver")
    bad_status = call_api("GET", "/v1/webhooks/deliveries", query={"status": "lost"})

    assert (pending.status, pending.body["error"]["code"]) == (409, "conflict")
    assert [bobs.status, unknown.status, malformed.status] == [404, 404, 404]
    assert bad_status.status == 422
    assert [d["status"] for d in _deliveries(call_api)] == ["pending"]
    assert _deliveries(call_api, status="pending")[0]["next_attempt_at"] is not None
    assert call_api("GET", "/v1/webhooks/deliveries", user="bob").body["items"] == []


def test_given_many_deliveries_when_listed_with_a_limit_then_newest_first_and_the_cursor_pages(
    call_api, run_worker, hooks: Hooks, receiver: Receiver
):
    ids = []
    for n in range(3):
        body = {"prompt": f"kite {n}", **SMALL, "webhook_url": f"{receiver.url}/hook"}
        ids.append(call_api("POST", "/v1/images", body=body).body["id"])
        run_worker()
    hooks.drain()

    first = call_api("GET", "/v1/webhooks/deliveries", query={"status": "succeeded", "limit": "2"}).body
    rest = call_api(
        "GET", "/v1/webhooks/deliveries", query={"status": "succeeded", "cursor": first["next_cursor"]}
    ).body
    forged = call_api("GET", "/v1/webhooks/deliveries", query={"cursor": first["next_cursor"]}, user="bob")

    assert [d["job_id"] for d in first["items"] + rest["items"]] == list(reversed(ids))
    assert rest["next_cursor"] is None
    assert (forged.status, forged.body["error"]["details"]) == (400, {"field": "cursor"})


class FailingOnceSqs:
    """The real SQS client, except that the first SendMessage to one queue fails with botocore's real ClientError."""

    def __init__(self, real: Any, queue_url: str) -> None:
        self._real = real
        self._queue_url = queue_url
        self.refused = 0

    def send_message(self, **request: Any) -> Any:
        if request["QueueUrl"] == self._queue_url and not self.refused:
            self.refused += 1
            raise ClientError({"Error": {"Code": "InternalError", "Message": "SQS blipped"}}, "SendMessage")
        return self._real.send_message(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_given_sqs_fails_while_a_job_ends_when_the_sweeper_runs_then_exactly_one_webhook(
    call_api, run_worker, hooks: Hooks, receiver: Receiver, aws: Aws, monkeypatch
):
    # Given SQS refusing the webhook queue's next message, as the worker ends a job that has a webhook
    real_sqs = wiring._sqs
    blip: list[FailingOnceSqs] = []

    def flaky_sqs(settings: Any) -> Any:
        if not blip:
            blip.append(FailingOnceSqs(real_sqs(settings), hooks.queue_url))
        return blip[0]

    monkeypatch.setattr(wiring, "_sqs", flaky_sqs)
    monkeypatch.setenv("OUTBOX_STALE_SECONDS", "0")  # the sweeper's "older than a minute", without the minute
    wiring.reset()
    secret = _secret(call_api)
    job_id = call_api(
        "POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/hook"}
    ).body["id"]

    # When the job ends (the send fails) and then the scheduled function sweeps, twice
    assert run_worker()["batchItemFailures"] == []
    hooks.drain()
    before_sweep = len(receiver.received)
    reports = [_sweep() for _ in range(2)]
    hooks.drain()

    # Then nothing was sent before the sweep, and exactly one webhook after it
    assert blip[0].refused == 1
    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "succeeded"
    assert before_sweep == 0
    assert [report["outbox"]["done"] for report in reports] == [1, 0]
    [post] = receiver.received
    assert post.headers["webhook-id"] == f"msg_{job_id}"
    assert _standard_verify(secret, post)["type"] == "job.succeeded"


def _sweep() -> dict[str, Any]:
    event = json.loads((ROOT / "events" / "scheduled_event.json").read_text())
    result: dict[str, Any] = load_function("scheduled").lambda_handler(
        event, FakeLambdaContext("ScheduledFunction", 60)
    )
    return result


def test_given_the_openapi_document_when_read_then_both_delivery_routes_are_there_with_their_statuses(call_api):
    document = call_api("GET", "/openapi.json", user=None).body

    listing = document["paths"]["/v1/webhooks/deliveries"]["get"]
    redeliver = document["paths"]["/v1/webhooks/deliveries/{delivery_id}/redeliver"]["post"]

    assert set(listing["responses"]) == {"200", "400", "401", "414", "422"}
    assert {p["name"] for p in listing["parameters"]} == {"status", "limit", "cursor"}
    assert set(redeliver["responses"]) == {"202", "401", "404", "409", "414"}
    schema = redeliver["responses"]["202"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/DeliveryView"}
    view = document["components"]["schemas"]["DeliveryView"]["properties"]
    assert {"id", "event_type", "job_id", "batch_id", "url_host", "status", "attempts", "last_status_code"} <= set(view)
    assert "url" not in view and "body" not in view


def test_given_sqs_fails_while_a_cancel_ends_a_job_when_the_sweeper_runs_then_exactly_one_canceled_event(
    call_api, hooks: Hooks, receiver: Receiver, monkeypatch
):
    # Given SQS refusing the webhook queue's next message, as the API cancels a job that has a webhook
    real_sqs = wiring._sqs
    blip: list[FailingOnceSqs] = []

    def flaky_sqs(settings: Any) -> Any:
        if not blip:
            blip.append(FailingOnceSqs(real_sqs(settings), hooks.queue_url))
        return blip[0]

    monkeypatch.setattr(wiring, "_sqs", flaky_sqs)
    monkeypatch.setenv("OUTBOX_STALE_SECONDS", "0")
    wiring.reset()
    job_id = call_api(
        "POST", "/v1/images", body={"prompt": "a kite", **SMALL, "webhook_url": f"{receiver.url}/hook"}
    ).body["id"]

    # When it is canceled (the send fails), then swept
    assert call_api("POST", f"/v1/images/{job_id}/cancel").body["status"] == "canceled"
    hooks.drain()
    before_sweep = len(receiver.received)
    _sweep()
    hooks.drain()

    # Then the canceled event arrives once, after the sweep
    assert (blip[0].refused, before_sweep) == (1, 0)
    [post] = receiver.received
    assert (post.headers["webhook-id"], json.loads(post.body)["type"]) == (f"msg_{job_id}", "job.canceled")


def test_given_a_pending_delivery_an_hour_overdue_when_redelivered_then_202_and_it_lands(
    aws: Aws, call_api, hooks: Hooks, receiver: Receiver
):
    # Given a delivery whose message was lost: pending, its next attempt due two hours ago
    clock = Clock()
    clock.now -= timedelta(hours=2)
    _record(aws, f"{receiver.url}/hook", clock)

    # When it is redelivered
    answer = call_api("POST", "/v1/webhooks/deliveries/msg_img_01JD0000000000000000000000/redeliver")
    hooks.drain()

    # Then it starts a fresh series and the receiver gets it
    assert (answer.status, answer.body["status"]) == (202, "pending")
    [post] = receiver.received
    assert post.headers["webhook-id"] == "msg_img_01JD0000000000000000000000"
