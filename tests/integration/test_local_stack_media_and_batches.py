"""End to end over HTTP on the local stack: GET /v1/media against the storage double, and batches whose items run in
parallel worker invocations against the SiliconFlow double (which leaves its results on the storage double)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from imagegen.local import LocalStack

from tests.doubles.images import picture
from tests.doubles.keys import SF_KEY
from tests.doubles.siliconflow import SiliconFlowDouble
from tests.doubles.storage import StorageDouble

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.local_stack", "tests.doubles.fixtures"]

ALICE, BOB = "tok-alice-0001", "tok-bob-0002"
TOKENS = f"alice:{ALICE},bob:{BOB}"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
# 64x64 fits FLUX.1-schnell's pixel budget as asked, so the double draws (and the worker stores) tiny PNGs.
TINY = {"width": 64, "height": 64}
PNG = picture(64, 64, "a cat on a roof")
# What tests.doubles.local_stack's local_stack_factory gives (not imported: pytest_plugins loads that module).
StartStack = Callable[..., LocalStack]
BLOB = "outputs%2F20260101%2Fcat.png"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # No redirects and no proxy or netrc from the environment: what the stack answers is what the test sees.
    with httpx.Client(timeout=15.0, follow_redirects=False, trust_env=False) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(condition: Callable[[], Any], *, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)
    return value


# --- GET /v1/media ----------------------------------------------------------------------------------------------


@pytest.fixture
def media_stack(local_stack_factory: StartStack) -> LocalStack:
    """The repository's template with only the gateway: the media proxy needs no worker, poller or schedule."""
    return local_stack_factory(env_overrides={"IMAGEGEN_LOCAL_TOKENS": TOKENS}, run_workers=False, run_schedules=False)


def media(http: httpx.Client, stack: LocalStack, url: str, *, token: str | None = ALICE) -> httpx.Response:
    # The signed URL is one query value, percent-encoded whole, as docs/media-proxy.md tells clients to send it.
    return http.get(f"{stack.url}/v1/media?url={quote(url, safe='')}", headers=bearer(token) if token else {})


def test_given_a_sas_link_on_the_storage_when_get_media_then_200_with_its_bytes_and_no_authorization_upstream(
    media_stack: LocalStack, storage: StorageDouble, http: httpx.Client
) -> None:
    # Given a blob behind an Azure SAS link that the storage double signed
    storage.put(BLOB, PNG, content_type="image/png")
    url = storage.mint_url("azure", BLOB, ttl_seconds=3600)

    # When a caller with a valid API token asks for it through the gateway
    answer = media(http, media_stack, url)

    # Then the image comes back byte for byte, with the storage's content type
    assert (answer.status_code, answer.headers["content-type"], answer.content) == (200, "image/png", PNG)
    assert answer.headers["x-content-type-options"] == "nosniff"
    # And the storage saw one GET of the link exactly as signed, accepted it, and got no Authorization header:
    # the caller's Bearer token (which Azure would answer with 403 AuthenticationFailed) stayed at the gateway
    (request,) = storage.requests
    assert (request.method, request.raw_target, request.status) == ("GET", url.removeprefix(storage.base_url), 200)
    assert "authorization" not in request.headers
    assert [value for value in request.headers.values() if ALICE in value] == []


def test_given_an_expired_sas_link_when_get_media_then_410_expired_and_the_storage_is_not_called(
    media_stack: LocalStack, storage: StorageDouble, http: httpx.Client
) -> None:
    # Given a SAS link whose `se` passed an hour ago
    storage.put(BLOB, PNG, content_type="image/png")
    url = storage.mint_url("azure", BLOB, ttl_seconds=60, issued_seconds_ago=3600)

    # When it is asked for through the gateway
    answer = media(http, media_stack, url)

    # Then 410 expired, read from the link itself: no request reached the storage
    assert answer.status_code == 410
    (se,) = parse_qs(urlsplit(url).query)["se"]
    assert answer.json() == {
        "error": {
            "code": "expired",
            "message": "the signed link has expired",
            "hint": "regenerate the image",
            "details": {"expired_at": se.replace("Z", "+00:00"), "source": "se"},
        }
    }
    assert storage.request_count == 0


