"""Pollinations adapter: keyless legacy GET vs keyed gen GET, x402 queue full, image bytes."""

from __future__ import annotations

import httpx
from imagegen.models import ImageRequest
from imagegen.providers import pollinations
from imagegen.providers.base import FallThrough, ImageBytes
from imagegen.providers.pollinations import PollinationsSettings
from imagegen.providers.settings import ProvidersSettings
from pydantic import SecretStr

LEGACY = ProvidersSettings.from_environ({}).for_provider("pollinations")
KEYED = ProvidersSettings.from_environ({"POLLINATIONS_API_KEY": "sk_unitSECRET"}).for_provider("pollinations")


def _request(**kwargs: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a cat / dog?", **kwargs})


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://image.pollinations.ai/prompt/x"), **kwargs)  # type: ignore[arg-type]


class TestPollinations:
    def test_given_no_key_when_built_then_legacy_host_prompt_path_no_auth_and_negative_dropped(self) -> None:
        plan = pollinations.plan(_request(width=512, height=768, seed=5, negative_prompt="x", steps=9), None, LEGACY)
        request = pollinations.build_request(plan, LEGACY)
        assert str(request.url) == (
            "https://image.pollinations.ai/prompt/a%20cat%20%2F%20dog%3F?width=512&height=768&model=flux&nologo=true&seed=5"
        )
        assert "authorization" not in request.headers
        assert sorted(plan.dropped_params) == ["negative_prompt", "steps"]

    def test_given_a_key_when_built_then_gen_host_image_path_bearer_and_negative_sent(self) -> None:
        plan = pollinations.plan(_request(negative_prompt="x"), None, KEYED)
        request = pollinations.build_request(plan, KEYED)
        assert request.url.host == "gen.pollinations.ai"
        assert request.url.path == "/image/a cat / dog?"
        assert request.url.params["negative_prompt"] == "x"
        assert request.headers["authorization"] == "Bearer sk_unitSECRET"

    def test_given_a_user_key_on_keyless_settings_when_keyed_then_host_follows_the_key(self) -> None:
        assert LEGACY.with_key(SecretStr("k")).base_url == "https://gen.pollinations.ai"
        assert KEYED.with_key(None).base_url == "https://image.pollinations.ai"
        explicit = PollinationsSettings(base_url="http://127.0.0.1:9", explicit_base_url=True)
        assert explicit.with_key(SecretStr("k")).base_url == "http://127.0.0.1:9"

    def test_given_x402_queue_full_when_parsed_then_rate_limited_fall_through(self) -> None:
        body = {
            "x402Version": 1,
            "error": "Queue full for IP: 1.2.3.4 - 1 requests already queued (max: 1).",
            "accepts": [],
        }
        result = pollinations.parse_response(_response(402, json=body), pollinations.plan(_request(), None, LEGACY))
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.status_code, result.scope, result.trips_breaker) == (
            "rate_limited",
            402,
            "model",
            True,
        )

    def test_given_gen_402_payment_required_when_parsed_then_provider_scoped_payment_required(self) -> None:
        body = {
            "status": 402,
            "success": False,
            "error": {"code": "PAYMENT_REQUIRED", "message": "Insufficient pollen balance"},
        }
        result = pollinations.parse_response(_response(402, json=body), pollinations.plan(_request(), None, KEYED))
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.scope, result.message) == (
            "payment_required",
            "provider",
            "Insufficient pollen balance",
        )

    def test_given_jpeg_bytes_when_parsed_then_image_bytes(self) -> None:
        result = pollinations.parse_response(
            _response(200, content=b"\xff\xd8", headers={"content-type": "image/jpeg"}),
            pollinations.plan(_request(), None, LEGACY),
        )
        assert result == ImageBytes(b"\xff\xd8", "image/jpeg")

    def test_given_html_200_when_parsed_then_bad_response(self) -> None:
        result = pollinations.parse_response(
            _response(200, content=b"<html>", headers={"content-type": "text/html"}),
            pollinations.plan(_request(), None, LEGACY),
        )
        assert isinstance(result, FallThrough)
        assert result.error_class == "bad_response"
