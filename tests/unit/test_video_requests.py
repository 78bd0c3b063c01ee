"""Video requests and SiliconFlow's video adapter: validation, the portable form the chain reads, the wire protocol
(PROVIDERS-ROUTES.md 4), and the registry's video view."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from imagegen.generation import ChainFailed, RunContext
from imagegen.jobs.video_chain import VideoChains, VideoKeys, mode_of
from imagegen.keys.types import KeyHealth, ResolvedKey
from imagegen.models import ImageRequest, JobRecord, VideoRequest, image_data_uri
from imagegen.providers import REGISTRY
from imagegen.providers import siliconflow_video as sfv
from imagegen.providers.base import AsyncStatus, AsyncSubmitted, FallThrough, RemoteRequest, ResultUrl
from imagegen.providers.settings import ProvidersSettings
from imagegen.providers.siliconflow import SiliconFlowSettings
from imagegen.providers.video import video_registry, video_settings
from PIL import Image
from pydantic import SecretStr, ValidationError

KEY = "sk-video-SECRET-1"
SETTINGS = SiliconFlowSettings(api_key=SecretStr(KEY), base_url="https://api.siliconflow.com/v1")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG_URI = "data:image/png;base64," + base64.b64encode(_png()).decode()


def _answer(status: int, body: Any) -> httpx.Response:
    request = httpx.Request("POST", "https://api.siliconflow.com/v1/video/status")
    return httpx.Response(status, json=body, request=request)


class TestVideoRequest:
    def test_given_no_size_when_read_then_1280x720_and_the_portable_request_carries_what_the_chain_reads(self) -> None:
        request = VideoRequest(prompt="waves", negative_prompt="blur", seed=3, providers=["siliconflow"])

        portable = request.portable()

        assert request.size == (1280, 720)
        assert isinstance(portable, ImageRequest)
        assert (portable.prompt, portable.negative_prompt, portable.seed) == ("waves", "blur", 3)
        assert (portable.width, portable.height, portable.providers) == (1280, 720, ["siliconflow"])
        assert (portable.hedge, portable.on_refusal, portable.extra) == (False, "stop", None)
        assert mode_of(portable) == "text"

    def test_given_an_input_image_when_made_portable_then_it_rides_in_extra_and_picks_image_to_video(self) -> None:
        portable = VideoRequest(prompt="move", image=PNG_URI, image_size="720x1280").portable()

        assert portable.extra == {"image": PNG_URI}
        assert (portable.width, portable.height) == (720, 1280)
        assert mode_of(portable) == "image"

    @pytest.mark.parametrize(
        ("fields", "field", "says"),
        [
            ({"width": 720}, "height", "width and height go together"),
            ({"height": 720}, "height", "width and height go together"),
            ({"image_size": "720x720", "width": 720, "height": 720}, "image_size", "not both"),
            ({"image_size": "4000x720"}, "image_size", "each side must be 64-2048"),
            ({"image": "data:image/png;base64,!!!!"}, "image", "must be data:image/png|jpeg|webp;base64"),
            ({"image": "data:image/jpeg;base64," + base64.b64encode(_png()).decode()}, "image", "not one"),
            ({"image": "https://example.com/" + "a" * 2100}, "image", "at most 2048"),
            ({"providers": ["siliconflow", "siliconflow"]}, "providers", "twice"),
            ({"guidance": 3}, "guidance", "Extra inputs are not permitted"),
        ],
    )
    def test_given_a_bad_field_when_validated_then_the_error_names_it(
        self, fields: dict[str, Any], field: str, says: str
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            VideoRequest.model_validate({"prompt": "p", **fields})

        errors = raised.value.errors()
        assert [str(error["loc"][0]) for error in errors] == [field]
        assert says in errors[0]["msg"]

    def test_given_a_webp_data_uri_when_read_then_its_type_and_bytes(self) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, format="WEBP")
        uri = "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode()

        assert image_data_uri(uri) == ("image/webp", buffer.getvalue())

    def test_given_a_stored_video_job_when_read_back_then_its_request_is_a_video_request(self) -> None:
        record = JobRecord(
            id="vid_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            kind="video",
            status="queued",
            request=VideoRequest(prompt="p", image=PNG_URI),
            user_id="alice",
            created_at="2026-12-02T00:00:00Z",  # type: ignore[arg-type]
        )

        again = JobRecord.model_validate(json.loads(record.model_dump_json()))

        assert isinstance(again.request, VideoRequest) and again.request.image == PNG_URI
        assert type(again.public()).__name__ == "VideoJob"
        with pytest.raises(ValidationError, match="a image job holds a VideoRequest"):
            JobRecord.model_validate({**record.model_dump(), "kind": "image", "request": again.request})


class TestSiliconFlowVideoWire:
    def test_given_a_text_to_video_request_when_built_then_the_documented_submit_body_with_the_bearer_key(self) -> None:
        plan = sfv.plan(VideoRequest(prompt="a fox", seed=9, negative_prompt="rain").portable(), None, SETTINGS)

        request = sfv.build_request(plan, SETTINGS)

        assert (request.method, str(request.url)) == ("POST", "https://api.siliconflow.com/v1/video/submit")
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert json.loads(request.content) == {
            "model": "Wan-AI/Wan2.2-T2V-A14B",
            "prompt": "a fox",
            "image_size": "1280x720",
            "negative_prompt": "rain",
            "seed": 9,
        }
        assert plan.dropped_params == [] and plan.notes == []

    def test_given_an_image_and_an_unlisted_size_when_planned_then_the_i2v_model_the_image_and_the_closest_size(
        self,
    ) -> None:
        plan = sfv.plan(VideoRequest(prompt="go", image=PNG_URI, width=1000, height=1000).portable(), None, SETTINGS)

        body = json.loads(sfv.build_request(plan, SETTINGS).content)

        assert (body["model"], body["image"], body["image_size"]) == ("Wan-AI/Wan2.2-I2V-A14B", PNG_URI, "960x960")
        assert plan.notes == ["size 1000x1000 -> 960x960"]

    def test_given_the_submit_answer_when_parsed_then_the_request_id_is_queued(self) -> None:
        plan = sfv.plan(VideoRequest(prompt="x").portable(), None, SETTINGS)

        assert sfv.parse_response(_answer(200, {"requestId": "r-1"}), plan) == AsyncSubmitted("r-1", 0.0)
        missing = sfv.parse_response(_answer(200, {}), plan)
        assert isinstance(missing, FallThrough) and missing.error_class == "bad_response"
        overloaded = sfv.parse_response(
            _answer(503, {"code": 50505, "message": "Model service overloaded. Please try again later."}), plan
        )
        assert isinstance(overloaded, FallThrough) and overloaded.error_class == "overloaded"
        gone = sfv.parse_response(_answer(400, {"code": 20012, "message": "Model does not exist."}), plan)
        assert isinstance(gone, FallThrough) and gone.error_class == "model_gone"

    def test_given_a_remote_request_when_checked_then_status_is_posted_with_its_id(self) -> None:
        request = sfv.build_check(RemoteRequest("r-1"), SETTINGS)

        assert (request.method, str(request.url)) == ("POST", "https://api.siliconflow.com/v1/video/status")
        assert json.loads(request.content) == {"requestId": "r-1"}
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert sfv.build_cancel(RemoteRequest("r-1"), SETTINGS) is None

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({"status": "InQueue", "position": 3}, AsyncStatus(done=False, wait_time=0.0, queue_position=3)),
            ({"status": "InProgress", "reason": ""}, AsyncStatus(done=False, wait_time=0.0)),
            ({"status": "Rendering"}, AsyncStatus(done=False, wait_time=0.0)),
            (
                {"status": "Succeed", "results": {"videos": [{"url": "https://oss.example/v.mp4?Expires=1"}]}},
                ResultUrl("https://oss.example/v.mp4?Expires=1"),
            ),
        ],
    )
    def test_given_a_status_answer_when_parsed_then_pending_or_the_video_link(
        self, body: dict[str, Any], expected: object
    ) -> None:
        assert sfv.parse_check(_answer(200, body)) == expected

    @pytest.mark.parametrize(
        ("status", "body", "error_class", "message"),
        [
            (200, {"status": "Failed", "reason": "nsfw"}, "faulted", "SiliconFlow failed the video: nsfw"),
            (200, {"status": "Succeed", "results": {"videos": []}}, "bad_response", "Succeed without"),
            (200, ["not", "an", "object"], "bad_response", "status answered without a JSON object"),
            (401, "Invalid token", "unauthorized", "Invalid token"),
        ],
    )
    def test_given_a_failed_or_broken_status_answer_when_parsed_then_the_link_fails_with_its_class(
        self, status: int, body: Any, error_class: str, message: str
    ) -> None:
        error = sfv.parse_check(_answer(status, body))

        assert isinstance(error, FallThrough)
        assert error.error_class == error_class and message in error.message


class TestVideoView:
    def test_given_the_registry_when_viewed_for_video_then_siliconflow_has_its_video_hooks_and_models(self) -> None:
        settings = ProvidersSettings.defaults()

        for mode, model in (("text", sfv.TEXT_TO_VIDEO), ("image", sfv.IMAGE_TO_VIDEO)):
            view = video_registry(REGISTRY, mode)  # type: ignore[arg-type]
            chain_settings = video_settings(settings, REGISTRY, mode, ("siliconflow",))  # type: ignore[arg-type]

            assert list(view) == ["siliconflow"]
            spec = view["siliconflow"]
            assert (spec.plan, spec.build_request, spec.async_) == (sfv.plan, sfv.build_request, sfv.VIDEO.async_)
            assert chain_settings.image_provider("siliconflow").models == (model,)
            assert (chain_settings.chain.default_chain, chain_settings.chain.hedge) == (("siliconflow",), False)
        # The image settings are untouched
        assert settings.image_provider("siliconflow").models[0] == "Kwai-Kolors/Kolors"

    def test_given_a_key_whose_listing_names_image_models_when_a_video_run_resolves_it_then_the_listing_is_left_out(
        self,
    ) -> None:
        health = KeyHealth(
            status="ok", checked_at=datetime.now(UTC), models=("Kwai-Kolors/Kolors",), gone=("Wan-AI/old",)
        )
        listed = ResolvedKey(source="deployment", key=SecretStr(KEY), health=health)

        class Keys:
            def resolve(self, user_id: str, provider: str) -> ResolvedKey:
                return listed

        key = VideoKeys(Keys()).resolve("alice", "siliconflow")  # type: ignore[arg-type]

        assert key.health is not None
        assert (key.health.models, key.health.gone) == (None, ("Wan-AI/old",))

    def test_given_a_provider_that_makes_no_video_when_named_then_the_run_fails_saying_so_without_a_call(self) -> None:
        class Chain:
            class deps:
                registry: dict[str, object] = {"siliconflow": object()}

        chains = VideoChains(lambda mode: Chain())  # type: ignore[arg-type,return-value]
        request = ImageRequest.model_construct(prompt="p", width=1280, height=720, providers=["horde"], extra=None)

        outcome = chains.start(request, RunContext("vid_1", "alice", 0.0))

        assert isinstance(outcome, ChainFailed)
        assert (outcome.error.code, outcome.error.message) == (
            "no_video_providers",
            "horde cannot make a video from text",
        )
