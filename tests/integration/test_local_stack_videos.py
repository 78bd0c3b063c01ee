"""Video jobs end to end on the local stack: HTTP API -> SQS -> worker -> SiliconFlow's video queue (its double) ->
delayed check messages -> the video streamed into S3 -> /content.

The worker never waits for the generation: it submits, parks the job, and each check is its own short invocation,
started by the delayed SQS message the previous one queued.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.doubles.siliconflow import SiliconFlowDouble
from tests.doubles.storage import StorageDouble
from tests.integration.test_local_stack_providers import Api, StartApi, start_api, wait_for  # noqa: F401 - fixture

pytest_plugins = ["tests.doubles.fixtures", "tests.doubles.local_stack"]
pytestmark = pytest.mark.integration


def _video(api: Api, job_id: str) -> dict[str, Any]:
    answer = api.client.get(f"/v1/videos/{job_id}")
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def test_given_siliconflow_answering_in_queue_in_progress_then_succeed_when_a_video_job_runs_then_checks_store_it(
    start_api: StartApi,  # noqa: F811
    siliconflow_double: SiliconFlowDouble,
    storage: StorageDouble,
) -> None:
    # Given the stack with SiliconFlow's video queue answering InQueue, InProgress, then Succeed
    api = start_api()

    # When a client creates a video job and follows it
    created = api.client.post("/v1/videos", json={"prompt": "a lighthouse at dusk", "image_size": "720x1280"})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    seen: list[tuple[str, str | None]] = []

    def terminal() -> dict[str, Any] | None:
        job = _video(api, job_id)
        last = job["attempts"][-1]["message"] if job["attempts"] else None
        if not seen or seen[-1] != (job["status"], last):
            seen.append((job["status"], last))
        return job if job["status"] not in ("queued", "running") else None

    job = wait_for(terminal, timeout=40)
    fetched_by_worker = [r.headers.get("authorization") for r in storage.requests if r.name.endswith(".mp4")]

    # Then it waited at SiliconFlow between checks, one worker invocation per check, and succeeded
    assert ("running", "queued at siliconflow; checking again in 2 s") in seen
    assert ("running", "still queued after 1 check(s); checking again in 3 s") in seen
    assert ("running", "still queued after 2 check(s); checking again in 5 s") in seen
    assert (job["status"], job["provider"], job["model"]) == ("succeeded", "siliconflow", "Wan-AI/Wan2.2-T2V-A14B")
    assert job["attempts"][-1]["message"] == "done after 3 check(s)"
    assert api.worker_invocations == 4
    (remote,) = siliconflow_double.videos.values()
    assert remote.status_calls == 3
    # And what a client downloads is byte for byte the video SiliconFlow's link served
    assert remote.url is not None
    original = httpx.get(remote.url).content
    redirect = api.client.get(f"/v1/videos/{job_id}/content")
    assert redirect.status_code == 302
    downloaded = httpx.get(redirect.headers["location"]).content
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(original).hexdigest() == job["video"]["sha256"]
    assert (job["video"]["content_type"], job["video"]["bytes"]) == ("video/mp4", len(original))
    assert (job["video"]["width"], job["video"]["height"]) == (36, 64)
    # The worker fetched the video's link once, without any key (a signed link breaks when auth is added)
    assert fetched_by_worker == [None]
