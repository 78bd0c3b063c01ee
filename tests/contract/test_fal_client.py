"""fal-client, unchanged, against the fal double: submit, status, result and cancel on the queue, and the sync run.

How the client reaches the double: fal-client builds every first URL from `fal_client.client.QUEUE_URL_FORMAT` and
`RUN_URL_FORMAT`, module constants made once at import from `FAL_RUN_HOST` / `FAL_QUEUE_RUN_HOST` and always
`https://`; a loopback double speaks plain HTTP, so the test sets those two constants to the double's origins. The
status, result and cancel calls then follow the URLs the double's submit answer returned, as in production.
"""

from __future__ import annotations

from collections.abc import Iterator

import fal_client
import httpx
import pytest
from fal_client import client as fal_module
from fal_client.client import Completed, FalClientHTTPError, InProgress, Queued

from tests.doubles.fal import LOCKED_EXHAUSTED, FalDouble
from tests.doubles.keys import FAL_KEY
from tests.doubles.storage import StorageDouble


@pytest.fixture
def client(fal: FalDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[fal_client.SyncClient]:
    monkeypatch.setattr(fal_module, "QUEUE_URL_FORMAT", f"{fal.queue_url}/")
    monkeypatch.setattr(fal_module, "RUN_URL_FORMAT", f"{fal.run_url}/")
    yield fal_client.SyncClient(key=FAL_KEY)


def test_given_a_queued_request_when_polled_then_it_goes_queued_in_progress_completed_and_the_image_downloads(
    client: fal_client.SyncClient, fal: FalDouble, storage: StorageDouble
):
    # Given a submit to the FLUX.1-dev app (a sub-path of fal-ai/flux)
    handle = client.submit("fal-ai/flux/dev", {"prompt": "a cat", "image_size": "square", "seed": 5})

    # When the client follows the request to its end
    events = list(handle.iter_events(with_logs=True, interval=0.01))
    output = handle.get()

    # Then the URLs dropped the sub-path, the statuses came in fal's order, and the output is fal's shape
    assert handle.status_url == f"{fal.queue_url}/fal-ai/flux/requests/{handle.request_id}/status"
    assert [type(event) for event in events] == [Queued, InProgress, Completed]
    assert output["has_nsfw_concepts"] == [False] and output["seed"] == 5
    [image] = output["images"]
    assert (image["width"], image["height"], image["content_type"]) == (512, 512, "image/jpeg")
    downloaded = httpx.get(image["url"])
    assert downloaded.status_code == 200 and downloaded.content[:2] == b"\xff\xd8"
    assert "/fal/files/" in image["url"]
    submit = fal.server.calls("POST")[0]
    assert submit.headers["authorization"] == f"Key {FAL_KEY}"
    assert all("authorization" not in seen.headers for seen in storage.requests)


def test_given_a_running_request_when_cancelled_then_the_double_records_it_and_the_result_is_refused(
    client: fal_client.SyncClient, fal: FalDouble
):
    handle = client.submit("fal-ai/flux/schnell", {"prompt": "a cat"})

    handle.cancel()

    assert fal.cancels == [handle.request_id]
    status = handle.status()
    assert isinstance(status, Completed) and status.error == "Request was cancelled"
    with pytest.raises(FalClientHTTPError) as raised:
        handle.get()
    assert raised.value.status_code == 400


def test_given_the_sync_host_when_run_then_the_output_comes_in_the_answer(client: fal_client.SyncClient):
    output = client.run("fal-ai/flux/schnell", {"prompt": "a cat", "image_size": {"width": 640, "height": 384}})

    assert (output["images"][0]["width"], output["images"][0]["height"]) == (640, 384)


def test_given_nsfw_flagging_when_run_then_the_output_says_so(client: fal_client.SyncClient, fal: FalDouble):
    fal.nsfw = True

    output = client.run("fal-ai/flux/schnell", {"prompt": "a cat"})

    assert output["has_nsfw_concepts"] == [True]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"prompt": "a cat", "negative_prompt": "dog"}, "negative_prompt"),
        ({"prompt": "a cat", "num_inference_steps": 30}, "num_inference_steps"),
        ({"prompt": "a cat", "image_size": "huge"}, "image_size"),
    ],
)
def test_given_an_input_the_schema_refuses_when_run_then_422_names_the_field(
    client: fal_client.SyncClient, arguments: dict, field: str
):
    with pytest.raises(FalClientHTTPError) as raised:
        client.run("fal-ai/flux/schnell", arguments)

    assert raised.value.status_code == 422
    assert [issue["loc"] for issue in raised.value.message] == [["body", field]]


def test_given_an_invalid_input_on_the_queue_when_the_result_is_read_then_422(client: fal_client.SyncClient):
    handle = client.submit("fal-ai/flux/dev", {"prompt": "a cat", "num_images": 9})

    with pytest.raises(FalClientHTTPError) as raised:
        handle.get(interval=0.01)

    assert raised.value.status_code == 422


@pytest.mark.parametrize(
    ("key", "locked", "status", "detail"),
    [
        ("other:key", None, 401, "No user found for Key ID and Secret"),
        ("no-colon", None, 401, "Invalid Key Authorization header format"),
        (FAL_KEY, LOCKED_EXHAUSTED, 403, "User is locked. Reason: Exhausted balance"),
    ],
)
def test_given_a_refused_key_when_submitting_then_fal_client_raises_with_fal_s_detail(
    fal: FalDouble, monkeypatch: pytest.MonkeyPatch, key: str, locked: str | None, status: int, detail: str
):
    monkeypatch.setattr(fal_module, "QUEUE_URL_FORMAT", f"{fal.queue_url}/")
    fal.locked = locked

    with pytest.raises(FalClientHTTPError) as raised:
        fal_client.SyncClient(key=key).submit("fal-ai/flux/dev", {"prompt": "a cat"})

    assert raised.value.status_code == status
    assert detail in raised.value.message


def test_given_the_key_check_call_when_made_then_the_key_decides_the_answer(fal: FalDouble):
    good = httpx.get(f"{fal.api_url}/v1/storage/settings", headers={"authorization": f"Key {FAL_KEY}"})
    bad = httpx.get(f"{fal.api_url}/v1/storage/settings", headers={"authorization": "Key other:key"})

    assert good.status_code == 200 and "expiration_duration_seconds" in good.json()
    assert bad.status_code == 401
