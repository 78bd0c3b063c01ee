"""The web page's video panel in Debian's headless Chromium, against the local stack and SiliconFlow's video double."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from imagegen.local import LocalStack

from tests.browser.test_web_page import ARTIFACTS, Browser, _no_token_in_urls, _sign_in, browser  # noqa: F401 - fixture
from tests.doubles.keys import SF_KEY
from tests.doubles.siliconflow import SiliconFlowDouble

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.local_stack", "tests.doubles.fixtures"]

StartStack = Callable[..., LocalStack]


@pytest.fixture
def stack(local_stack_factory: StartStack, siliconflow_double: SiliconFlowDouble) -> LocalStack:
    # WebM (VP8) is what Chromium plays, so the test can see the video decoded, not only fetched.
    siliconflow_double.video_kind = "webm"
    return local_stack_factory(
        run_schedules=False,
        env_overrides={
            "IMAGEGEN_PROVIDERS": "placeholder",
            "SILICONFLOW_API_KEY": SF_KEY,
            "SILICONFLOW_BASE_URL": siliconflow_double.base_url,
            "MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
            "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "2",
        },
    )


def test_given_a_token_when_the_page_makes_a_video_then_it_plays_in_the_panel_and_in_the_recent_videos(
    stack: LocalStack,
    siliconflow_double: SiliconFlowDouble,
    browser: Browser,  # noqa: F811
) -> None:
    # Given the token pasted once
    page = _sign_in(browser, stack)

    # When a portrait video is asked for, and the page follows the job through SiliconFlow's checks
    page.fill("#video-prompt", "a paper boat drifts down a rainy street")
    page.select_option("#video-size", "720x1280")
    page.click("#video-submit")
    page.wait_for_selector('#video-status[data-status="running"]')
    page.wait_for_selector('#video-status[data-status="succeeded"]', timeout=60_000)

    # Then the panel's player has the stored video, decoded (its frames' size and a duration)
    page.wait_for_function("() => document.getElementById('video-player').videoWidth === 36")
    job_id = page.text_content("#video-job-id")
    assert job_id is not None and job_id.startswith("vid_")
    assert page.evaluate("() => document.getElementById('video-player').duration") > 0
    status = page.text_content("#video-status") or ""
    size = "36\N{MULTIPLICATION SIGN}64"
    assert status.startswith(f"succeeded · provider siliconflow (Wan-AI/Wan2.2-T2V-A14B) · {size}, ")
    assert (
        page.locator("#video-attempts li")
        .all_text_contents()[-1]
        .startswith("siliconflow/Wan-AI/Wan2.2-T2V-A14B: succeeded · done after 3 check(s)")
    )
    assert page.get_attribute("#video-player", "src").startswith(stack.aws_endpoint + "/")
    # And the recent videos show it too, playable, under its prompt
    recent = f'#videos video[data-job="{job_id}"]'
    page.wait_for_function(f"() => document.querySelector('{recent}')?.videoWidth === 36")
    assert page.locator("#videos figcaption span").all_text_contents() == ["a paper boat drifts down a rainy street"]
    (remote,) = siliconflow_double.videos.values()
    assert remote.payload["image_size"] == "720x1280"
    assert remote.url is not None
    stored = httpx.get(page.get_attribute("#video-player", "src") or "").content
    assert stored == httpx.get(remote.url).content
    _no_token_in_urls(browser, stack)
    assert browser.console_errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#video-panel").screenshot(path=str(ARTIFACTS / "web-page-video.png"))


def test_given_a_first_frame_too_large_to_send_inline_when_the_page_submits_then_it_says_so_and_makes_no_job(
    stack: LocalStack,
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    from PIL import Image

    large = tmp_path / "large.png"
    Image.effect_noise((256, 256), 90).convert("RGB").save(large)
    page = _sign_in(browser, stack)

    page.fill("#video-prompt", "it moves")
    page.set_input_files("#video-image-file", str(large))
    page.click("#video-submit")
    page.wait_for_selector("#video-error:not(:empty)")

    assert page.text_content("#video-error") == (
        "large.png is too large to send inline (at most about 44 KB): give an https URL to it instead"
    )
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}) as api:
        assert api.get("/v1/videos").json()["items"] == []
