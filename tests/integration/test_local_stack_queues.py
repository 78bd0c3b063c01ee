"""fal.ai and Replicate end to end on the local stack, and every image at the size it was asked for.

HTTP API -> SQS -> worker -> the provider chain -> the doubles on 127.0.0.1; queued remote requests are checked by
delayed SQS messages (the worker never waits for them), cancels reach the services, and the stored image is exactly
`width`x`height` whatever size the provider made.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from imagegen.local import LocalStack
from PIL import Image

from tests.doubles.fal import FalDouble
from tests.doubles.horde import HordeDouble
from tests.doubles.keys import FAL_KEY, REPLICATE_TOKEN
from tests.doubles.replicate import ReplicateDouble
from tests.doubles.siliconflow import SiliconFlowDouble
from tests.doubles.storage import StorageDouble
from tests.integration.test_local_stack_providers import Api, api_starter, outline, wait_for

pytest_plugins = ["tests.doubles.fixtures", "tests.doubles.local_stack"]
pytestmark = pytest.mark.integration

StartApi = Callable[..., Api]


@pytest.fixture
def start_api(
    local_stack_factory: Callable[..., LocalStack],
    doubles_environ: dict[str, str],
    queue_doubles_environ: dict[str, str],
) -> Iterator[StartApi]:
    """The repository's stack with every provider, fal and Replicate included, pointed at its double."""
    yield from api_starter(local_stack_factory, {**doubles_environ, **queue_doubles_environ})


def pending_messages(api: Api, job_id: str) -> list[str]:
    return [a["message"] for a in api.get_raw(job_id).json()["attempts"] if a["outcome"] == "pending"]


def stored_size(api: Api, job_id: str) -> tuple[str, tuple[int, int]]:
    """The image as a client downloads it: /content redirects to the stored object."""
    redirect = api.client.get(f"/v1/images/{job_id}/content")
    assert redirect.status_code == 302, redirect.text
    data = httpx.get(redirect.headers["location"]).content
    with Image.open(io.BytesIO(data)) as image:
        return str(image.format), image.size


