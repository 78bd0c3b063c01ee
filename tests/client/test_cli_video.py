"""`imagegen video`, run as a user runs it (a subprocess), against the local stack and SiliconFlow's video double."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from imagegen.local import LocalStack
from PIL import Image

from tests.client.test_cli_local_stack import _plain, cli
from tests.doubles.keys import SF_KEY
from tests.doubles.siliconflow import SiliconFlowDouble

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.local_stack", "tests.doubles.fixtures"]

StartStack = Callable[..., LocalStack]


@pytest.fixture
def stack(local_stack_factory: StartStack, siliconflow_double: SiliconFlowDouble) -> LocalStack:
    return local_stack_factory(
        run_schedules=False,
        env_overrides={
            "IMAGEGEN_LOCAL_TOKENS": "video:igk_cli-test-video-0000000000",
            "SILICONFLOW_API_KEY": SF_KEY,
            "SILICONFLOW_BASE_URL": siliconflow_double.base_url,
            "MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
            "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "2",
        },
    )


def test_given_the_local_stack_when_video_writes_a_file_then_it_is_the_mp4_siliconflow_made(
    stack: LocalStack, siliconflow_double: SiliconFlowDouble, tmp_path: Path
) -> None:
    # Given a non-terminal (pipes), as in CI
    target = tmp_path / "boat.mp4"

    # When a user makes a video and waits for it
    run = cli(tmp_path, "video", "a paper boat", "-o", str(target), "--size", "720x1280", stack=stack, user="video")
    listed = cli(tmp_path, "jobs", "--videos", stack=stack, user="video")

    # Then the file is byte for byte the double's video, and the progress is plain lines
    assert (run.code, run.err) == (0, "")
    (remote,) = siliconflow_double.videos.values()
    assert remote.url is not None and remote.payload["image_size"] == "720x1280"
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(httpx.get(remote.url).content).digest()
    lines = run.out.splitlines()
    job_id = lines[0].split()[0]
    assert job_id.startswith("vid_") and lines[0] == f"{job_id} queued"
    assert lines[-1] == f"saved {target}"
    assert lines[-2].startswith(f"{job_id} succeeded: siliconflow (Wan-AI/Wan2.2-T2V-A14B), 1 attempt, 36x64, ")
    _plain(run.out)
    assert listed.code == 0 and job_id in listed.out and "720x1280" in listed.out


def test_given_an_input_image_too_large_to_send_inline_when_video_runs_then_usage_error_and_no_job(
    stack: LocalStack, siliconflow_double: SiliconFlowDouble, tmp_path: Path
) -> None:
    large = tmp_path / "large.png"
    Image.effect_noise((256, 256), 90).convert("RGB").save(large)
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 18), (20, 40, 60)).save(small)

    refused = cli(tmp_path, "video", "it moves", "--image", str(large), stack=stack, user="video")
    accepted = cli(tmp_path, "video", "it moves", "--image", str(small), "--json", stack=stack, user="video")

    assert refused.code == 2
    assert "an image sent inline may take at most about 44 KB: pass an https URL to it instead" in refused.err
    listed = cli(tmp_path, "jobs", "--videos", "--json", stack=stack, user="video")
    assert accepted.code == 0, accepted.err
    assert '"image": "data:image/png;base64,' in accepted.out
    assert [job["request"]["prompt"] for job in json.loads(listed.out)["items"]] == ["it moves"]
