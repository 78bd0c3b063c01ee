"""Replicate adapter: FLUX inputs (aspect ratio, megapixels, ranges), Prefer: wait creates, predictions, keys."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from imagegen.models import ImageRequest
from imagegen.providers import replicate
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    FallThrough,
    ImageBytes,
    Refused,
    RemoteRequest,
    ResultUrl,
    RetrySameLink,
)
from imagegen.providers.replicate import ReplicateSettings
from pydantic import SecretStr, ValidationError

TOKEN = "r8_UNITtoken0123456789"
KEYED = ReplicateSettings(api_key=SecretStr(TOKEN))
BASE = "https://api.replicate.com/v1"
DEV, SCHNELL = "black-forest-labs/flux-dev", "black-forest-labs/flux-schnell"


def _request(**kwargs: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a lighthouse", **kwargs})


def _created(status: int, payload: Any, url: str = f"{BASE}/models/{DEV}/predictions", **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, json=payload, request=httpx.Request("POST", url), **kwargs)


def _prediction(**fields: Any) -> dict[str, Any]:
    url = f"{BASE}/predictions/p1"
    return {"id": "p1", "status": "starting", "output": None, "urls": {"get": url, "cancel": f"{url}/cancel"}, **fields}


class TestInputs:
    @pytest.mark.parametrize(
        ("asked", "aspect", "megapixels", "made"),
        [
            ((1024, 1024), "1:1", "1", (1024, 1024)),
            ((768, 512), "3:2", "1", (1248, 832)),
            ((512, 512), "1:1", "0.25", (512, 512)),
            ((256, 448), "9:16", "0.25", (384, 688)),
            ((1920, 1080), "16:9", "1", (1360, 768)),
            ((2048, 880), "21:9", "1", (1568, 672)),
        ],
    )
    def test_given_a_size_when_planned_then_the_nearest_aspect_ratio_and_a_budget_not_below_the_request(
        self, asked: tuple[int, int], aspect: str, megapixels: str, made: tuple[int, int]
    ) -> None:
        plan = replicate.replicate_plan(_request(width=asked[0], height=asked[1]), DEV)

        assert (plan.params["aspect_ratio"], plan.params["megapixels"]) == (aspect, megapixels)
        assert (plan.width, plan.height) == made
        assert plan.notes[0] == (
            f"size {asked[0]}x{asked[1]} -> aspect_ratio {aspect}, megapixels {megapixels} ({made[0]}x{made[1]})"
        )

    def test_given_dev_and_every_portable_field_when_the_input_is_built_then_flux_s_fields_only(self) -> None:
        plan = replicate.replicate_plan(
            _request(width=1024, height=1024, steps=30, guidance=3.5, seed=9, negative_prompt="fog"), DEV
        )

        assert replicate.replicate_input(plan) == {
            "prompt": "a lighthouse",
            "aspect_ratio": "1:1",
            "megapixels": "1",
            "num_inference_steps": 30,
            "guidance": 3.5,
            "seed": 9,
            "num_outputs": 1,
            "output_format": "png",
        }
        assert plan.dropped_params == ["negative_prompt"]

    def test_given_schnell_when_planned_then_guidance_is_dropped_and_steps_clamped_to_four(self) -> None:
        plan = replicate.replicate_plan(_request(steps=28, guidance=3.5), SCHNELL)

        assert plan.params["num_inference_steps"] == 4 and "guidance" not in plan.params
        assert plan.dropped_params == ["guidance"]
        assert plan.notes[1] == f"num_inference_steps 28 -> 4 ({SCHNELL} takes 1-4)"

    def test_given_guidance_above_dev_s_range_when_planned_then_clamped_to_ten(self) -> None:
        plan = replicate.replicate_plan(_request(guidance=12.0), DEV)

        assert plan.params["guidance"] == 10.0

    def test_given_a_plan_when_the_create_is_built_then_official_model_route_prefer_wait_and_bearer(self) -> None:
        sent = replicate.build_request(replicate.plan(_request(), SCHNELL, KEYED), KEYED)

        assert (sent.method, str(sent.url)) == ("POST", f"{BASE}/models/{SCHNELL}/predictions")
        assert (sent.headers["prefer"], sent.headers["authorization"]) == ("wait=1", f"Bearer {TOKEN}")
        assert set(json.loads(sent.content)) == {"input"}

    def test_given_a_pinned_version_when_the_create_is_built_then_v1_predictions_with_the_version(self) -> None:
        sent = replicate.build_request(replicate.plan(_request(), f"{DEV}:abc123", KEYED), KEYED)

        assert str(sent.url) == f"{BASE}/predictions"
        assert json.loads(sent.content)["version"] == "abc123"

    def test_given_a_wait_as_long_as_the_timeout_when_configured_then_refused(self) -> None:
        with pytest.raises(ValidationError, match="prefer_wait_s"):
            ReplicateSettings(prefer_wait_s=30, timeout_s=20)


class TestPredictions:
    def test_given_a_finished_create_when_parsed_then_the_output_link_at_once(self) -> None:
        body = _prediction(status="succeeded", output=["https://replicate.delivery/xezq/p1/out-0.png"])

        result = replicate.parse_response(_created(201, body), replicate.replicate_plan(_request(), DEV))

        assert result == ResultUrl("https://replicate.delivery/xezq/p1/out-0.png")

    def test_given_processing_with_an_output_when_parsed_then_done(self) -> None:
        # A finished sync reply may still say processing (replicate/run.py): the output decides.
        body = _prediction(status="processing", output=["https://replicate.delivery/a/out-0.png"])

        assert replicate.parse_prediction(body) == ResultUrl("https://replicate.delivery/a/out-0.png")

    def test_given_an_unfinished_create_when_parsed_then_submitted_with_its_get_and_cancel_urls(self) -> None:
        result = replicate.parse_response(_created(201, _prediction()), replicate.replicate_plan(_request(), DEV))

        url = f"{BASE}/predictions/p1"
        assert result == AsyncSubmitted("p1", 0.0, {"check": url, "cancel": f"{url}/cancel"})

    def test_given_urls_on_another_host_when_parsed_then_not_kept(self) -> None:
        body = _prediction(urls={"get": "https://collector.example/p1", "cancel": "https://collector.example/c"})

        result = replicate.parse_response(_created(201, body), replicate.replicate_plan(_request(), DEV))

        assert isinstance(result, AsyncSubmitted) and result.urls == {}

    def test_given_a_data_uri_output_when_parsed_then_decoded(self) -> None:
        uri = "data:image/png;base64," + base64.b64encode(b"png-bytes").decode()

        assert replicate.parse_prediction(_prediction(status="succeeded", output=[uri])) == ImageBytes(
            b"png-bytes", "image/png"
        )

    def test_given_an_inline_output_over_the_limit_when_parsed_then_refused_before_decoding(self) -> None:
        huge = "data:image/png;base64," + "A" * (28 * 1024 * 1024)

        result = replicate.parse_prediction(_prediction(status="succeeded", output=[huge]))

        assert isinstance(result, FallThrough) and "larger than" in result.message

    def test_given_an_e005_failure_when_parsed_then_a_refusal(self) -> None:
        error = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"

        result = replicate.parse_prediction(_prediction(status="failed", error=error))

        assert isinstance(result, Refused) and result.message == f"Replicate: {error}"

    def test_given_another_failure_when_parsed_then_its_error_not_a_timeout(self) -> None:
        result = replicate.parse_prediction(_prediction(status="failed", error="CUDA out of memory"))

        assert isinstance(result, FallThrough)
        assert (result.error_class, result.message) == ("faulted", "Replicate: CUDA out of memory")

    @pytest.mark.parametrize(
        ("fields", "error_class"),
        [
            ({"status": "canceled"}, "faulted"),
            ({"status": "succeeded", "output": None, "data_removed": True}, "expired"),
            ({"status": "succeeded", "output": []}, "bad_response"),
            ({"status": "weird"}, "bad_response"),
        ],
    )
    def test_given_no_result_when_parsed_then_the_reason(self, fields: dict[str, Any], error_class: str) -> None:
        result = replicate.parse_prediction(_prediction(**fields))

        assert isinstance(result, FallThrough) and result.error_class == error_class

    def test_given_a_running_prediction_when_checked_then_not_done(self) -> None:
        answer = httpx.Response(200, json=_prediction(status="processing"), request=httpx.Request("GET", BASE))

        assert replicate.parse_check(answer) == AsyncStatus(done=False, wait_time=0.0)

    def test_given_stored_urls_when_follow_ups_are_built_then_get_and_post_cancel_on_the_api_host(self) -> None:
        url = f"{BASE}/predictions/p1"
        remote = RemoteRequest("p1", {"check": url, "cancel": f"{url}/cancel"})

        built = [replicate.build_check(remote, KEYED), replicate.build_cancel(remote, KEYED)]

        assert [(r.method, str(r.url), r.headers["authorization"]) for r in built] == [
            ("GET", url, f"Bearer {TOKEN}"),
            ("POST", f"{url}/cancel", f"Bearer {TOKEN}"),
        ]

    def test_given_no_stored_urls_when_follow_ups_are_built_then_derived_from_the_id(self) -> None:
        remote = RemoteRequest("p/../2")

        assert str(replicate.build_check(remote, KEYED).url) == f"{BASE}/predictions/p%2F..%2F2"


class TestErrors:
    def test_given_a_throttled_create_with_retry_after_when_parsed_then_the_same_link_after_it(self) -> None:
        throttled = {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429}

        result = replicate.parse_response(
            _created(429, throttled, headers={"retry-after": "3"}), replicate.replicate_plan(_request(), DEV)
        )

        assert isinstance(result, RetrySameLink) and result.retry_after == 3.0

    @pytest.mark.parametrize(("status", "error_class"), [(401, "unauthorized"), (402, "payment_required")])
    def test_given_a_refused_token_when_parsed_then_the_provider_is_out(self, status: int, error_class: str) -> None:
        result = replicate.parse_response(
            _created(status, {"title": "x", "detail": "y", "status": status}), replicate.replicate_plan(_request(), DEV)
        )

        assert isinstance(result, FallThrough) and (result.error_class, result.scope) == (error_class, "provider")


class TestKeyCheck:
    def test_given_a_token_when_the_check_is_built_then_get_account(self) -> None:
        sent = replicate.build_key_check(ReplicateSettings(), SecretStr(TOKEN))

        assert (sent.method, str(sent.url), sent.headers["authorization"]) == (
            "GET",
            f"{BASE}/account",
            f"Bearer {TOKEN}",
        )

    @pytest.mark.parametrize(
        ("status", "body", "verdict", "detail"),
        [
            (200, {"type": "user", "username": "alice"}, "ok", "user alice"),
            (
                401,
                {"title": "Unauthenticated", "status": 401},
                "invalid",
                "Replicate does not know this token (HTTP 401)",
            ),
            (503, {}, "unreachable", "unexpected answer: HTTP 503"),
        ],
    )
    def test_given_an_answer_when_the_key_check_reads_it_then_its_verdict(
        self, status: int, body: dict[str, Any], verdict: str, detail: str
    ) -> None:
        answer = httpx.Response(status, json=body, request=httpx.Request("GET", f"{BASE}/account"))

        result = replicate.parse_key_check(answer)

        assert (result.status, result.detail) == (verdict, detail)

    @pytest.mark.parametrize(("key", "accepted"), [(TOKEN, True), ("r8_short", False), ("sk-0123456789", False)])
    def test_given_a_token_when_its_format_is_checked_then_r8_tokens_only(self, key: str, accepted: bool) -> None:
        assert replicate.SPEC.key is not None and replicate.SPEC.key.accepts(key) is accepted