class TestFalAndReplicateJobs:
    def test_given_fal_when_a_job_runs_then_delayed_checks_end_in_an_image_of_the_asked_size(
        self, start_api: StartApi, fal_double: FalDouble, storage: StorageDouble
    ) -> None:
        # Given fal's queue answering IN_QUEUE at the first status call and COMPLETED at the second
        fal_double.in_queue_polls, fal_double.in_progress_polls = 1, 0
        api = start_api()

        # When a 100x70 job runs on fal
        job_id = api.create(providers=["fal"], width=100, height=70, seed=5)
        seen: list[tuple[str, str | None]] = []

        def terminal() -> dict[str, Any] | None:
            job: dict[str, Any] = api.get_raw(job_id).json()
            last = job["attempts"][-1]["message"] if job["attempts"] else None
            if not seen or seen[-1] != (job["status"], last):
                seen.append((job["status"], last))
            return job if job["status"] not in ("queued", "running") else None

        job = wait_for(terminal, timeout=30)

        # Then: pending at fal between checks, one invocation per check, the image exactly 100x70
        assert ("running", "queued at fal; checking again in 2 s") in seen
        assert ("running", "still queued after 1 check(s); checking again in 3 s") in seen
        assert (job["status"], job["provider"], job["model"]) == ("succeeded", "fal", "fal-ai/flux/dev")
        assert job["attempts"][-1]["message"] == "done after 2 check(s)"
        image = job["image"]
        assert (image["width"], image["height"], image["source_width"], image["source_height"]) == (100, 70, 368, 256)
        assert stored_size(api, job_id) == ("PNG", (100, 70))
        assert api.worker_invocations == 3
        (remote,) = fal_double.requests.values()
        assert (remote.status_calls, remote.result_calls) == (2, 1)
        assert fal_double.server.calls("POST")[0].headers["authorization"] == f"Key {FAL_KEY}"
        assert [r.headers.get("authorization") for r in storage.requests] == [None]

    def test_given_replicate_when_the_prediction_outlasts_the_wait_then_delayed_checks_end_in_the_asked_size(
        self, start_api: StartApi, replicate_double: ReplicateDouble
    ) -> None:
        replicate_double.run_seconds, replicate_double.polls_until_done = 60, 2
        api = start_api()

        job = api.finished(api.create(providers=["replicate"], width=300, height=200))

        assert (job["status"], job["provider"]) == ("succeeded", "replicate")
        assert [a["outcome"] for a in job["attempts"]] == ["succeeded"]
        assert job["attempts"][0]["message"] == "done after 2 check(s)"
        image = job["image"]
        assert (image["width"], image["height"], image["source_width"], image["source_height"]) == (300, 200, 624, 416)
        assert stored_size(api, job["id"]) == ("PNG", (300, 200))
        assert api.worker_invocations == 3
        (create,) = replicate_double.server.calls("POST")
        assert (create.headers["prefer"], create.headers["authorization"]) == ("wait=1", f"Bearer {REPLICATE_TOKEN}")
        assert create.json()["input"]["aspect_ratio"] == "3:2"

    def test_given_replicate_done_within_the_wait_when_a_job_runs_then_one_invocation(
        self, start_api: StartApi, replicate_double: ReplicateDouble
    ) -> None:
        replicate_double.run_seconds = 0.5
        api = start_api()

        job = api.finished(api.create(providers=["replicate"], width=64, height=64))

        assert (job["status"], job["image"]["width"], job["image"]["source_width"]) == ("succeeded", 64, 512)
        assert api.worker_invocations == 1
        assert replicate_double.server.calls("GET") == []

    def test_given_an_nsfw_flagged_fal_result_when_collected_then_the_job_fails_content_refused(
        self, start_api: StartApi, fal_double: FalDouble
    ) -> None:
        fal_double.in_queue_polls, fal_double.in_progress_polls, fal_double.nsfw = 0, 0, True
        api = start_api()

        job = api.finished(api.create(providers=["fal", "placeholder"]))

        assert (job["status"], job["error"]["code"]) == ("failed", "content_refused")
        assert outline(job) == [("fal", "fal-ai/flux/dev", "failed", "content_policy")]

    @pytest.mark.parametrize("provider", ["fal", "replicate"])
    def test_given_a_queued_remote_request_when_the_job_is_canceled_then_the_service_gets_the_cancel(
        self, start_api: StartApi, fal_double: FalDouble, replicate_double: ReplicateDouble, provider: str
    ) -> None:
        # Never done: only the cancel can end these jobs.
        fal_double.in_queue_polls, replicate_double.run_seconds, replicate_double.polls_until_done = 1000, 60, 1000
        api = start_api()
        job_id = api.create(providers=[provider])
        wait_for(lambda: pending_messages(api, job_id))

        canceled = api.client.post(f"/v1/images/{job_id}/cancel")
        double = fal_double if provider == "fal" else replicate_double
        wait_for(lambda: double.cancels)

        assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
        if provider == "fal":
            (remote,) = fal_double.requests.values()
            assert (fal_double.cancels, remote.result_calls) == ([remote.id], 0)
            (cancel,) = fal_double.server.calls("PUT")
            assert cancel.headers["authorization"] == f"Key {FAL_KEY}"
        else:
            (prediction,) = replicate_double.predictions.values()
            assert (replicate_double.cancels, prediction.status) == ([prediction.id], "canceled")
            (cancel,) = replicate_double.server.calls("POST", "/cancel")
            assert cancel.headers["authorization"] == f"Bearer {REPLICATE_TOKEN}"
        assert api.get_raw(job_id).json()["status"] == "canceled"


class TestTheSizeAskedFor:
    def test_given_providers_with_fixed_sizes_when_jobs_run_then_every_image_is_the_size_asked_for(
        self,
        start_api: StartApi,
        siliconflow_double: SiliconFlowDouble,
        horde_double: HordeDouble,
        fal_double: FalDouble,
        replicate_double: ReplicateDouble,
    ) -> None:
        # Given providers that each make their own nearest size
        horde_double.checks_until_done = 1
        fal_double.in_queue_polls, fal_double.in_progress_polls = 0, 0
        replicate_double.run_seconds = 0.5
        api = start_api(SILICONFLOW_MODELS="Kwai-Kolors/Kolors,Qwen/Qwen-Image")
        asks = [
            ({"providers": ["siliconflow"], "width": 768, "height": 512}, (1024, 1024)),
            ({"providers": ["siliconflow"], "model": "Qwen/Qwen-Image", "width": 640, "height": 360}, (1664, 928)),
            ({"providers": ["horde"], "width": 100, "height": 70}, (128, 64)),
            ({"providers": ["fal"], "width": 1000, "height": 700}, (1008, 704)),
            ({"providers": ["replicate"], "width": 768, "height": 512}, (1248, 832)),
            ({"providers": ["huggingface"], "width": 320, "height": 200}, (320, 200)),
        ]

        # When each runs
        jobs = [(api.create(**ask), ask, source) for ask, source in asks]

        # Then each image is exactly what was asked, and the job says what the provider made
        for job_id, ask, source in jobs:
            job = api.finished(job_id)
            assert job["status"] == "succeeded", (ask, job.get("error"))
            image = job["image"]
            assert (image["width"], image["height"]) == (ask["width"], ask["height"])
            assert (image["source_width"], image["source_height"]) == source
            assert stored_size(api, job_id)[1] == (ask["width"], ask["height"])
