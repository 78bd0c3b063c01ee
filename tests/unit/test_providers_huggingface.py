"""Hugging Face's hf-inference route: task-spec parameters only, schnell's fixed values, raw bytes, errors."""

from __future__ import annotations

import json

import httpx
import pytest
from imagegen.models import ImageRequest
from imagegen.providers import huggingface
from imagegen.providers.base import FallThrough, ImageBytes, RetrySameLink
from imagegen.providers.huggingface import HuggingFaceSettings
from pydantic import SecretStr, ValidationError

TOKEN = "hf_unitSECRET"
SETTINGS = HuggingFaceSettings(api_key=SecretStr(TOKEN))
DEV, SCHNELL = "black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell"


def _request(**kwargs: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a lighthouse", **kwargs})


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", "https://router.huggingface.co/x"), **kwargs)  # type: ignore[arg-type]


class TestHuggingFace:
    def test_given_dev_when_built_then_router_url_accept_png_and_only_task_parameters(self) -> None:
        request = _request(
            width=768,
            height=512,
            steps=28,
            guidance=3.5,
            seed=9,
            negative_prompt="blur",
            extra={"lora": "pixel-art", "lora_scale": 0.8, "scheduler": "Euler"},
        )
        plan = huggingface.plan(request, DEV, SETTINGS)
        built = huggingface.build_request(plan, SETTINGS)
        assert str(built.url) == f"https://router.huggingface.co/hf-inference/models/{DEV}"
        assert built.headers["accept"] == "image/png"
        assert built.headers["authorization"] == f"Bearer {TOKEN}"
        assert json.loads(built.content) == {
            "inputs": "a lighthouse",
            "parameters": {
                "negative_prompt": "blur",
                "num_inference_steps": 28,
                "guidance_scale": 3.5,
                "seed": 9,
                "scheduler": "Euler",
                "width": 768,
                "height": 512,
            },
        }
        assert sorted(plan.dropped_params) == ["extra.lora", "extra.lora_scale"]

    def test_given_schnell_when_planned_then_four_steps_and_zero_guidance_replace_the_request(self) -> None:
        plan = huggingface.plan(_request(steps=28, guidance=3.5), SCHNELL, SETTINGS)
        assert plan.params == {"num_inference_steps": 4, "guidance_scale": 0, "width": 1024, "height": 1024}
        assert plan.dropped_params == ["steps", "guidance"]

    def test_given_a_configured_router_provider_map_when_an_unknown_provider_is_named_then_settings_refuse(
        self,
    ) -> None:
        with pytest.raises(ValidationError):
            HuggingFaceSettings(router_providers={DEV: "fal-ai"})

    def test_given_png_bytes_when_parsed_then_image_bytes(self) -> None:
        result = huggingface.parse_response(
            _response(200, content=b"\x89PNG...", headers={"content-type": "image/png"}),
            huggingface.plan(_request(), DEV, SETTINGS),
        )
        assert result == ImageBytes(b"\x89PNG...", "image/png")

    def test_given_gated_401_when_parsed_then_model_scoped_so_schnell_is_tried(self) -> None:
        response = _response(
            401, json={"error": f"Access to model {DEV} is restricted."}, headers={"x-error-code": "GatedRepo"}
        )
        result = huggingface.parse_response(response, huggingface.plan(_request(), DEV, SETTINGS))
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.scope, result.status_code) == ("forbidden", "model", 401)

    def test_given_503_loading_when_parsed_then_retry_same_link_after_estimated_time(self) -> None:
        response = _response(503, json={"error": f"Model {DEV} is currently loading", "estimated_time": 12.5})
        result = huggingface.parse_response(response, huggingface.plan(_request(), DEV, SETTINGS))
        assert isinstance(result, RetrySameLink)
        assert (result.error_class, result.retry_after) == ("model_loading", 12.5)

    def test_given_402_credits_when_parsed_then_provider_scoped_payment_required(self) -> None:
        response = _response(
            402, json={"error": "You have exceeded your monthly included credits for Inference Providers."}
        )
        result = huggingface.parse_response(response, huggingface.plan(_request(), DEV, SETTINGS))
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.scope, result.trips_breaker) == ("payment_required", "provider", False)

    def test_given_404_when_parsed_then_model_unavailable(self) -> None:
        result = huggingface.parse_response(
            _response(404, json={"error": "Not Found"}), huggingface.plan(_request(), DEV, SETTINGS)
        )
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.scope) == ("model_unavailable", "model")

    def test_given_a_json_200_when_parsed_then_bad_response(self) -> None:
        result = huggingface.parse_response(
            _response(200, json={"error": "?"}), huggingface.plan(_request(), DEV, SETTINGS)
        )
        assert isinstance(result, FallThrough)
        assert result.error_class == "bad_response"
