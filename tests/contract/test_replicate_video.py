"""replicate (the official client), unchanged, against the Replicate double's Wan video models: a prediction
created with `Prefer: wait`, finished at once or after polling, and canceled, exactly as for the FLUX models
(tests/contract/test_replicate.py says how the client reaches the double).

Each finished prediction is also read by the project's parser (imagegen.providers.replicate.parse_prediction, the
one the video part uses), so the double's answer and our reading of it agree with the official client.
"""

from __future__ import annotations

import httpx
import pytest
import replicate
from imagegen.providers.base import ImageBytes, ResultUrl
from imagegen.providers.replicate import parse_prediction
from replicate.exceptions import ReplicateError

from tests.doubles.keys import REPLICATE_TOKEN
from tests.doubles.replicate import ReplicateDouble
from tests.doubles.storage import StorageDouble
from tests.doubles.video_apps import REPLICATE_I2V, REPLICATE_T2V

FIRST_FRAME = "https://example.com/first-frame.png"


@pytest.fixture
def client(replicate_double: ReplicateDouble) -> replicate.Client:
    client = replicate.Client(api_token=REPLICATE_TOKEN, base_url=replicate_double.url)
    client.poll_interval = 0.01  # speed only
    return client


def test_given_a_text_to_video_run_when_it_finishes_within_the_wait_then_the_output_is_the_video_url(
    client: replicate.Client, replicate_double: ReplicateDouble, storage: StorageDouble
):
    replicate_double.run_seconds = 0.5

    output = client.run(
        REPLICATE_T2V, input={"prompt": "a paper boat", "resolution": "480p", "aspect_ratio": "16:9", "seed": 3}
    )

    [made] = replicate_double.video.made
    assert output == made.url  # plain http: the client leaves it a string
    assert httpx.get(output).content == made.data and made.data[4:8] == b"ftyp"
    [create] = replicate_double.server.calls("POST")
    assert create.path == f"/v1/models/{REPLICATE_T2V}/predictions"
    assert replicate_double.server.calls("GET") == []
    assert all("authorization" not in seen.headers for seen in storage.requests)


def test_given_a_short_wait_when_created_then_starting_and_polling_finishes_it_with_the_video(
    client: replicate.Client, replicate_double: ReplicateDouble
):
    prediction = client.models.predictions.create(
        model=REPLICATE_I2V, input={"prompt": "it sails", "image": FIRST_FRAME, "resolution": "720p"}, wait=1
    )
    first = (prediction.status, prediction.output)
    prediction.wait()

    assert first == ("starting", None)
    assert prediction.status == "succeeded"
    assert prediction.input["image"] == FIRST_FRAME
    [made] = replicate_double.video.made
    assert prediction.output == made.url
    assert parse_prediction(prediction.dict()) == ResultUrl(made.url)


@pytest.mark.parametrize("shape", ["list", "data_uri"])
def test_given_the_other_output_readings_when_run_then_our_parser_takes_the_same_video(
    client: replicate.Client, replicate_double: ReplicateDouble, shape: str
):
    replicate_double.run_seconds = 0.5
    replicate_double.video.output_shape = shape

    prediction = client.models.predictions.create(model=REPLICATE_T2V, input={"prompt": "a boat"}, wait=5)

    [made] = replicate_double.video.made
    result = parse_prediction(prediction.dict())
    if shape == "list":
        assert prediction.output == [made.url] and result == ResultUrl(made.url)
    else:
        assert isinstance(result, ImageBytes) and result.data == made.data


def test_given_a_running_video_prediction_when_cancelled_then_canceled_and_recorded(
    client: replicate.Client, replicate_double: ReplicateDouble
):
    prediction = client.models.predictions.create(model=REPLICATE_T2V, input={"prompt": "never mind"})

    prediction.cancel()
    prediction.reload()

    assert prediction.status == "canceled"
    assert replicate_double.cancels == [prediction.id]
    assert replicate_double.video.made == []


@pytest.mark.parametrize(
    ("model", "inputs", "field"),
    [
        (REPLICATE_T2V, {"prompt": "a boat", "resolution": "580p"}, "input.resolution"),
        (REPLICATE_T2V, {"prompt": "a boat", "aspect_ratio": "1:1"}, "input.aspect_ratio"),
        (REPLICATE_I2V, {"prompt": "a boat"}, "input.image"),
    ],
)
def test_given_an_input_the_video_schema_refuses_when_created_then_422_names_it(
    client: replicate.Client, model: str, inputs: dict, field: str
):
    with pytest.raises(ReplicateError) as raised:
        client.models.predictions.create(model=model, input=inputs)

    assert raised.value.status == 422
    assert field in (raised.value.detail or "")
