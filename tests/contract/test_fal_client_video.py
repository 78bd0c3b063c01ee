"""fal-client, unchanged, against the fal double's Wan video apps: submit, status, result and cancel on the queue,
exactly as for the FLUX apps (tests/contract/test_fal_client.py says how the client reaches the double).

Each output is also read by the project's parser (imagegen.providers.fal_video), so the double's answer and our
reading of it are held to the same shape the official client returns.
"""

from __future__ import annotations

from collections.abc import Iterator

import fal_client
import httpx
import pytest
from fal_client import client as fal_module
from fal_client.client import Completed, FalClientHTTPError, InProgress, Queued
from imagegen.providers.base import ResultUrl
from imagegen.providers.fal_video import parse_video_output

from tests.doubles.fal import FalDouble
from tests.doubles.keys import FAL_KEY
from tests.doubles.storage import StorageDouble
from tests.doubles.video_apps import FAL_I2V, FAL_T2V

FIRST_FRAME = "https://example.com/first-frame.png"


@pytest.fixture
def client(fal: FalDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[fal_client.SyncClient]:
    monkeypatch.setattr(fal_module, "QUEUE_URL_FORMAT", f"{fal.queue_url}/")
    monkeypatch.setattr(fal_module, "RUN_URL_FORMAT", f"{fal.run_url}/")
    yield fal_client.SyncClient(key=FAL_KEY)


def test_given_a_text_to_video_submit_when_followed_to_its_end_then_the_video_url_serves_the_doubles_mp4(
    client: fal_client.SyncClient, fal: FalDouble, storage: StorageDouble
):
    # Given a submit to the Wan text-to-video app (a sub-path of fal-ai/wan)
    arguments = {"prompt": "a paper boat", "resolution": "720p", "aspect_ratio": "16:9", "seed": 7}
    handle = client.submit(FAL_T2V, arguments | {"enable_safety_checker": True})

    # When the client follows it through the queue and reads the output
    events = list(handle.iter_events(with_logs=True, interval=0.01))
    output = handle.get()

    # Then the follow-up URLs dropped the sub-path, the statuses came in fal's order, and video.url is the MP4
    assert handle.status_url == f"{fal.queue_url}/fal-ai/wan/requests/{handle.request_id}/status"
    assert [type(event) for event in events] == [Queued, InProgress, Completed]
    [made] = fal.apps.video.made
    assert output["video"]["url"] == made.url and output["video"]["content_type"] == "video/mp4"
    assert output["seed"] == 7
    downloaded = httpx.get(output["video"]["url"])
    assert downloaded.content == made.data and downloaded.content[4:8] == b"ftyp"
    assert parse_video_output(output) == ResultUrl(made.url)
    assert all("authorization" not in seen.headers for seen in storage.requests)


def test_given_an_image_to_video_submit_when_run_then_the_image_url_is_taken_and_the_video_made(
    client: fal_client.SyncClient, fal: FalDouble
):
    handle = client.submit(FAL_I2V, {"prompt": "it sails", "image_url": FIRST_FRAME, "aspect_ratio": "9:16"})

    output = handle.get(interval=0.01)

    [request] = fal.requests.values()
    assert request.body["image_url"] == FIRST_FRAME
    assert httpx.get(output["video"]["url"]).content == fal.apps.video.made[0].data


def test_given_the_bare_string_reading_when_read_then_fal_client_and_our_parser_take_the_url(
    client: fal_client.SyncClient, fal: FalDouble
):
    fal.apps.video.output_shape = "string"

    output = client.submit(FAL_T2V, {"prompt": "a boat"}).get(interval=0.01)

    assert isinstance(output["video"], str)
    assert parse_video_output(output) == ResultUrl(output["video"])


def test_given_a_running_video_request_when_cancelled_then_the_double_records_it_and_the_result_is_refused(
    client: fal_client.SyncClient, fal: FalDouble
):
    handle = client.submit(FAL_T2V, {"prompt": "never mind"})

    handle.cancel()

    assert fal.cancels == [handle.request_id]
    assert handle.cancel_url == f"{fal.queue_url}/fal-ai/wan/requests/{handle.request_id}/cancel"
    with pytest.raises(FalClientHTTPError) as raised:
        handle.get()
    assert raised.value.status_code == 400
    assert fal.apps.video.made == []


@pytest.mark.parametrize(
    ("app", "arguments", "field"),
    [
        (FAL_T2V, {"prompt": "a boat", "resolution": "1080p"}, "resolution"),
        (FAL_T2V, {"prompt": "a boat", "aspect_ratio": "auto"}, "aspect_ratio"),
        (FAL_T2V, {"prompt": "a boat", "num_frames": 500}, "num_frames"),
        (FAL_T2V, {"prompt": "a boat", "image_size": "square"}, "image_size"),
        (FAL_I2V, {"prompt": "a boat"}, "image_url"),
    ],
)
def test_given_an_input_the_video_schema_refuses_when_run_then_422_names_the_field(
    client: fal_client.SyncClient, app: str, arguments: dict, field: str
):
    with pytest.raises(FalClientHTTPError) as raised:
        client.run(app, arguments)

    assert raised.value.status_code == 422
    assert [issue["loc"] for issue in raised.value.message] == [["body", field]]