def test_given_the_metadata_address_when_get_media_then_400_url_not_allowed(
    media_stack: LocalStack, http: httpx.Client
) -> None:
    # Given the local stack, which admits plain http and loopback for its doubles (MEDIA_ALLOW_PRIVATE_NETWORKS)
    # When the instance metadata endpoint is asked for
    answer = media(http, media_stack, "http://169.254.169.254/latest/meta-data/")

    # Then it is still refused: metadata addresses are never fetched, whatever the private-network setting
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "url_not_allowed"
    assert answer.json()["error"]["message"] == "URL not allowed: address 169.254.169.254 is a cloud metadata address"
    assert media_stack.function("MediaProxyFunction").invocations == 1


def test_given_no_token_when_get_media_then_401_and_neither_the_proxy_nor_the_storage_runs(
    media_stack: LocalStack, storage: StorageDouble, http: httpx.Client
) -> None:
    # Given a valid SAS link
    storage.put(BLOB, PNG, content_type="image/png")
    url = storage.mint_url("azure", BLOB)

    # When it is asked for without an Authorization header
    answer = media(http, media_stack, url, token=None)

    # Then the gateway answers 401 itself: the media proxy is not invoked and the storage not called
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert media_stack.function("MediaProxyFunction").invocations == 0
    assert storage.request_count == 0


# --- /v1/batches --------------------------------------------------------------------------------------------------


@pytest.fixture
def batch_stack(
    local_stack_factory: StartStack, siliconflow_double: SiliconFlowDouble
) -> Iterator[tuple[LocalStack, SiliconFlowDouble]]:
    """The template with SiliconFlow (its double) as the only provider and four concurrent worker invocations."""
    stack = local_stack_factory(
        env_overrides={
            "IMAGEGEN_LOCAL_TOKENS": TOKENS,
            "IMAGEGEN_PROVIDERS": "siliconflow",
            "SILICONFLOW_API_KEY": SF_KEY,
            "SILICONFLOW_BASE_URL": siliconflow_double.base_url,
            "SILICONFLOW_MODELS": SCHNELL,
            "SILICONFLOW_TIMEOUT_S": "10",
            # No rate limit of ours: these tests are about four generations at the provider at once.
            "SILICONFLOW_RPM": "0",
            "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "4",
            # Longer than any hold below, so no message comes back while its job waits at the double.
            "IMAGEGEN_LOCAL_VISIBILITY_TIMEOUT": "20",
        },
        run_schedules=False,
    )
    yield stack, siliconflow_double
    # A failed test must not leave worker threads waiting at the gate while the stack stops.
    siliconflow_double.server.release()


def create_batch(http: httpx.Client, stack: LocalStack, prompts: list[str], token: str = ALICE) -> dict[str, Any]:
    body = {"defaults": TINY, "items": [{"prompt": prompt} for prompt in prompts]}
    answer = http.post(f"{stack.url}/v1/batches", json=body, headers=bearer(token))
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def read_batch(http: httpx.Client, stack: LocalStack, batch_id: str, token: str = ALICE) -> httpx.Response:
    return http.get(f"{stack.url}/v1/batches/{batch_id}", headers=bearer(token))


