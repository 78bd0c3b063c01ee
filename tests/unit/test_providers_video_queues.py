"""fal's and Replicate's video parts: the size mapped to a resolution and an aspect ratio (and said), the input image
in each service's field, the submit on the image queue, both readings of each output, failures, NSFW and cancel."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from imagegen.models import ImageRequest, VideoRequest
from imagegen.providers import fal_video, replicate_video
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    FallThrough,
    ImageBytes,
    Refused,
    RemoteRequest,
    ResultUrl,
)
from imagegen.providers.fal import FalSettings
from imagegen.providers.replicate import ReplicateSettings
from imagegen.providers.video import nearest_aspect, nearest_resolution, nominal_size
from pydantic import SecretStr

FAL = FalSettings(api_key=SecretStr("falUNITkeyid01:falUNITsecret01"))
REPLICATE = ReplicateSettings(api_key=SecretStr("r8_UNITtoken0123456789"))
QUEUE = "https://queue.fal.run"
FRAME = "https://example.com/first.png"
MP4_URI = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypisom").decode()


def _video(**fields: Any) -> ImageRequest:
    return VideoRequest.model_validate({"prompt": "a paper boat", **fields}).portable()


def _json(request: httpx.Request) -> Any:
    return json.loads(request.content)


def _answer(status: int, body: Any, url: str) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", url))


class TestSizes:
    @pytest.mark.parametrize(
        ("size", "aspect"),
        [((1280, 720), "16:9"), ((720, 1280), "9:16"), ((1000, 900), "1:1"), ((2048, 64), "16:9"), ((64, 200), "9:16")],
    )
    def test_given_a_size_when_mapped_then_the_nearest_aspect_on_a_log_scale(
        self, size: tuple[int, int], aspect: str
    ) -> None:
        assert nearest_aspect(*size, ("16:9", "9:16", "1:1")) == aspect

    @pytest.mark.parametrize(
        ("size", "fal", "replicate"),
        [
            ((640, 360), "480p", "480p"),
            ((1024, 576), "580p", "720p"),
            ((1280, 720), "720p", "720p"),
            ((2048, 2048), "720p", "720p"),
        ],
    )
    def test_given_a_size_when_mapped_then_the_smallest_resolution_reaching_its_short_side_else_the_largest(
        self, size: tuple[int, int], fal: str, replicate: str
    ) -> None:
        assert nearest_resolution(*size, fal_video.RESOLUTIONS) == fal
        assert nearest_resolution(*size, replicate_video.RESOLUTIONS) == replicate

    def test_given_a_resolution_and_aspect_when_sized_then_the_short_side_is_the_resolution(self) -> None:
        assert [nominal_size(720, "16:9"), nominal_size(480, "9:16"), nominal_size(580, "1:1")] == [
            (1280, 720),
            (480, 854),
            (580, 580),
        ]


class TestFalVideo:
    def test_given_the_default_size_when_planned_then_720p_16_9_with_no_note_and_the_wan_app_on_the_queue(self) -> None:
        plan = fal_video.plan(_video(seed=7, negative_prompt="blur"), None, FAL)
        sent = fal_video.build_request(plan, FAL)

        assert (plan.model, plan.width, plan.height, plan.notes, plan.dropped_params) == (
            fal_video.TEXT_TO_VIDEO,
            1280,
            720,
            [],
            [],
        )
        assert (sent.method, str(sent.url)) == ("POST", f"{QUEUE}/fal-ai/wan/v2.2-a14b/text-to-video")
        assert sent.headers["authorization"] == "Key falUNITkeyid01:falUNITsecret01"
        assert _json(sent) == {
            "prompt": "a paper boat",
            "resolution": "720p",
            "aspect_ratio": "16:9",
            "negative_prompt": "blur",
            "seed": 7,
            "enable_safety_checker": True,
        }

    def test_given_a_size_fal_does_not_make_when_planned_then_the_mapping_is_a_note(self) -> None:
        plan = fal_video.plan(_video(image_size="1000x900"), None, FAL)

        assert (plan.params["resolution"], plan.params["aspect_ratio"]) == ("720p", "1:1")
        assert plan.notes == ["size 1000x900 -> resolution 720p, aspect_ratio 1:1 (720x720)"]

    def test_given_an_input_image_when_planned_then_the_image_to_video_app_gets_it_as_image_url(self) -> None:
        plan = fal_video.plan(_video(image=FRAME, width=720, height=1280), None, FAL)
        body = _json(fal_video.build_request(plan, FAL))

        assert plan.model == fal_video.IMAGE_TO_VIDEO
        assert (body["image_url"], body["aspect_ratio"], "image" in body) == (FRAME, "9:16", False)

    def test_given_the_submit_answer_when_parsed_then_the_follow_up_urls_drop_the_app_s_sub_path(self) -> None:
        plan = fal_video.plan(_video(), None, FAL)
        submit = fal_video.build_request(plan, FAL)
        answer = httpx.Response(200, json={"request_id": "r-1", "status": "IN_QUEUE"}, request=submit)

        queued = fal_video.parse_response(answer, plan)

        assert isinstance(queued, AsyncSubmitted) and queued.remote_id == "r-1"
        base = f"{QUEUE}/fal-ai/wan/requests/r-1"
        assert dict(queued.urls) == {"check": f"{base}/status", "collect": base, "cancel": f"{base}/cancel"}
        remote = RemoteRequest("r-1", queued.urls)
        assert str(fal_video.build_collect(remote, FAL).url) == base
        cancel = fal_video.build_cancel(remote, FAL)
        assert (cancel.method, str(cancel.url)) == ("PUT", f"{base}/cancel")

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (
                {"video": {"url": "https://v3.fal.media/files/x/v.mp4", "content_type": "video/mp4"}},
                "https://v3.fal.media/files/x/v.mp4",
            ),
            ({"video": "https://v3.fal.media/files/x/v.mp4"}, "https://v3.fal.media/files/x/v.mp4"),
        ],
    )
    def test_given_either_reading_of_the_output_when_collected_then_the_video_link(
        self, body: dict[str, Any], expected: str
    ) -> None:
        assert fal_video.parse_collect(_answer(200, body, QUEUE)) == ResultUrl(expected)

    def test_given_a_data_uri_video_when_collected_then_its_bytes(self) -> None:
        result = fal_video.parse_collect(_answer(200, {"video": {"url": MP4_URI}}, QUEUE))

        assert isinstance(result, ImageBytes) and result.data[4:8] == b"ftyp"

    @pytest.mark.parametrize("flags", [[True], True])
    def test_given_an_nsfw_flag_when_collected_then_a_refusal_not_a_success(self, flags: object) -> None:
        body = {"video": {"url": "https://v3.fal.media/v.mp4"}, "has_nsfw_concepts": flags}

        assert isinstance(fal_video.parse_collect(_answer(200, body, QUEUE)), Refused)

    @pytest.mark.parametrize(
        ("status", "body", "error_class"),
        [
            (200, {"images": [{"url": "https://v3.fal.media/i.png"}]}, "bad_response"),
            (200, {"video": {"url": "ftp://v3.fal.media/v.mp4"}}, "bad_response"),
            (200, ["not", "an", "object"], "bad_response"),
            (422, {"detail": [{"loc": ["body", "resolution"], "msg": "bad", "type": "enum"}]}, None),
        ],
    )
    def test_given_an_output_without_a_video_when_collected_then_the_link_falls_through(
        self, status: int, body: Any, error_class: str | None
    ) -> None:
        result = fal_video.parse_collect(_answer(status, body, QUEUE))

        assert isinstance(result, FallThrough)
        assert error_class is None or result.error_class == error_class

    def test_given_a_status_when_checked_then_the_image_queue_s_reading(self) -> None:
        done = fal_video.parse_check(_answer(200, {"status": "COMPLETED"}, QUEUE))
        waiting = fal_video.parse_check(_answer(200, {"status": "IN_PROGRESS"}, QUEUE))

        assert (done, waiting) == (AsyncStatus(done=True, wait_time=0.0), AsyncStatus(done=False, wait_time=0.0))


class TestReplicateVideo:
    def test_given_a_text_to_video_request_when_built_then_the_wan_model_s_prediction_with_a_short_wait(self) -> None:
        plan = replicate_video.plan(_video(seed=3, negative_prompt="blur", width=640, height=360), None, REPLICATE)
        sent = replicate_video.build_request(plan, REPLICATE)

        assert str(sent.url) == "https://api.replicate.com/v1/models/wan-video/wan-2.2-t2v-fast/predictions"
        assert (sent.headers["prefer"], sent.headers["authorization"]) == ("wait=1", "Bearer r8_UNITtoken0123456789")
        assert _json(sent) == {
            "input": {"prompt": "a paper boat", "resolution": "480p", "aspect_ratio": "16:9", "seed": 3}
        }
        # negative_prompt is no field the facts name for these models: dropped and recorded
        assert plan.dropped_params == ["negative_prompt"]
        assert plan.notes == ["size 640x360 -> resolution 480p, aspect_ratio 16:9 (854x480)"]

    def test_given_an_input_image_when_built_then_the_image_to_video_model_gets_image_and_no_aspect_ratio(self) -> None:
        plan = replicate_video.plan(_video(image=FRAME), None, REPLICATE)

        assert plan.model == replicate_video.IMAGE_TO_VIDEO
        assert _json(replicate_video.build_request(plan, REPLICATE))["input"] == {
            "prompt": "a paper boat",
            "resolution": "720p",
            "image": FRAME,
        }

    @pytest.mark.parametrize(
        ("output", "expected"),
        [
            ("https://replicate.delivery/xezq/a/output.mp4", ResultUrl("https://replicate.delivery/xezq/a/output.mp4")),
            (
                ["https://replicate.delivery/xezq/a/output.mp4"],
                ResultUrl("https://replicate.delivery/xezq/a/output.mp4"),
            ),
        ],
    )
    def test_given_a_finished_prediction_at_once_when_created_then_its_output_in_either_reading(
        self, output: object, expected: ResultUrl
    ) -> None:
        plan = replicate_video.plan(_video(), None, REPLICATE)
        submit = replicate_video.build_request(plan, REPLICATE)
        answer = httpx.Response(201, json={"id": "p1", "status": "succeeded", "output": output}, request=submit)

        assert replicate_video.parse_response(answer, plan) == expected

    def test_given_a_data_uri_output_when_checked_then_its_bytes(self) -> None:
        url = "https://api.replicate.com/v1/predictions/p1"

        result = replicate_video.parse_check(_answer(200, {"id": "p1", "status": "succeeded", "output": MP4_URI}, url))

        assert isinstance(result, ImageBytes) and result.data[4:8] == b"ftyp"

    def test_given_an_unfinished_prediction_when_created_then_queued_with_its_get_and_cancel_urls(self) -> None:
        plan = replicate_video.plan(_video(), None, REPLICATE)
        submit = replicate_video.build_request(plan, REPLICATE)
        base = "https://api.replicate.com/v1/predictions/p1"
        body = {"id": "p1", "status": "starting", "output": None, "urls": {"get": base, "cancel": f"{base}/cancel"}}

        queued = replicate_video.parse_response(httpx.Response(201, json=body, request=submit), plan)

        assert isinstance(queued, AsyncSubmitted)
        remote = RemoteRequest(queued.remote_id, queued.urls)
        cancel = replicate_video.build_cancel(remote, REPLICATE)
        assert (str(replicate_video.build_check(remote, REPLICATE).url), cancel.method, str(cancel.url)) == (
            base,
            "POST",
            f"{base}/cancel",
        )

    def test_given_a_failed_prediction_when_checked_then_its_error_not_a_timeout(self) -> None:
        url = "https://api.replicate.com/v1/predictions/p1"
        body = {"id": "p1", "status": "failed", "error": "CUDA out of memory"}

        result = replicate_video.parse_check(_answer(200, body, url))

        assert isinstance(result, FallThrough)
        assert (result.error_class, result.message) == ("faulted", "Replicate: CUDA out of memory")
