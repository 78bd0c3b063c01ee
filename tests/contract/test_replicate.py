"""replicate (the official client), unchanged, against the Replicate double: `replicate.Client(base_url=double.url)`.

The client's own setting is enough here: `base_url` (or `REPLICATE_BASE_URL`) is the origin, and the client adds
`/v1/...`. Plain-http outputs stay strings (the client wraps only `https:` and `data:` values in FileOutput), so the
test downloads them itself.
"""

from __future__ import annotations

import base64
import io

import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ModelError, ReplicateError

from tests.doubles.keys import REPLICATE_TOKEN
from tests.doubles.replicate import E005, ReplicateDouble
from tests.doubles.storage import StorageDouble

SCHNELL = "black-forest-labs/flux-schnell"
DEV = "black-forest-labs/flux-dev"


@pytest.fixture
def client(replicate_double: ReplicateDouble) -> replicate.Client:
    client = replicate.Client(api_token=REPLICATE_TOKEN, base_url=replicate_double.url)
    client.poll_interval = 0.01  # speed only
    return client


def test_given_prefer_wait_long_enough_when_run_then_the_output_comes_in_the_create_answer(
    client: replicate.Client, replicate_double: ReplicateDouble, storage: StorageDouble
):
    output = client.run(SCHNELL, input={"prompt": "a cat", "aspect_ratio": "16:9", "output_format": "png"})

    [url] = output
    assert "/replicate/xezq/" in url and url.endswith("/out-0.png")
    downloaded = httpx.get(url)
    assert downloaded.content[:4] == b"\x89PNG"
    [create] = replicate_double.server.calls("POST")
    assert (create.path, create.headers["prefer"]) == (f"/v1/models/{SCHNELL}/predictions", "wait")
    assert create.headers["authorization"] == f"Bearer {REPLICATE_TOKEN}"
    assert replicate_double.server.calls("GET") == []  # nothing left to poll
    assert all("authorization" not in seen.headers for seen in storage.requests)


def test_given_a_short_wait_when_created_then_starting_with_null_output_and_polling_finishes_it(
    client: replicate.Client, replicate_double: ReplicateDouble
):
    replicate_double.run_seconds = 5

    prediction = client.models.predictions.create(model=DEV, input={"prompt": "a cat", "guidance": 3}, wait=1)
    first = (prediction.status, prediction.output)
    prediction.wait()

    assert first == ("starting", None)
    assert prediction.status == "succeeded" and len(prediction.output) == 1
    assert len(replicate_double.server.calls("GET", "/v1/predictions/")) == replicate_double.polls_until_done


def test_given_a_running_prediction_when_cancelled_then_canceled_and_recorded(
    client: replicate.Client, replicate_double: ReplicateDouble
):
    prediction = client.models.predictions.create(model=DEV, input={"prompt": "a cat"})

    prediction.cancel()
    prediction.reload()

    assert prediction.status == "canceled"
    assert replicate_double.cancels == [prediction.id]


def test_given_a_pinned_version_when_created_then_v1_predictions_serves_it(
    client: replicate.Client, replicate_double: ReplicateDouble
):
    version = next(v for v, model in replicate_double.versions.items() if model == SCHNELL)

    prediction = client.predictions.create(version=version, input={"prompt": "a cat"}, wait=10)

    assert (prediction.status, prediction.model, prediction.version) == ("succeeded", SCHNELL, version)


def test_given_a_moderation_failure_when_run_then_model_error_carries_e005(
    client: replicate.Client, replicate_double: ReplicateDouble
):
    replicate_double.fail_with = E005

    with pytest.raises(ModelError) as raised:
        client.run(SCHNELL, input={"prompt": "a cat"})

    assert raised.value.prediction.status == "failed"
    assert str(raised.value).endswith("(E005)")


