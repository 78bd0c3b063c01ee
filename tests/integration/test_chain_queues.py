"""fal.ai and Replicate through the chain's async loop, over real HTTP against their doubles on loopback."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from imagegen.chain import Chain
from imagegen.generation import ChainFailed, ChainOutcome, ChainPending, ChainSucceeded, RunContext
from imagegen.media.fetch import SafeFetcher
from imagegen.models import ImageRequest
from imagegen.providers.settings import ProvidersSettings

from tests.doubles.fal import LOCKED_EXHAUSTED, FalDouble, FluxSchema
from tests.doubles.images import picture
from tests.doubles.key_stores import chain_keys
from tests.doubles.keys import FAL_KEY, REPLICATE_TOKEN
from tests.doubles.replicate import E005, ReplicateDouble
from tests.doubles.server import Reply
from tests.doubles.storage import StorageDouble

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration

FAL_DEV, FAL_SCHNELL = "fal-ai/flux/dev", "fal-ai/flux/schnell"
REP_DEV, REP_SCHNELL = "black-forest-labs/flux-dev", "black-forest-labs/flux-schnell"


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"the chain slept {seconds} s")


@pytest.fixture
def environ(doubles_environ: dict[str, str], queue_doubles_environ: dict[str, str]) -> dict[str, str]:
    return {**doubles_environ, **queue_doubles_environ}


def chain_for(environ: dict[str, str], http: httpx.Client, fetcher: SafeFetcher, **kwargs: Any) -> Chain:
    settings = ProvidersSettings.from_environ(environ)
    return Chain(settings, http, fetcher, keys=chain_keys(settings), **kwargs)


def ctx() -> RunContext:
    return RunContext(job_id="job-q", user_id="user-q", deadline=time.monotonic() + 10)


def ask(**kwargs: Any) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a red fox in snow", "width": 512, "height": 512, **kwargs})


def outline(outcome: ChainOutcome) -> list[tuple[str, str | None, str, str | None]]:
    return [(a.provider, a.model, a.outcome, a.error_class) for a in outcome.attempts]


def run_to_end(chain: Chain, request: ImageRequest) -> tuple[ChainOutcome, list[int]]:
    """Start, then resume as each delayed check message would, never waiting: the outcome and each check's delay."""
    outcome = chain.start(request, ctx())
    delays = []
    while isinstance(outcome, ChainPending):
        json.dumps(outcome.state)  # the worker stores it on the job
        delays.append(outcome.delay_seconds)
        outcome = chain.resume(request, outcome.state, ctx())
    return outcome, delays


class TestFal:
    def test_given_a_queued_request_when_checked_then_it_succeeds_through_delayed_checks_without_sleeping(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        fal_double: FalDouble,
        storage: StorageDouble,
    ) -> None:
        # Given fal's queue answering IN_QUEUE, then IN_PROGRESS, then COMPLETED
        fal_double.in_queue_polls, fal_double.in_progress_polls = 2, 1
        chain = chain_for(environ, provider_http, safe_fetcher, sleep=never_sleep)
        request = ask(providers=["fal"], width=1000, height=700, steps=30, guidance=4.0, seed=5, negative_prompt="x")

        # When the run goes from check to check
        outcome, delays = run_to_end(chain, request)

        # Then it succeeded at the fourth check, each a little later than the one before
        assert isinstance(outcome, ChainSucceeded)
        assert delays == [2, 3, 5, 7]
        assert (outcome.image.provider, outcome.image.model) == ("fal", FAL_DEV)
        assert (outcome.image.width, outcome.image.height, outcome.image.content_type) == (1008, 704, "image/png")
        assert outline(outcome) == [("fal", FAL_DEV, "succeeded", None)]
        assert outcome.attempts[0].message == "done after 4 check(s)"
        assert outcome.attempts[0].dropped_params == ["negative_prompt"]
        assert "fal: size 1000x700 -> 1008x704" in outcome.warnings
        (submit,) = fal_double.server.calls("POST")
        assert submit.path == "/fal-ai/flux/dev"
        assert submit.json() == {
            "prompt": "a red fox in snow",
            "image_size": {"width": 1008, "height": 704},
            "num_inference_steps": 30,
            "guidance_scale": 4.0,
            "seed": 5,
            "num_images": 1,
            "enable_safety_checker": True,
            "output_format": "png",
        }
        (remote,) = fal_double.requests.values()
        assert (remote.status_calls, remote.result_calls) == (4, 1)
        # The follow-ups went to the URLs fal returned (no model sub-path), every one with the key.
        paths = [(r.method, r.path) for r in fal_double.server.requests]
        base = f"/fal-ai/flux/requests/{remote.id}"
        assert paths == [("POST", "/fal-ai/flux/dev"), *[("GET", f"{base}/status")] * 4, ("GET", base)]
        assert {r.headers["authorization"] for r in fal_double.server.requests} == {f"Key {FAL_KEY}"}
        # The CDN link was fetched without any key.
        assert [(r.kind, r.headers.get("authorization")) for r in storage.requests] == [("fal", None)]

    def test_given_an_nsfw_flag_on_the_result_when_collected_then_the_job_is_content_refused(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, fal_double: FalDouble
    ) -> None:
        fal_double.nsfw = True
        chain = chain_for(environ, provider_http, safe_fetcher)

        outcome, _ = run_to_end(chain, ask(providers=["fal", "placeholder"]))

        assert isinstance(outcome, ChainFailed)
        assert outcome.error.code == "content_refused"
        assert outline(outcome) == [("fal", FAL_DEV, "failed", "content_policy")]

    def test_given_a_pending_request_when_canceled_then_fal_gets_put_cancel_with_the_key(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, fal_double: FalDouble
    ) -> None:
        chain = chain_for(environ, provider_http, safe_fetcher)
        pending = chain.start(ask(providers=["fal"]), ctx())
        assert isinstance(pending, ChainPending)

        chain.cancel(pending.state)

        (remote,) = fal_double.requests.values()
        assert fal_double.cancels == [remote.id]
        (cancel,) = fal_double.server.calls("PUT")
        assert (cancel.path, cancel.headers["authorization"]) == (
            f"/fal-ai/flux/requests/{remote.id}/cancel",
            f"Key {FAL_KEY}",
        )

    def test_given_a_locked_account_when_submitting_then_no_other_fal_app_is_tried(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, fal_double: FalDouble
    ) -> None:
        fal_double.locked = LOCKED_EXHAUSTED
        chain = chain_for(environ, provider_http, safe_fetcher)

        outcome = chain.start(ask(providers=["fal", "placeholder"]), ctx())

        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("fal", FAL_DEV, "failed", "payment_required"),
            ("fal", FAL_SCHNELL, "skipped", "payment_required"),
            ("placeholder", "placeholder", "succeeded", None),
        ]
        assert len(fal_double.server.calls("POST")) == 1

    def test_given_a_result_fal_refuses_when_collected_then_the_next_link_serves(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, fal_double: FalDouble
    ) -> None:
        # Given an app whose schema takes fewer steps than asked (the queue checks inputs when the app runs: a 422)
        fal_double.apps.apps[FAL_DEV] = FluxSchema(steps=(1, 10), default_steps=4)
        chain = chain_for({**environ, "FAL_MODELS": FAL_DEV}, provider_http, safe_fetcher)

        outcome, _ = run_to_end(chain, ask(providers=["fal", "placeholder"], steps=40))

        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("fal", FAL_DEV, "failed", "bad_request"),
            ("placeholder", "placeholder", "succeeded", None),
        ]


