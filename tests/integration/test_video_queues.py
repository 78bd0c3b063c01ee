"""Video jobs through fal's queue and Replicate's predictions, on moto's server and the fal and Replicate doubles:
submitted, checked by delayed messages (or finished within Replicate's `Prefer: wait`), streamed into S3 byte for
byte, a not-a-video falling through to the next provider, a failed prediction's error, NSFW, and a cancel that
reaches the provider.

The worker runs in-process, driven as in tests/integration/test_video_jobs.py: each check message is the one the
parked job holds the token of, so no test waits for SQS's delay.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import pytest
from imagegen import wiring
from imagegen.messages import CheckMessage
from PIL import Image

from tests.conftest import Aws
from tests.doubles.fal import FalDouble
from tests.doubles.replicate import ReplicateDouble
from tests.doubles.video_apps import FAL_I2V, FAL_T2V, REPLICATE_I2V, REPLICATE_T2V
from tests.integration.test_video_jobs import Worker, _bucket_keys, _job, _stored

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration


@pytest.fixture
def queues(aws: Aws, queue_doubles_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """fal and Replicate pointed at their doubles (and no SiliconFlow key); result links on loopback admitted."""
    for name, value in {**queue_doubles_environ, "MEDIA_ALLOW_PRIVATE_NETWORKS": "true"}.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    return queue_doubles_environ


@pytest.fixture
def worker(aws: Aws) -> Worker:
    return Worker(aws)


def _png_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (36, 64), (20, 90, 200)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class TestFal:
    def test_given_fal_queued_then_in_progress_then_completed_when_checked_then_the_stored_video_is_the_doubles(
        self, call_api: Callable[..., Any], queues: dict[str, str], fal_double: FalDouble, worker: Worker, aws: Aws
    ) -> None:
        # Given a video job for fal in a size its Wan app does not make
        body = {"prompt": "a paper boat", "image_size": "1000x900", "seed": 7, "providers": ["fal"]}
        job_id = call_api("POST", "/v1/videos", body=body).body["id"]

        # When the worker submits it, and takes each check message as it comes due
        worker.generate()
        parked = _job(aws, job_id)
        job = worker.until_done(job_id)

        # Then: queued at fal between checks (IN_QUEUE, IN_PROGRESS, COMPLETED), the result read once, the video
        # stored byte for byte, and the size's mapping in the warnings
        assert (parked.status, parked.attempts[-1].outcome) == ("running", "pending")
        (request,) = fal_double.requests.values()
        assert (request.app, request.status_calls, request.result_calls, worker.checks) == (FAL_T2V, 3, 1, 3)
        assert request.body == {
            "prompt": "a paper boat",
            "resolution": "720p",
            "aspect_ratio": "1:1",
            "seed": 7,
            "enable_safety_checker": True,
        }
        assert (job.status, job.provider, job.model) == ("succeeded", "fal", FAL_T2V)
        assert "fal: size 1000x900 -> resolution 720p, aspect_ratio 1:1 (720x720)" in job.warnings
        (made,) = fal_double.apps.video.made
        assert job.video_key == f"videos/alice/{job_id}.mp4"
        assert _stored(aws, job.video_key) == made.data
        assert job.video is not None and (job.video.bytes, job.video.width) == (len(made.data), 48)

    def test_given_an_input_image_when_the_job_runs_then_fal_s_image_to_video_app_gets_it_as_image_url(
        self, call_api: Callable[..., Any], queues: dict[str, str], fal_double: FalDouble, worker: Worker, aws: Aws
    ) -> None:
        image = _png_data_uri()
        body = {"prompt": "it sails", "image": image, "width": 720, "height": 1280, "providers": ["fal"]}
        job_id = call_api("POST", "/v1/videos", body=body).body["id"]

        worker.generate()
        job = worker.until_done(job_id)

        (request,) = fal_double.requests.values()
        assert (request.app, request.body["image_url"], request.body["aspect_ratio"]) == (FAL_I2V, image, "9:16")
        assert (job.status, job.model) == ("succeeded", FAL_I2V)
        assert job.video is not None and (job.video.width, job.video.height) == (36, 64)

    def test_given_fal_flags_the_video_when_collected_then_the_job_fails_as_a_refusal_and_nothing_is_stored(
        self, call_api: Callable[..., Any], queues: dict[str, str], fal_double: FalDouble, worker: Worker, aws: Aws
    ) -> None:
        fal_double.nsfw = True
        job_id = call_api("POST", "/v1/videos", body={"prompt": "flagged", "providers": ["fal"]}).body["id"]

        worker.generate()
        job = worker.until_done(job_id)

        assert job.status == "failed"
        last = job.attempts[-1]
        assert (last.provider, last.error_class) == ("fal", "content_policy")
        assert "has_nsfw_concepts" in (last.message or "")
        assert _bucket_keys(aws) == []


class TestReplicate:
    def test_given_a_prediction_done_within_prefer_wait_when_submitted_then_stored_at_once_with_no_check(
        self,
        call_api: Callable[..., Any],
        queues: dict[str, str],
        replicate_double: ReplicateDouble,
        worker: Worker,
        aws: Aws,
    ) -> None:
        # Given Wan on Replicate finishing within the create's `Prefer: wait=1`
        replicate_double.run_seconds = 0.5
        body = {"prompt": "a paper boat", "width": 640, "height": 360, "seed": 3, "providers": ["replicate"]}
        job_id = call_api("POST", "/v1/videos", body=body).body["id"]

        # When the worker takes the generate message
        worker.generate()
        job = _job(aws, job_id)

        # Then the prediction's output was fetched and stored in the same invocation: no check, no GET
        (prediction,) = replicate_double.predictions.values()
        assert prediction.input == {"prompt": "a paper boat", "resolution": "480p", "aspect_ratio": "16:9", "seed": 3}
        assert replicate_double.server.calls("POST")[0].headers["prefer"] == "wait=1"
        assert replicate_double.server.calls("GET") == []
        assert (job.status, job.provider, job.model, worker.checks) == ("succeeded", "replicate", REPLICATE_T2V, 0)
        (made,) = replicate_double.video.made
        assert _stored(aws, f"videos/alice/{job_id}.mp4") == made.data
        assert "replicate: size 640x360 -> resolution 480p, aspect_ratio 16:9 (854x480)" in job.warnings

    def test_given_a_slower_prediction_when_checked_then_it_succeeds_through_checks_with_the_image(
        self,
        call_api: Callable[..., Any],
        queues: dict[str, str],
        replicate_double: ReplicateDouble,
        worker: Worker,
        aws: Aws,
    ) -> None:
        image = _png_data_uri()
        body = {"prompt": "it sails", "image": image, "providers": ["replicate"]}
        job_id = call_api("POST", "/v1/videos", body=body).body["id"]

        worker.generate()
        parked = _job(aws, job_id)
        job = worker.until_done(job_id)

        (prediction,) = replicate_double.predictions.values()
        assert (parked.status, parked.attempts[-1].outcome) == ("running", "pending")
        assert (prediction.model, prediction.input["image"], "aspect_ratio" in prediction.input) == (
            REPLICATE_I2V,
            image,
            False,
        )
        assert (prediction.gets, worker.checks) == (replicate_double.polls_until_done, 2)
        assert (job.status, job.model) == ("succeeded", REPLICATE_I2V)
        assert _stored(aws, f"videos/alice/{job_id}.mp4") == replicate_double.video.made[0].data

    def test_given_a_failed_prediction_when_checked_then_the_attempt_reports_its_error(
        self,
        call_api: Callable[..., Any],
        queues: dict[str, str],
        replicate_double: ReplicateDouble,
        worker: Worker,
        aws: Aws,
    ) -> None:
        replicate_double.fail_with = "CUDA out of memory"
        job_id = call_api("POST", "/v1/videos", body={"prompt": "x", "providers": ["replicate"]}).body["id"]

        worker.generate()
        job = worker.until_done(job_id)

        last = job.attempts[-1]
        assert (job.status, last.error_class, last.message) == ("failed", "faulted", "Replicate: CUDA out of memory")


def test_given_fal_serves_an_html_page_as_video_when_collected_then_it_falls_through_to_replicate(
    call_api: Callable[..., Any],
    queues: dict[str, str],
    fal_double: FalDouble,
    replicate_double: ReplicateDouble,
    worker: Worker,
    aws: Aws,
) -> None:
    # Given fal's video link serving an HTML error page as video/mp4, and Replicate next in the chain
    fal_double.apps.video.video_kind = "html"
    replicate_double.run_seconds = 0.5
    body = {"prompt": "a broken CDN", "providers": ["fal", "replicate"]}
    job_id = call_api("POST", "/v1/videos", body=body).body["id"]

    # When fal's request completes and its link is fetched
    worker.generate()
    job = worker.until_done(job_id)

    # Then the HTML is refused with its reason, nothing of it stored, and Replicate's video is the job's
    first = job.attempts[0]
    assert (first.provider, first.outcome, first.error_class) == ("fal", "failed", "invalid_video")
    assert (job.status, job.provider) == ("succeeded", "replicate")
    assert _bucket_keys(aws) == [f"videos/alice/{job_id}.mp4"]
    assert _stored(aws, f"videos/alice/{job_id}.mp4") == replicate_double.video.made[0].data


@pytest.mark.parametrize("provider", ["fal", "replicate"])
def test_given_a_video_waiting_at_the_provider_when_canceled_then_its_cancel_is_called_and_the_job_says_so(
    call_api: Callable[..., Any],
    queues: dict[str, str],
    fal_double: FalDouble,
    replicate_double: ReplicateDouble,
    worker: Worker,
    aws: Aws,
    provider: str,
) -> None:
    # Given a video job queued at the provider and checked once
    job_id = call_api("POST", "/v1/videos", body={"prompt": "never mind", "providers": [provider]}).body["id"]
    worker.generate()
    token = worker.check(job_id).lease_token
    assert token is not None

    # When it is canceled, the worker takes the cancel message, and the check it waited for comes due
    canceled = call_api("POST", f"/v1/videos/{job_id}/cancel")
    worker.generate()
    wiring.worker().handle(
        CheckMessage(user_id="alice", job_id=job_id, check_token=token), receive_count=1, remaining_seconds=100
    )

    # Then the provider's cancel was called for that request, no more checks went out, and the job says so
    if provider == "fal":
        (remote,) = fal_double.requests.values()
        assert (fal_double.cancels, remote.status_calls) == ([remote.id], 1)
    else:
        (prediction,) = replicate_double.predictions.values()
        assert (replicate_double.cancels, prediction.gets) == ([prediction.id], 1)
    assert canceled.status == 200
    job = call_api("GET", f"/v1/videos/{job_id}").body
    assert job["status"] == "canceled"
    assert job["warnings"] == [
        f"{provider} was asked to cancel the video request: checks on it stopped, and its result is not fetched (a "
        "run already under way is billed as the provider bills it)"
    ]
    assert _bucket_keys(aws) == [] and fal_double.apps.video.made == replicate_double.video.made == []
