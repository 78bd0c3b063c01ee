"""SiliconFlow adapter: pure request building and response parsing."""

from __future__ import annotations

import httpx
from imagegen.models import ImageRequest
from imagegen.providers import siliconflow
from imagegen.providers.base import FallThrough, ResultUrl, RetrySameLink
from imagegen.providers.siliconflow import SiliconFlowSettings
from pydantic import SecretStr

KEY = "sk-unit-SECRET-1"
SETTINGS = SiliconFlowSettings(api_key=SecretStr(KEY), base_url="https://api.siliconflow.com/v1")


def _request(**kwargs: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a red fox", **kwargs})


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(
        status, request=httpx.Request("POST", "https://api.siliconflow.com/v1/images/generations"), **kwargs
    )  # type: ignore[arg-type]


class TestSiliconFlow:
    def test_given_kolors_when_built_then_bearer_wxh_guidance_and_batch_size_are_sent(self) -> None:
        plan = siliconflow.plan(
            _request(width=1024, height=1024, guidance=5.5, steps=25, seed=7), "Kwai-Kolors/Kolors", SETTINGS
        )
        request = siliconflow.build_request(plan, SETTINGS)
        assert request.method == "POST"
        assert str(request.url) == "https://api.siliconflow.com/v1/images/generations"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert __import__("json").loads(request.content) == {
            "model": "Kwai-Kolors/Kolors",
            "prompt": "a red fox",
            "image_size": "1024x1024",
            "guidance_scale": 5.5,
            "num_inference_steps": 25,
            "seed": 7,
            "batch_size": 1,
        }
        assert plan.dropped_params == []

    def test_given_flux_schnell_when_planned_then_guidance_steps_and_negative_are_dropped(self) -> None:
        plan = siliconflow.plan(
            _request(guidance=7.0, steps=30, negative_prompt="blur", seed=3, extra={"lora": "x"}),
            "black-forest-labs/FLUX.1-schnell",
            SETTINGS,
        )
        assert plan.params == {"seed": 3}
        assert sorted(plan.dropped_params) == ["extra.lora", "guidance", "negative_prompt", "steps"]

    def test_given_an_odd_size_when_planned_for_kolors_then_the_closest_recommended_size_is_used(self) -> None:
        plan = siliconflow.plan(_request(width=700, height=1400), "Kwai-Kolors/Kolors", SETTINGS)
        assert (plan.width, plan.height) == (720, 1440)
        assert plan.notes == ["size 700x1400 -> 720x1440"]

    def test_given_qwen_image_when_planned_then_guidance_maps_to_cfg_and_size_to_its_list(self) -> None:
        plan = siliconflow.plan(_request(width=1600, height=900, guidance=4.0), "Qwen/Qwen-Image", SETTINGS)
        assert (plan.width, plan.height) == (1664, 928)
        assert plan.params == {"cfg": 4.0}

    def test_given_images_url_when_parsed_then_result_url(self) -> None:
        response = _response(
            200, json={"images": [{"url": "https://sc-maas.oss-cn-shanghai.aliyuncs.com/o.png?Expires=1"}]}
        )
        result = siliconflow.parse_response(response, siliconflow.plan(_request(), None, SETTINGS))
        assert result == ResultUrl("https://sc-maas.oss-cn-shanghai.aliyuncs.com/o.png?Expires=1")

    def test_given_only_data_url_when_parsed_then_result_url(self) -> None:
        response = _response(200, json={"data": [{"url": "https://x.blob.core.windows.net/c/o.png?se=1&sig=2"}]})
        result = siliconflow.parse_response(response, siliconflow.plan(_request(), None, SETTINGS))
        assert result == ResultUrl("https://x.blob.core.windows.net/c/o.png?se=1&sig=2")

    def test_given_plain_invalid_token_401_when_parsed_then_provider_scoped_fall_through(self) -> None:
        result = siliconflow.parse_response(
            _response(401, text="Invalid token"), siliconflow.plan(_request(), None, SETTINGS)
        )
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.status_code, result.scope, result.message) == (
            "unauthorized",
            401,
            "provider",
            "Invalid token",
        )

    def test_given_503_code_50505_when_parsed_then_overloaded_fall_through(self) -> None:
        body = {"code": 50505, "message": "Model service overloaded. Please try again later.", "data": None}
        result = siliconflow.parse_response(_response(503, json=body), siliconflow.plan(_request(), None, SETTINGS))
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.trips_breaker) == ("overloaded", True)

    def test_given_429_with_retry_after_when_parsed_then_retry_same_link(self) -> None:
        response = _response(
            429,
            json={"message": "Request was rejected due to rate limiting.", "data": None},
            headers={"retry-after": "2"},
        )
        result = siliconflow.parse_response(response, siliconflow.plan(_request(), None, SETTINGS))
        assert isinstance(result, RetrySameLink)
        assert (result.retry_after, result.error_class) == (2.0, "rate_limited")

    def test_given_403_forbidden_when_parsed_then_model_scoped_fall_through_that_does_not_trip_breaker(self) -> None:
        result = siliconflow.parse_response(
            _response(403, json="Forbidden"), siliconflow.plan(_request(), None, SETTINGS)
        )
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.scope, result.trips_breaker) == ("forbidden", "model", False)

    def test_given_a_200_without_url_when_parsed_then_bad_response(self) -> None:
        result = siliconflow.parse_response(
            _response(200, json={"images": []}), siliconflow.plan(_request(), None, SETTINGS)
        )
        assert isinstance(result, FallThrough)
        assert result.error_class == "bad_response"

    def test_given_the_key_when_the_plan_is_printed_then_the_key_is_not_in_it(self) -> None:
        plan = siliconflow.plan(_request(), None, SETTINGS)
        assert KEY not in repr(plan) + repr(SETTINGS) + str(SETTINGS.model_dump())


