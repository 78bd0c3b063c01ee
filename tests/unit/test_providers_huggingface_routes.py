"""Hugging Face's router routes without a network: each route's plan, request and answers; the Hub mapping's reading."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from imagegen.models import ImageRequest
from imagegen.providers import huggingface
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    CatalogEntry,
    FallThrough,
    ImageBase64,
    ImageBytes,
    Refused,
    RemoteRequest,
    ResultUrl,
    Route,
)
from imagegen.providers.huggingface import HuggingFaceSettings, mapping
from pydantic import SecretStr

TOKEN = "hf_unitSECRETroutes"
SETTINGS = HuggingFaceSettings(api_key=SecretStr(TOKEN))
ROUTER = "https://router.huggingface.co"
DEV, SCHNELL = "black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell"


def asked(**kwargs: Any) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a lighthouse", **kwargs})


def built(route: str, provider_model: str, model: str = DEV, **kwargs: Any) -> tuple[Any, httpx.Request]:
    plan = huggingface.plan_route(asked(**kwargs), model, Route(route, provider_model), SETTINGS)
    return plan, huggingface.build_request(plan, SETTINGS)


def answer(status: int, payload: Any = None, url: str = f"{ROUTER}/x", **kwargs: Any) -> httpx.Response:
    if payload is not None:
        kwargs["json"] = payload
    return httpx.Response(status, request=httpx.Request("POST", url), **kwargs)


class TestRequests:
    def test_given_fal_flux_dev_when_built_then_the_app_route_image_size_and_no_negative_prompt(self) -> None:
        plan, sent = built(
            "fal-ai", "fal-ai/flux/dev", width=768, height=512, steps=28, guidance=3.5, seed=7, negative_prompt="blur"
        )

        assert (sent.method, str(sent.url)) == ("POST", f"{ROUTER}/fal-ai/fal-ai/flux/dev")
        assert sent.headers["authorization"] == f"Bearer {TOKEN}"
        assert json.loads(sent.content) == {
            "prompt": "a lighthouse",
            "image_size": {"width": 768, "height": 512},
            "num_inference_steps": 28,
            "guidance_scale": 3.5,
            "seed": 7,
            # What our fal provider sends too (providers/fal.py): one image, the safety checker on, a PNG.
            "num_images": 1,
            "enable_safety_checker": True,
            "output_format": "png",
        }
        assert (plan.route, plan.provider_model, plan.dropped_params) == (
            "fal-ai",
            "fal-ai/flux/dev",
            ["negative_prompt"],
        )

    def test_given_fal_schnell_when_planned_then_four_steps_fixed_and_guidance_recorded_dropped(self) -> None:
        plan, sent = built("fal-ai", "fal-ai/flux/schnell", model=SCHNELL, steps=28, guidance=3.5)

        body = json.loads(sent.content)
        assert body["num_inference_steps"] == 4 and "guidance_scale" not in body
        assert plan.dropped_params == ["steps", "guidance"]

    def test_given_a_guidance_outside_fal_range_when_planned_then_it_is_moved_in_and_noted(self) -> None:
        plan, sent = built("fal-ai", "fal-ai/flux/dev", guidance=0.5)

        assert json.loads(sent.content)["guidance_scale"] == 1.0
        assert plan.notes == ["guidance_scale 0.5 -> 1.0 (fal-ai/flux/dev takes 1-20)"]

    def test_given_replicate_flux_dev_when_built_then_its_own_inputs_and_a_wait_within_the_budget(self) -> None:
        plan, _ = built(
            "replicate",
            "black-forest-labs/flux-dev",
            width=768,
            height=512,
            steps=28,
            guidance=3.5,
            seed=7,
            negative_prompt="blur",
        )
        sent = huggingface.build_request(plan, SETTINGS.model_copy(update={"timeout_s": 30.0}))

        assert str(sent.url) == f"{ROUTER}/replicate/v1/models/black-forest-labs/flux-dev/predictions"
        assert sent.headers["prefer"] == "wait=28"
        assert json.loads(sent.content) == {
            "input": {
                "prompt": "a lighthouse",
                "aspect_ratio": "3:2",
                "megapixels": "1",
                "num_inference_steps": 28,
                "guidance": 3.5,
                "seed": 7,
                "num_outputs": 1,
                "output_format": "png",
            }
        }
        # The image comes back in FLUX's own size for that ratio, which the image check is held to.
        assert (plan.width, plan.height, plan.dropped_params) == (1248, 832, ["negative_prompt"])

    def test_given_a_pinned_replicate_version_when_built_then_predictions_with_the_version(self) -> None:
        _, sent = built("replicate", "acme/other-model:abc123", model="acme/other", width=512, height=512)

        assert str(sent.url) == f"{ROUTER}/replicate/v1/predictions"
        assert json.loads(sent.content) == {
            "input": {"prompt": "a lighthouse", "width": 512, "height": 512},
            "version": "abc123",
        }

    @pytest.mark.parametrize(
        ("route", "expected"),
        [
            ("nscale", {"response_format": "b64_json", "size": "768x512", "seed": 7, "guidance_scale": 0}),
            (
                "together",
                {"response_format": "base64", "width": 768, "height": 512, "steps": 4, "seed": 7, "guidance_scale": 0},
            ),
        ],
    )
    def test_given_an_openai_style_route_when_built_then_its_fields_with_schnell_fixed(
        self, route: str, expected: dict[str, Any]
    ) -> None:
        plan, sent = built(route, SCHNELL, model=SCHNELL, width=768, height=512, seed=7, steps=20)

        assert str(sent.url) == f"{ROUTER}/{route}/v1/images/generations"
        assert json.loads(sent.content) == {"prompt": "a lighthouse", "model": SCHNELL, **expected}
        assert plan.dropped_params == ["steps"]

    def test_given_wavespeed_and_zai_when_built_then_their_routes_and_headers(self) -> None:
        _, wave = built("wavespeed", "wavespeed-ai/flux-dev", width=512, height=512, seed=1)
        _, zai = built("zai-org", "glm-image", model="zai-org/GLM-Image", width=512, height=512)

        assert str(wave.url) == f"{ROUTER}/wavespeed/api/v3/wavespeed-ai/flux-dev"
        assert json.loads(wave.content) == {"prompt": "a lighthouse", "width": 512, "height": 512, "seed": 1}
        assert str(zai.url) == f"{ROUTER}/zai-org/api/paas/v4/async/images/generations"
        assert json.loads(zai.content) == {"model": "glm-image", "prompt": "a lighthouse", "size": "512x512"}
        assert (zai.headers["x-source-channel"], zai.headers["accept-language"]) == ("hugging_face", "en-US,en")

    def test_given_a_link_never_routed_when_planned_then_hf_inference_with_the_model_id(self) -> None:
        sent = huggingface.build_request(huggingface.plan(asked(), DEV, SETTINGS), SETTINGS)

        assert str(sent.url) == f"{ROUTER}/hf-inference/models/{DEV}"


class TestAnswers:
    def test_given_fal_images_when_parsed_then_the_url_and_a_flagged_image_is_a_refusal(self) -> None:
        plan, _ = built("fal-ai", "fal-ai/flux/dev")
        ok = answer(200, {"images": [{"url": "https://v3.fal.media/files/a.jpg"}], "has_nsfw_concepts": [False]})
        flagged = answer(200, {"images": [{"url": "https://v3.fal.media/files/b.jpg"}], "has_nsfw_concepts": [True]})

        assert huggingface.parse_response(ok, plan) == ResultUrl("https://v3.fal.media/files/a.jpg")
        assert isinstance(huggingface.parse_response(flagged, plan), Refused)

    @pytest.mark.parametrize(
        ("prediction", "expected"),
        [
            (
                {"id": "p1", "status": "succeeded", "output": ["https://replicate.delivery/xezq/p1/out-0.png"]},
                ResultUrl("https://replicate.delivery/xezq/p1/out-0.png"),
            ),
            (
                {"id": "p1", "status": "processing", "output": "data:image/png;base64,QUJD"},
                ImageBytes(b"ABC", "image/png"),
            ),
            ({"id": "p1", "status": "starting", "output": None}, AsyncSubmitted("replicate:p1", 0.0)),
        ],
    )
    def test_given_a_replicate_prediction_when_parsed_then_output_or_queued(
        self, prediction: Any, expected: Any
    ) -> None:
        plan, _ = built("replicate", "black-forest-labs/flux-dev")

        assert huggingface.parse_response(answer(201, prediction), plan) == expected

    def test_given_a_failed_prediction_when_parsed_then_its_error_is_read_and_e005_is_a_refusal(self) -> None:
        plan, _ = built("replicate", "black-forest-labs/flux-dev")
        e005 = {"id": "p", "status": "failed", "output": None, "error": "flagged as sensitive (E005)"}
        oom = {"id": "p", "status": "failed", "output": None, "error": "CUDA out of memory"}

        refused, failed = (huggingface.parse_response(answer(201, body), plan) for body in (e005, oom))

        assert isinstance(refused, Refused) and "E005" in refused.message
        assert isinstance(failed, FallThrough) and (failed.error_class, failed.message) == (
            "faulted",
            "Replicate: CUDA out of memory",
        )

    def test_given_a_router_without_prediction_checks_when_checked_then_unfinished_not_a_retry(self) -> None:
        check = huggingface.build_check(RemoteRequest("replicate:p1"), SETTINGS)
        gone = httpx.Response(404, json={"error": "Not Found"}, request=check)

        result = huggingface.parse_check(gone)

        assert str(check.url) == f"{ROUTER}/replicate/v1/predictions/p1"
        assert isinstance(result, FallThrough) and result.error_class == "unfinished"

    def test_given_a_wavespeed_task_when_submitted_and_checked_then_the_router_path_and_its_states(self) -> None:
        plan, _ = built("wavespeed", "wavespeed-ai/flux-dev")
        created = {
            "data": {
                "id": "t1",
                "status": "created",
                "urls": {"get": "https://api.wavespeed.ai/api/v3/predictions/t1/result"},
            }
        }
        submitted = huggingface.parse_response(answer(200, created), plan)
        assert submitted == AsyncSubmitted("wavespeed:/api/v3/predictions/t1/result", 0.0)
        check = huggingface.build_check(RemoteRequest(submitted.remote_id), SETTINGS)

        states = [
            huggingface.parse_check(httpx.Response(200, json={"data": data}, request=check))
            for data in (
                {"status": "processing"},
                {"status": "completed", "outputs": ["https://cdn.wavespeed.ai/o.png"]},
                {"status": "failed", "error": "content flagged"},
            )
        ]

        assert str(check.url) == f"{ROUTER}/wavespeed/api/v3/predictions/t1/result"
        assert check.headers["authorization"] == f"Bearer {TOKEN}"
        assert states[0] == AsyncStatus(done=False, wait_time=0.0)
        assert states[1] == ResultUrl("https://cdn.wavespeed.ai/o.png")
        assert isinstance(states[2], FallThrough) and states[2].message == "content flagged"

    def test_given_a_result_path_pointing_elsewhere_when_submitted_then_bad_response_not_a_check(self) -> None:
        plan, _ = built("wavespeed", "wavespeed-ai/flux-dev")
        sneaky = {"data": {"status": "created", "urls": {"get": "https://x/api/v3/../../fal-ai/fal-ai/flux/dev"}}}

        result = huggingface.parse_response(answer(200, sneaky), plan)

        assert isinstance(result, FallThrough) and result.error_class == "bad_response"
        with pytest.raises(ValueError):
            huggingface.build_check(RemoteRequest("wavespeed:/../../fal-ai/x"), SETTINGS)

    def test_given_base64_from_together_when_parsed_then_image_base64(self) -> None:
        plan, _ = built("together", SCHNELL, model=SCHNELL)
        data = base64.b64encode(b"png").decode()

        assert huggingface.parse_response(answer(200, {"data": [{"b64_json": data}]}), plan) == ImageBase64(data)


class TestRouterErrors:
    @pytest.mark.parametrize(
        ("status", "body", "expected"),
        [
            (402, {"error": "Pay-as-you go is not enabled for provider fal-ai yet."}, ("payment_required", "route")),
            (402, {"error": "You have exceeded your monthly included credits"}, ("payment_required", "provider")),
            (
                403,
                {
                    "error": "This authentication method does not have sufficient permissions to call Inference "
                    "Providers on behalf of user a"
                },
                ("forbidden", "provider"),
            ),
            (404, {"error": "Model fal-ai/x is not supported by provider fal-ai."}, ("model_unavailable", "model")),
        ],
    )
    def test_given_a_router_refusal_when_classified_then_class_and_how_far_it_reaches(
        self, status: int, body: Any, expected: tuple[str, str]
    ) -> None:
        plan, _ = built("fal-ai", "fal-ai/flux/dev")

        error = huggingface.parse_response(answer(status, body), plan)

        assert isinstance(error, FallThrough) and (error.error_class, error.scope) == expected
        assert (error.hint is not None) == (status == 403)


def entry(route: str, provider_model: str, status: str = "live", task: str = "text-to-image") -> CatalogEntry:
    return CatalogEntry(route, provider_model, status, task)


class TestMapping:
    def test_given_both_answer_shapes_when_parsed_then_entries_in_order(self) -> None:
        as_dict = {
            "fal-ai": {"status": "live", "providerId": "fal-ai/flux/dev", "task": "text-to-image"},
            "replicate": {"status": "staging", "providerId": "b/f", "task": "text-to-image"},
        }
        as_list = [{"provider": "fal-ai", "status": "live", "providerId": "fal-ai/flux/dev", "task": "text-to-image"}]

        assert mapping.parse(as_dict) == (entry("fal-ai", "fal-ai/flux/dev"), entry("replicate", "b/f", "staging"))
        assert mapping.parse(as_list) == (entry("fal-ai", "fal-ai/flux/dev"),)

    def test_given_the_configured_order_when_routes_are_chosen_then_only_live_text_to_image_in_that_order(self) -> None:
        entries = (
            entry("wavespeed", "w/dev"),
            entry("fal-ai", "fal-ai/flux/dev"),
            entry("replicate", "b/dev", status="staging"),
            entry("together", "t/dev", task="conversational"),
            entry("novita", "n/dev"),
        )

        configured = mapping.routes(DEV, entries, SETTINGS)
        auto = mapping.routes(DEV, entries, SETTINGS.model_copy(update={"inference_providers": ("auto",)}))

        assert configured.routes == (Route("fal-ai", "fal-ai/flux/dev"), Route("wavespeed", "w/dev"))
        assert auto.routes == (Route("wavespeed", "w/dev"), Route("fal-ai", "fal-ai/flux/dev"))

    def test_given_no_usable_entry_when_routes_are_chosen_then_none_and_the_reason_lists_what_is_there(self) -> None:
        chosen = mapping.routes(DEV, (entry("replicate", "b/dev", status="error"),), SETTINGS)

        assert chosen.routes == ()
        assert "replicate (error, text-to-image)" in chosen.reason

    def test_given_an_unreadable_mapping_when_routes_are_chosen_then_hf_inference_only_and_said(self) -> None:
        fallback = mapping.routes(DEV, None, SETTINGS)
        without = mapping.routes(DEV, None, SETTINGS.model_copy(update={"inference_providers": ("fal-ai",)}))

        assert fallback.routes == (Route("hf-inference", DEV),)
        assert fallback.note is not None and "hf-inference is the only route" in fallback.note
        assert (without.routes, "hf-inference is not allowed" in without.reason) == ((), True)

    def test_given_a_hub_that_reads_only_expand_when_fetched_then_the_second_spelling_finds_the_mapping(self) -> None:
        seen: list[httpx.Request] = []
        full = {
            "id": DEV,
            "inferenceProviderMapping": {"fal-ai": {"status": "live", "providerId": "f", "task": "text-to-image"}},
        }

        def hub(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            payload = full if "expand=" in str(request.url) else {"id": DEV, "pipeline_tag": "text-to-image"}
            return httpx.Response(200, json=payload, request=request)

        entries = mapping.fetch(DEV, SETTINGS, SecretStr(TOKEN), hub)

        assert entries == (entry("fal-ai", "f"),)
        assert [request.url.query.decode() for request in seen] == [
            "expand%5B%5D=inferenceProviderMapping",
            "expand=inferenceProviderMapping",
        ]
        assert all(str(request.url).startswith("https://huggingface.co/api/models/") for request in seen)

    @pytest.mark.parametrize(
        ("status", "code", "expected"), [(404, "RepoNotFound", ()), (404, None, None), (500, None, None)]
    )
    def test_given_an_unknown_model_or_a_broken_hub_when_fetched_then_no_entries_or_unknown(
        self, status: int, code: str | None, expected: Any
    ) -> None:
        def hub(request: httpx.Request) -> httpx.Response:
            headers = {"x-error-code": code} if code else {}
            return httpx.Response(status, json={"error": "x"}, headers=headers, request=request)

        assert mapping.fetch(DEV, SETTINGS, None, hub) == expected

    def test_given_a_refused_deployment_token_when_fetched_then_asked_again_anonymously(self) -> None:
        auth: list[str | None] = []

        def hub(request: httpx.Request) -> httpx.Response:
            auth.append(request.headers.get("authorization"))
            if "authorization" in request.headers:
                return httpx.Response(401, json={"error": "Invalid credentials"}, request=request)
            return httpx.Response(200, json={"inferenceProviderMapping": {}}, request=request)

        assert mapping.fetch(DEV, SETTINGS, SecretStr(TOKEN), hub) == ()
        assert auth == [f"Bearer {TOKEN}", None]