class TestReplicate:
    def test_given_a_prediction_done_within_the_wait_when_created_then_used_at_once(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        replicate_double: ReplicateDouble,
        storage: StorageDouble,
    ) -> None:
        # Given a model that runs within REPLICATE_PREFER_WAIT_S (1 s here)
        replicate_double.run_seconds = 0.5
        chain = chain_for(environ, provider_http, safe_fetcher, sleep=never_sleep)

        outcome = chain.start(ask(providers=["replicate"], width=768, height=512, guidance=3.0, seed=4), ctx())

        # Then no check was needed: the create's answer held the output
        assert isinstance(outcome, ChainSucceeded)
        assert (outcome.image.width, outcome.image.height) == (1248, 832)
        (create,) = replicate_double.server.calls("POST")
        assert (create.path, create.headers["prefer"], create.headers["authorization"]) == (
            f"/v1/models/{REP_DEV}/predictions",
            "wait=1",
            f"Bearer {REPLICATE_TOKEN}",
        )
        assert create.json() == {
            "input": {
                "prompt": "a red fox in snow",
                "aspect_ratio": "3:2",
                "megapixels": "1",
                "guidance": 3.0,
                "seed": 4,
                "num_outputs": 1,
                "output_format": "png",
            }
        }
        assert outcome.attempts[0].message == "replicate: size 768x512 -> aspect_ratio 3:2, megapixels 1 (1248x832)"
        assert [(r.kind, r.headers.get("authorization")) for r in storage.requests] == [("replicate", None)]

    def test_given_a_slow_prediction_when_checked_then_it_succeeds_without_a_collect_call(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        replicate_double: ReplicateDouble,
    ) -> None:
        replicate_double.run_seconds, replicate_double.polls_until_done = 60, 3
        chain = chain_for(environ, provider_http, safe_fetcher, sleep=never_sleep)

        outcome, delays = run_to_end(chain, ask(providers=["replicate"], steps=8, model=REP_SCHNELL))

        assert isinstance(outcome, ChainSucceeded)
        assert delays == [2, 3, 5]
        assert (outcome.image.model, outcome.attempts[0].message) == (REP_SCHNELL, "done after 3 check(s)")
        (prediction,) = replicate_double.predictions.values()
        assert prediction.input["num_inference_steps"] == 4
        assert [(r.method, r.path) for r in replicate_double.server.requests] == [
            ("POST", f"/v1/models/{REP_SCHNELL}/predictions"),
            *[("GET", f"/v1/predictions/{prediction.id}")] * 3,
        ]

    def test_given_data_uri_outputs_when_created_then_decoded_without_any_download(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        replicate_double: ReplicateDouble,
        storage: StorageDouble,
    ) -> None:
        replicate_double.run_seconds, replicate_double.output_kind = 0.5, "data_uri"
        chain = chain_for(environ, provider_http, safe_fetcher)

        outcome = chain.start(ask(providers=["replicate"]), ctx())

        assert isinstance(outcome, ChainSucceeded)
        assert (outcome.image.width, outcome.image.content_type) == (512, "image/png")
        assert storage.requests == []

    @pytest.mark.parametrize("at", ["create", "check"])
    def test_given_a_moderation_failure_when_it_comes_then_content_refused(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        replicate_double: ReplicateDouble,
        at: str,
    ) -> None:
        replicate_double.fail_with = E005
        replicate_double.run_seconds = 0.5 if at == "create" else 60
        replicate_double.polls_until_done = 1
        chain = chain_for(environ, provider_http, safe_fetcher)

        outcome, delays = run_to_end(chain, ask(providers=["replicate", "placeholder"]))

        assert isinstance(outcome, ChainFailed) and outcome.error.code == "content_refused"
        assert len(delays) == (0 if at == "create" else 1)
        assert outline(outcome) == [("replicate", REP_DEV, "failed", "content_policy")]

    def test_given_a_failed_prediction_when_checked_then_its_error_is_reported_and_the_next_model_runs(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        replicate_double: ReplicateDouble,
    ) -> None:
        replicate_double.run_seconds, replicate_double.polls_until_done = 60, 1
        replicate_double.fail_with = "CUDA out of memory"
        chain = chain_for(environ, provider_http, safe_fetcher)
        request = ask(providers=["replicate", "placeholder"])
        pending = chain.start(request, ctx())
        assert isinstance(pending, ChainPending)

        # When the check finds it failed (and the next model, schnell, is created and fails at its own check)
        outcome, _ = run_to_end_from(chain, request, pending)

        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("replicate", REP_DEV, "failed", "faulted"),
            ("replicate", REP_SCHNELL, "failed", "faulted"),
            ("placeholder", "placeholder", "succeeded", None),
        ]
        assert outcome.attempts[0].message == "Replicate: CUDA out of memory"

    def test_given_a_pending_prediction_when_canceled_then_replicate_gets_its_cancel_url(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        replicate_double: ReplicateDouble,
    ) -> None:
        replicate_double.run_seconds = 60
        chain = chain_for(environ, provider_http, safe_fetcher)
        pending = chain.start(ask(providers=["replicate"]), ctx())
        assert isinstance(pending, ChainPending)

        chain.cancel(pending.state)

        (prediction,) = replicate_double.predictions.values()
        assert (replicate_double.cancels, prediction.status) == ([prediction.id], "canceled")
        (cancel,) = replicate_double.server.calls("POST", "/cancel")
        assert cancel.headers["authorization"] == f"Bearer {REPLICATE_TOKEN}"

    def test_given_a_throttled_create_with_retry_after_when_run_then_the_same_link_after_it(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        replicate_double: ReplicateDouble,
    ) -> None:
        replicate_double.run_seconds = 0.5
        replicate_double.throttle(retry_after=2)
        slept: list[float] = []
        chain = chain_for(environ, provider_http, safe_fetcher, sleep=slept.append)

        outcome = chain.start(ask(providers=["replicate"]), ctx())

        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("replicate", REP_DEV, "retried", "rate_limited"),
            ("replicate", REP_DEV, "succeeded", None),
        ]
        assert len(slept) == 1 and 2.0 <= slept[0] <= 2.4

    def test_given_a_throttled_check_when_resumed_then_checked_again_after_retry_after(
        self,
        environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        replicate_double: ReplicateDouble,
    ) -> None:
        replicate_double.run_seconds = 60
        chain = chain_for(environ, provider_http, safe_fetcher)
        request = ask(providers=["replicate"])
        pending = chain.start(request, ctx())
        assert isinstance(pending, ChainPending)
        replicate_double.server.enqueue(Reply.json(429, {"detail": "throttled"}, {"retry-after": "30"}), method="GET")

        again = chain.resume(request, pending.state, ctx())

        assert isinstance(again, ChainPending) and again.delay_seconds == 30


def run_to_end_from(chain: Chain, request: ImageRequest, outcome: ChainOutcome) -> tuple[ChainOutcome, list[int]]:
    delays = []
    while isinstance(outcome, ChainPending):
        delays.append(outcome.delay_seconds)
        outcome = chain.resume(request, outcome.state, ctx())
    return outcome, delays


def test_given_a_fal_data_uri_output_when_collected_then_decoded() -> None:
    # Given a fal output in sync_mode's form; When parsed; Then the bytes, with no download to make.
    from imagegen.providers.base import ImageBytes
    from imagegen.providers.fal import parse_fal_output

    data = picture(64, 64, "inline")
    body = {
        "images": [{"url": "data:image/png;base64," + base64.b64encode(data).decode()}],
        "has_nsfw_concepts": [False],
    }

    assert parse_fal_output(body) == ImageBytes(data, "image/png")