class TestLiveModels:
    def test_given_z_image_turbo_when_planned_then_only_size_and_seed_go_and_the_rest_is_recorded_dropped(self) -> None:
        plan = siliconflow.plan(
            _request(width=2048, height=2048, steps=9, guidance=0.0, seed=3, negative_prompt="blur"),
            "Tongyi-MAI/Z-Image-Turbo",
            SETTINGS,
        )

        assert (plan.params, plan.dropped_params) == ({"seed": 3}, ["negative_prompt", "steps", "guidance"])
        assert (plan.width, plan.height) == (1536, 1536)

    def test_given_the_listing_call_when_built_then_image_text_to_image_with_the_key(self) -> None:
        request = siliconflow.build_listing(SETTINGS, SecretStr(KEY))

        assert str(request.url) == "https://api.siliconflow.com/v1/models?type=image&sub_type=text-to-image"
        assert request.headers["authorization"] == f"Bearer {KEY}"

    def test_given_listing_answers_when_parsed_then_ids_in_order_or_none_when_unreadable(self) -> None:
        listed = {"object": "list", "data": [{"id": "b/x", "object": "model"}, {"id": "a/y"}, {"id": "b/x"}, {}]}

        assert siliconflow.parse_listing(_response(200, json=listed)) == ("b/x", "a/y")
        assert siliconflow.parse_listing(_response(200, json={"object": "list", "data": []})) == ()
        assert siliconflow.parse_listing(_response(200, text="<html>")) is None

    def test_given_model_does_not_exist_in_either_reading_when_parsed_then_model_gone(self) -> None:
        body = {"code": 20012, "message": "Model does not exist. Please check it carefully.", "data": None}
        other_20012 = {"code": 20012, "message": "image_size must be one of ...", "data": None}

        for status in (400, 404):
            gone = siliconflow.parse_response(
                _response(status, json=body), siliconflow.plan(_request(), None, SETTINGS)
            )
            assert isinstance(gone, FallThrough) and (gone.error_class, gone.status_code) == ("model_gone", status)
        bad = siliconflow.parse_response(_response(400, json=other_20012), siliconflow.plan(_request(), None, SETTINGS))
        assert isinstance(bad, FallThrough) and bad.error_class == "bad_request"
