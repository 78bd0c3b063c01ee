"""fal.ai adapter: the payload (sizes, ranges, fixed fields), the queue's URLs, status and output, errors, keys."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from imagegen.models import ImageRequest
from imagegen.providers import fal
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    FallThrough,
    ImageBytes,
    Refused,
    RemoteRequest,
    ResultUrl,
    under,
)
from imagegen.providers.fal import FalSettings
from pydantic import SecretStr

KEY = "falUNITkeyid01:falUNITsecret01"
KEYED = FalSettings(api_key=SecretStr(KEY))
QUEUE = "https://queue.fal.run"


def _request(**kwargs: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a lighthouse", **kwargs})


def _response(status: int, payload: Any, url: str = f"{QUEUE}/fal-ai/flux/dev", **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, json=payload, request=httpx.Request("POST", url), **kwargs)


class TestPayload:
    @pytest.mark.parametrize(
        ("asked", "planned", "wire"),
        [
            ((1024, 768), (1024, 768), "landscape_4_3"),
            ((512, 512), (512, 512), "square"),
            ((768, 512), (768, 512), {"width": 768, "height": 512}),
            ((1000, 700), (1008, 704), {"width": 1008, "height": 704}),
            ((100, 64), (400, 256), {"width": 400, "height": 256}),
            ((64, 2048), (64, 2048), {"width": 64, "height": 2048}),
        ],
    )
    def test_given_a_size_when_planned_then_a_fal_size_name_or_the_object_on_flux_s_grid(
        self, asked: tuple[int, int], planned: tuple[int, int], wire: object
    ) -> None:
        plan = fal.fal_plan(_request(width=asked[0], height=asked[1]), None)

        assert (plan.width, plan.height) == planned
        assert fal.fal_input(plan)["image_size"] == wire
        assert plan.notes == ([] if asked == planned else [f"size {asked[0]}x{asked[1]} -> {planned[0]}x{planned[1]}"])

    def test_given_every_portable_field_when_the_input_is_built_then_mapped_dropped_and_fixed_visibly(self) -> None:
        plan = fal.fal_plan(
            _request(
                width=1024, height=1024, steps=30, guidance=4.5, seed=7, negative_prompt="fog", extra={"lora": "x"}
            ),
            "fal-ai/flux/dev",
        )

        assert fal.fal_input(plan) == {
            "prompt": "a lighthouse",
            "image_size": "square_hd",
            "num_inference_steps": 30,
            "guidance_scale": 4.5,
            "seed": 7,
            "num_images": 1,
            "enable_safety_checker": True,
            "output_format": "png",
        }
        assert plan.dropped_params == ["negative_prompt", "extra.lora"]
        assert (plan.provider, plan.model) == ("fal", "fal-ai/flux/dev")

    def test_given_steps_beyond_schnell_s_range_when_planned_then_clamped_and_said(self) -> None:
        plan = fal.fal_plan(_request(steps=28, guidance=25.0), "fal-ai/flux/schnell")

        assert (plan.params["num_inference_steps"], plan.params["guidance_scale"]) == (12, 20.0)
        assert plan.notes[-2:] == [
            "num_inference_steps 28 -> 12 (fal-ai/flux/schnell takes 1-12)",
            "guidance_scale 25.0 -> 20.0 (fal-ai/flux/schnell takes 1-20)",
        ]

    def test_given_another_sender_when_planned_then_the_plan_names_it(self) -> None:
        # The HF router's fal-ai route reuses the mapping under its own name.
        assert fal.fal_plan(_request(), "fal-ai/flux/schnell", provider="huggingface").provider == "huggingface"

    def test_given_a_plan_when_the_submit_is_built_then_the_queue_gets_the_key_in_key_auth(self) -> None:
        plan = fal.plan(_request(seed=3), "fal-ai/flux/schnell", KEYED)

        sent = fal.build_request(plan, KEYED)

        assert (sent.method, str(sent.url)) == ("POST", f"{QUEUE}/fal-ai/flux/schnell")
        assert sent.headers["authorization"] == f"Key {KEY}"
        assert json.loads(sent.content)["seed"] == 3


class TestQueue:
    def test_given_a_submit_answer_when_parsed_then_the_request_id_and_fal_s_three_urls(self) -> None:
        base = f"{QUEUE}/fal-ai/flux/requests/r-1"
        answer = {
            "request_id": "r-1",
            "status_url": f"{base}/status",
            "response_url": base,
            "cancel_url": f"{base}/cancel",
        }

        result = fal.parse_response(_response(200, answer), fal.fal_plan(_request(), None))

        assert result == AsyncSubmitted(
            "r-1", 0.0, {"check": f"{base}/status", "collect": base, "cancel": f"{base}/cancel"}
        )

    def test_given_urls_on_another_host_when_parsed_then_replaced_by_the_queue_s_own(self) -> None:
        # The key rides on every follow-up call: a URL elsewhere is never kept.
        evil = "https://collector.example/fal-ai/flux/requests/r-2"
        answer = {"request_id": "r-2", "status_url": f"{evil}/status", "response_url": evil}

        result = fal.parse_response(_response(200, answer), fal.fal_plan(_request(), "fal-ai/flux/dev"))

        assert isinstance(result, AsyncSubmitted)
        base = f"{QUEUE}/fal-ai/flux/requests/r-2"
        assert result.urls == {"check": f"{base}/status", "collect": base, "cancel": f"{base}/cancel"}

    def test_given_a_stored_url_off_the_configured_queue_when_a_check_is_built_then_it_stays_on_the_queue(self) -> None:
        remote = RemoteRequest("r-3", {"check": "https://collector.example/requests/r-3/status"})

        sent = fal.build_check(remote, KEYED)

        assert sent.url.host == "queue.fal.run"
        assert sent.headers["authorization"] == f"Key {KEY}"

    def test_given_fal_s_urls_when_follow_ups_are_built_then_get_status_get_result_put_cancel(self) -> None:
        base = f"{QUEUE}/fal-ai/flux/requests/r-4"
        remote = RemoteRequest("r-4", {"check": f"{base}/status", "collect": base, "cancel": f"{base}/cancel"})

        built = [fal.build_check(remote, KEYED), fal.build_collect(remote, KEYED), fal.build_cancel(remote, KEYED)]

        assert [(r.method, str(r.url)) for r in built] == [
            ("GET", f"{base}/status"),
            ("GET", base),
            ("PUT", f"{base}/cancel"),
        ]

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({"status": "IN_QUEUE", "queue_position": 3}, AsyncStatus(done=False, wait_time=0.0, queue_position=3)),
            ({"status": "IN_PROGRESS", "logs": None}, AsyncStatus(done=False, wait_time=0.0)),
            ({"status": "COMPLETED", "metrics": {"inference_time": 1.2}}, AsyncStatus(done=True, wait_time=0.0)),
        ],
    )
    def test_given_a_status_when_parsed_then_queued_running_or_done(self, body: dict[str, Any], expected: Any) -> None:
        assert fal.parse_check(_response(200, body)) == expected

    @pytest.mark.parametrize(
        "body",
        [
            {"status": "COMPLETED", "error": "Request was cancelled", "error_type": "request_cancelled"},
            {"status": "FAILED"},
        ],
    )
    def test_given_a_failed_or_errored_status_when_parsed_then_the_link_falls_through(
        self, body: dict[str, Any]
    ) -> None:
        result = fal.parse_check(_response(200, body))

        assert isinstance(result, FallThrough) and result.error_class == "faulted"


class TestOutput:
    def test_given_an_output_when_parsed_then_the_first_image_link(self) -> None:
        body = {"images": [{"url": "https://v3.fal.media/files/b/x.png"}], "has_nsfw_concepts": [False]}

        assert fal.parse_fal_output(body) == ResultUrl("https://v3.fal.media/files/b/x.png")

    def test_given_an_nsfw_flag_when_parsed_then_a_refusal_not_a_success(self) -> None:
        body = {"images": [{"url": "https://v3.fal.media/files/b/x.png"}], "has_nsfw_concepts": [True]}

        result = fal.parse_fal_output(body)

        assert isinstance(result, Refused) and result.error_class == "content_policy"

    def test_given_a_data_uri_when_parsed_then_decoded_in_place(self) -> None:
        body = {"images": [{"url": "data:image/png;base64," + base64.b64encode(b"\x89PNG-bytes").decode()}]}

        assert fal.parse_fal_output(body) == ImageBytes(b"\x89PNG-bytes", "image/png")

    @pytest.mark.parametrize("body", [None, {}, {"images": []}, {"images": [{"url": "ftp://x"}]}])
    def test_given_no_usable_image_when_parsed_then_bad_response(self, body: Any) -> None:
        result = fal.parse_fal_output(body)

        assert isinstance(result, FallThrough) and result.error_class == "bad_response"

    def test_given_a_422_on_the_result_when_collected_then_bad_request(self) -> None:
        detail = [{"loc": ["body", "image_size"], "msg": "bad", "type": "enum"}]

        result = fal.parse_collect(_response(422, {"detail": detail}))

        assert isinstance(result, FallThrough) and (result.error_class, result.status_code) == ("bad_request", 422)


class TestErrors:
    @pytest.mark.parametrize(
        ("reason", "error_class"),
        [
            ("Exhausted balance. Top up your balance at fal.ai/dashboard/billing.", "payment_required"),
            ("TOP_UP.", "payment_required"),
            ("Admin lock. Please contact support@fal.ai", "forbidden"),
        ],
    )
    def test_given_a_locked_account_when_submitting_then_the_whole_provider_is_out(
        self, reason: str, error_class: str
    ) -> None:
        result = fal.parse_response(
            _response(403, {"detail": f"User is locked. Reason: {reason}"}), fal.fal_plan(_request(), None)
        )

        assert isinstance(result, FallThrough)
        assert (result.error_class, result.scope) == (error_class, "provider")

    def test_given_401_when_submitting_then_unauthorized_for_the_provider(self) -> None:
        result = fal.parse_response(
            _response(401, {"detail": "No user found for Key ID and Secret"}), fal.fal_plan(_request(), None)
        )

        assert isinstance(result, FallThrough) and (result.error_class, result.scope) == ("unauthorized", "provider")

    def test_given_the_user_s_start_timeout_when_answered_then_a_timeout(self) -> None:
        answer = _response(504, {"detail": "timeout"}, headers={"x-fal-request-timeout-type": "user"})

        result = fal.parse_response(answer, fal.fal_plan(_request(), None))

        assert isinstance(result, FallThrough) and result.error_class == "timeout"


class TestKeyCheck:
    def test_given_a_key_when_the_check_is_built_then_storage_settings_on_the_api_host(self) -> None:
        sent = fal.build_key_check(FalSettings(), SecretStr(KEY))

        assert (sent.method, str(sent.url)) == ("GET", "https://api.fal.ai/v1/storage/settings")
        assert sent.headers["authorization"] == f"Key {KEY}"

    @pytest.mark.parametrize(
        ("status", "body", "verdict"),
        [
            (200, {"expiration_duration_seconds": None, "initial_acl": "public"}, "ok"),
            (401, {"detail": "No user found for Key ID and Secret"}, "invalid"),
            (403, {"detail": "User is locked. Reason: Exhausted balance. Top up ..."}, "out_of_credit"),
            (403, {"detail": "User is locked. Reason: TOP_UP."}, "out_of_credit"),
            (403, {"detail": "User is locked. Reason: Admin lock. Please contact support@fal.ai"}, "invalid"),
            (500, {"detail": "oops"}, "unreachable"),
        ],
    )
    def test_given_an_answer_when_the_key_check_reads_it_then_its_verdict(
        self, status: int, body: dict[str, Any], verdict: str
    ) -> None:
        answer = httpx.Response(
            status, json=body, request=httpx.Request("GET", "https://api.fal.ai/v1/storage/settings")
        )

        assert fal.parse_key_check(answer).status == verdict

    @pytest.mark.parametrize(
        ("key", "accepted"),
        [(KEY, True), ("0123456789abcdef", True), ("tiny", False), ("short:x", False), ("a b:cdefghij", False)],
    )
    def test_given_a_key_when_its_format_is_checked_then_key_id_and_secret_or_one_string(
        self, key: str, accepted: bool
    ) -> None:
        assert fal.SPEC.key is not None and fal.SPEC.key.accepts(key) is accepted


@pytest.mark.parametrize(
    ("url", "base", "inside"),
    [
        (f"{QUEUE}/fal-ai/flux/requests/r/status", QUEUE, True),
        ("https://QUEUE.fal.run/fal-ai/x", QUEUE, True),
        ("https://queue.fal.run.evil.example/fal-ai/x", QUEUE, False),
        ("https://queue.fal.run@evil.example/fal-ai/x", QUEUE, False),
        ("http://queue.fal.run/fal-ai/x", QUEUE, False),
        ("https://queue.fal.run:8443/fal-ai/x", QUEUE, False),
        ("https://api.replicate.com/v1/predictions/p", "https://api.replicate.com/v1", True),
        ("https://api.replicate.com/v10/predictions/p", "https://api.replicate.com/v1", False),
        ("https://api.replicate.com/predictions/p", "https://api.replicate.com/v1", False),
    ],
)
def test_given_a_follow_up_url_when_judged_then_only_urls_under_the_configured_base_pass(
    url: str, base: str, inside: bool
) -> None:
    # Given a URL a submit answer named; When judged against the configured base; Then only the base's own pass.
    assert under(url, base) is inside
    assert (RemoteRequest("r", {"check": url}).url("check", base, "fallback") == url) is inside