def wait_until_ended(http: httpx.Client, stack: LocalStack, batch_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        batch = read_batch(http, stack, batch_id).json()
        return dict(batch) if batch["status"] != "running" else None

    return dict(wait_for(ended))


def queue_is_empty(stack: LocalStack) -> bool:
    """Every job message deleted, which the poller does only after the worker invocation returned."""
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.physical_id("JobsQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_given_a_batch_of_four_when_created_over_http_then_the_items_run_in_parallel_and_all_succeed(
    batch_stack: tuple[LocalStack, SiliconFlowDouble], storage: StorageDouble, http: httpx.Client
) -> None:
    stack, siliconflow = batch_stack
    # Given the SiliconFlow double holding every generation until the test lets go
    siliconflow.server.hold()

    # When a batch of four is created over HTTP
    created = create_batch(http, stack, [f"page {n} of a fox story" for n in range(4)])

    # Then all four generations are at the provider at the same time: four worker invocations ran concurrently
    assert (created["status"], created["progress"]) == ("running", "0/4")
    assert siliconflow.server.wait_held(4)
    siliconflow.server.release()
    # And once let go, every item succeeds
    batch = wait_until_ended(http, stack, created["id"])
    assert (batch["status"], batch["progress"], batch["total"]) == ("succeeded", "4/4", 4)
    assert batch["counts"] == {"queued": 0, "running": 0, "succeeded": 4, "failed": 0, "canceled": 0}
    assert [(item["index"], item["status"], item["provider"], item["model"]) for item in batch["items"]] == [
        (n, "succeeded", "siliconflow", SCHNELL) for n in range(4)
    ]
    assert {
        (item["image"]["width"], item["image"]["height"], item["image"]["content_type"]) for item in batch["items"]
    } == {(64, 64, "image/png")}
    worker = stack.function("WorkerFunction")
    assert (worker.invocations, worker.containers, worker.errors) == (4, 4, 0)
    # And each provider call carried the key, while each result download (an OSS link) carried no Authorization
    posts = siliconflow.server.calls("POST", "/v1/images/generations")
    assert sorted(post.json()["prompt"] for post in posts) == [f"page {n} of a fox story" for n in range(4)]
    assert {post.headers["authorization"] for post in posts} == {f"Bearer {SF_KEY}"}
    assert storage.wait_idle()
    assert [(r.kind, r.status, "authorization" in r.headers) for r in storage.requests] == [("oss", 200, False)] * 4


def test_given_a_running_batch_when_canceled_then_every_item_ends_canceled_and_keeps_no_image(
    batch_stack: tuple[LocalStack, SiliconFlowDouble], http: httpx.Client
) -> None:
    stack, siliconflow = batch_stack
    # Given a first batch that finished, and a second one whose two items are running at the provider
    first = create_batch(http, stack, ["a finished page"])
    assert wait_until_ended(http, stack, first["id"])["status"] == "succeeded"
    siliconflow.server.hold()
    second = create_batch(http, stack, ["a lantern", "an owl"])
    assert siliconflow.server.wait_held(2)

    # When the second batch is canceled over HTTP
    canceled = http.post(f"{stack.url}/v1/batches/{second['id']}/cancel", headers=bearer(ALICE))

    # Then it answers 200 with the batch ended as canceled
    assert canceled.status_code == 200
    body = canceled.json()
    assert (body["status"], body["progress"], body["completed_at"] is not None) == ("canceled", "2/2", True)
    assert body["counts"] == {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "canceled": 2}
    assert "retry-after" not in canceled.headers
    # And once the provider answers and the workers return, their results are discarded: the items stay canceled
    siliconflow.server.release()
    wait_for(lambda: queue_is_empty(stack))
    after = read_batch(http, stack, second["id"]).json()
    assert [(item["status"], item["image"]) for item in after["items"]] == [("canceled", None), ("canceled", None)]
    assert after["status"] == "canceled"
    # (the provider did answer both, and the workers that met the lost lease returned without an invocation error)
    assert len(siliconflow.server.calls("POST")) == 3
    assert (stack.function("WorkerFunction").invocations, stack.function("WorkerFunction").errors) == (3, 0)
    # And the first batch is untouched by the cancel
    assert read_batch(http, stack, first["id"]).json()["status"] == "succeeded"


def test_given_another_users_batch_id_when_read_or_canceled_then_404_and_the_batch_is_unchanged(
    local_stack_factory: StartStack, http: httpx.Client
) -> None:
    # Given a batch of alice's (no workers run: its item stays queued)
    stack = local_stack_factory(env_overrides={"IMAGEGEN_LOCAL_TOKENS": TOKENS}, run_workers=False, run_schedules=False)
    created = create_batch(http, stack, ["alice's page"])

    # When bob reads it and tries to cancel it
    read = read_batch(http, stack, created["id"], token=BOB)
    cancel = http.post(f"{stack.url}/v1/batches/{created['id']}/cancel", headers=bearer(BOB))

    # Then both are 404, as for an id that does not exist, and alice's batch is still queued
    assert (read.status_code, cancel.status_code) == (404, 404)
    assert read.json()["error"]["code"] == cancel.json()["error"]["code"] == "not_found"
    own = read_batch(http, stack, created["id"]).json()
    assert (own["status"], own["counts"]["queued"], own["counts"]["canceled"]) == ("running", 1, 0)