def test_given_data_uri_outputs_when_run_then_the_client_decodes_the_image(
    client: replicate.Client, replicate_double: ReplicateDouble
):
    replicate_double.output_kind = "data_uri"

    [output] = client.run(SCHNELL, input={"prompt": "a cat"})

    assert output.read()[:4] == b"RIFF"  # WebP, Replicate's default output_format
    assert str(output).startswith("data:image/webp;base64,")
    assert base64.b64decode(str(output).split(",", 1)[1])[8:12] == b"WEBP"


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"prompt": "a cat", "aspect_ratio": "7:3"}, "input.aspect_ratio"),
        ({"prompt": "a cat", "num_inference_steps": 28}, "input.num_inference_steps"),
        ({"prompt": "a cat", "megapixels": "2"}, "input.megapixels"),
        ({"aspect_ratio": "1:1"}, "input.prompt"),
    ],
)
def test_given_an_input_the_schema_refuses_when_created_then_422_names_it(
    client: replicate.Client, replicate_double: ReplicateDouble, inputs: dict, field: str
):
    with pytest.raises(ReplicateError) as raised:
        client.models.predictions.create(model=SCHNELL, input=inputs)

    assert raised.value.status == 422
    assert raised.value.title == "Input validation failed"
    assert field in (raised.value.detail or "")


def test_given_unknown_inputs_when_created_then_dropped_by_default_and_422_in_strict_mode(
    client: replicate.Client, replicate_double: ReplicateDouble
):
    inputs = {"prompt": "a cat", "width": 768, "guidance_scale": 3.5}

    lenient = client.models.predictions.create(model=SCHNELL, input=inputs, wait=10)
    replicate_double.strict_inputs = True
    with pytest.raises(ReplicateError) as raised:
        client.models.predictions.create(model=SCHNELL, input=inputs)

    # width is not a FLUX input: the image keeps the default 1:1 at one megapixel.
    assert lenient.status == "succeeded"
    assert Image.open(io.BytesIO(httpx.get(lenient.output[0]).content)).size == (1024, 1024)
    assert raised.value.status == 422


def test_given_a_bad_token_or_no_credit_when_called_then_rfc7807_errors(
    replicate_double: ReplicateDouble, client: replicate.Client
):
    stranger = replicate.Client(api_token="r8_unknown", base_url=replicate_double.url)
    replicate_double.out_of_credit.add(REPLICATE_TOKEN)

    with pytest.raises(ReplicateError) as unauthenticated:
        stranger.accounts.current()
    with pytest.raises(ReplicateError) as no_credit:
        client.run(SCHNELL, input={"prompt": "a cat"})

    assert (unauthenticated.value.status, unauthenticated.value.title) == (401, "Unauthenticated")
    assert (no_credit.value.status, no_credit.value.title) == (402, "Insufficient credit")
    assert client.accounts.current().username == "alice"  # the key check still answers


@pytest.mark.parametrize("retry_after", [1, None])
def test_given_a_throttled_create_when_called_then_429_reaches_the_caller_and_the_next_create_works(
    client: replicate.Client, replicate_double: ReplicateDouble, retry_after: int | None
):
    replicate_double.throttle(retry_after)

    with pytest.raises(ReplicateError) as raised:
        client.models.predictions.create(model=SCHNELL, input={"prompt": "a cat"})

    # POST is never retried by the client (PROVIDERS-ROUTES.md 3.1): the 429 reaches the caller at once.
    assert raised.value.status == 429
    assert len(replicate_double.server.calls("POST")) == 1
    assert client.models.predictions.create(model=SCHNELL, input={"prompt": "a cat"}).status == "starting"
    # The header itself, read raw (the client's error does not keep headers).
    replicate_double.throttle(retry_after)
    raw = httpx.post(
        f"{replicate_double.base_url}/models/{SCHNELL}/predictions",
        json={"input": {"prompt": "a cat"}},
        headers={"authorization": f"Bearer {REPLICATE_TOKEN}"},
    )
    assert (raw.status_code, raw.headers.get("retry-after")) == (429, None if retry_after is None else "1")
