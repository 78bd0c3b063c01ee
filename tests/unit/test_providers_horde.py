"""AI Horde adapter: submit payload, check/status parsing, censorship, cancel."""

from __future__ import annotations

import json

import httpx
import pytest
from imagegen.models import ImageRequest
from imagegen.providers import horde
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    FallThrough,
    ImageBase64,
    Refused,
    RemoteRequest,
    ResultUrl,
)
from imagegen.providers.horde import HordeSettings
from pydantic import SecretStr

SETTINGS = HordeSettings(client_agent="imagegen:0.1.0:ops@example.invalid")
KEYED = HordeSettings(api_key=SecretStr("horde-unit-SECRET"), client_agent="imagegen:0.1.0:ops@example.invalid")


def _request(**kwargs: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a castle", **kwargs})


def _response(status: int, payload: object) -> httpx.Response:
    return httpx.Response(status, json=payload, request=httpx.Request("GET", "https://aihorde.net/api/v2/x"))


class TestHorde:
    @pytest.mark.parametrize(
        ("asked", "sent"),
        [((1000, 700), (1024, 704)), ((64, 2048), (64, 2048)), ((96, 160), (128, 192)), ((65, 65), (64, 64))],
    )
    def test_given_a_size_when_planned_then_each_side_is_the_nearest_multiple_of_64(
        self, asked: tuple[int, int], sent: tuple[int, int]
    ) -> None:
        plan = horde.plan(_request(width=asked[0], height=asked[1]), None, SETTINGS)
        assert (plan.width, plan.height) == sent
        assert plan.notes == ([] if asked == sent else [f"size {asked[0]}x{asked[1]} -> {sent[0]}x{sent[1]}"])

    def test_given_anonymous_settings_when_submit_is_built_then_anon_key_agent_negative_after_hashes_and_string_seed(
        self,
    ) -> None:
        plan = horde.plan(
            _request(negative_prompt="fog", seed=42, guidance=7.123, steps=20, extra={"lora": "x"}), None, SETTINGS
        )
        request = horde.build_request(plan, SETTINGS)
        assert str(request.url) == "https://aihorde.net/api/v2/generate/async"
        assert request.headers["apikey"] == "0000000000"
        assert request.headers["client-agent"] == "imagegen:0.1.0:ops@example.invalid"
        assert "authorization" not in request.headers
        assert json.loads(request.content) == {
            "prompt": "a castle ### fog",
            "params": {"width": 1024, "height": 1024, "n": 1, "steps": 20, "cfg_scale": 7.12, "seed": "42"},
            "nsfw": False,
            "censor_nsfw": False,
            "r2": True,
            "shared": False,
        }
        assert plan.dropped_params == ["extra.lora"]

    def test_given_202_when_parsed_then_async_submitted(self) -> None:
        result = horde.parse_response(
            _response(202, {"id": "abc", "kudos": 10}), horde.plan(_request(), None, SETTINGS)
        )
        assert result == AsyncSubmitted("abc", 0.0)

    def test_given_kudos_upfront_403_when_parsed_then_provider_scoped_fall_through(self) -> None:
        result = horde.parse_response(
            _response(403, {"message": "need kudos", "rc": "KudosUpfront"}), horde.plan(_request(), None, SETTINGS)
        )
        assert isinstance(result, FallThrough)
        assert (result.error_class, result.scope, result.status_code) == ("payment_required", "provider", 403)

    def test_given_a_check_in_progress_when_parsed_then_not_done_with_wait_time(self) -> None:
        result = horde.parse_check(
            _response(200, {"done": False, "faulted": False, "wait_time": 45, "queue_position": 3, "is_possible": True})
        )
        assert result == AsyncStatus(done=False, wait_time=45.0, queue_position=3)

    @pytest.mark.parametrize(
        ("payload", "status", "error_class"),
        [
            ({"done": False, "faulted": True, "wait_time": 0}, 200, "faulted"),
            ({"done": False, "faulted": False, "is_possible": False, "wait_time": 0}, 200, "model_unavailable"),
            ({"message": "expired", "rc": "RequestExpired"}, 410, "expired"),
            ({"message": "Request not found", "rc": "RequestNotFound"}, 404, "expired"),
        ],
    )
    def test_given_a_dead_request_when_checked_then_fall_through(
        self, payload: dict[str, object], status: int, error_class: str
    ) -> None:
        result = horde.parse_check(_response(status, payload))
        assert isinstance(result, FallThrough)
        assert result.error_class == error_class

    def test_given_done_status_with_r2_link_when_collected_then_result_url(self) -> None:
        gen = {"img": "https://r2.example/x.webp?X-Amz-Signature=s", "censored": False, "gen_metadata": []}
        assert horde.parse_collect(_response(200, {"done": True, "generations": [gen]})) == ResultUrl(gen["img"])

    def test_given_done_status_with_base64_when_collected_then_base64(self) -> None:
        gen = {"img": "UklGRg==", "censored": False}
        assert horde.parse_collect(_response(200, {"done": True, "generations": [gen]})) == ImageBase64("UklGRg==")

    @pytest.mark.parametrize(
        "gen",
        [
            {"img": "https://r2/x", "censored": True},
            {"img": "https://r2/x", "censored": False, "gen_metadata": [{"type": "censorship", "value": "nsfw"}]},
        ],
    )
    def test_given_a_censored_generation_when_collected_then_refused(self, gen: dict[str, object]) -> None:
        result = horde.parse_collect(_response(200, {"done": True, "generations": [gen]}))
        assert isinstance(result, Refused)
        assert result.error_class == "content_policy"

    def test_given_a_remote_id_when_cancel_is_built_then_delete_status_with_the_key(self) -> None:
        request = horde.build_cancel(RemoteRequest("abc"), KEYED)
        assert (request.method, str(request.url)) == ("DELETE", "https://aihorde.net/api/v2/generate/status/abc")
        assert request.headers["apikey"] == "horde-unit-SECRET"
