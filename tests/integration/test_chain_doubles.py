"""The chain over real HTTP against the provider doubles on loopback, with the breaker on moto's server."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
from imagegen.adapters.breaker_store import DynamoBreakerStore
from imagegen.breaker import CLOSED, BreakerPolicy, Breakers
from imagegen.chain import Chain
from imagegen.generation import ChainFailed, ChainOutcome, ChainPending, ChainSucceeded, RunContext
from imagegen.keys.types import key_scope
from imagegen.media.fetch import SafeFetcher
from imagegen.media.imaging import dhash_bytes
from imagegen.models import ImageRequest
from imagegen.providers.settings import ProvidersSettings
from pydantic import SecretStr

from tests.doubles.horde import HordeDouble
from tests.doubles.huggingface import CREDITS, HuggingFaceDouble, loading
from tests.doubles.images import blank, branded_placeholder
from tests.doubles.key_stores import chain_keys
from tests.doubles.keys import ALL_KEYS, HF_TOKEN, HORDE_KEY, POLLINATIONS_KEY, SF_KEY
from tests.doubles.pollinations import PollinationsDouble, placeholder_reply, queue_full
from tests.doubles.server import Reply
from tests.doubles.siliconflow import OVERLOADED, RATE_LIMITED, SiliconFlowDouble
from tests.doubles.storage import Kind, StorageDouble

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration

DEV, SCHNELL = "black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell"


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"the chain slept {seconds} s")


class WallClock:
    """Real time plus an offset the test can move forward (breaker cool-downs without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def chain_for(environ: dict[str, str], http: httpx.Client, fetcher: SafeFetcher, **kwargs: Any) -> Chain:
    """The chain with the worker's key path: deployment keys from the same settings, resolved per invocation."""
    settings = ProvidersSettings.from_environ(environ)
    return Chain(settings, http, fetcher, keys=chain_keys(settings), **kwargs)


def run_ctx(seconds: float = 10.0) -> RunContext:
    return RunContext(job_id="job-int", user_id="user-int", deadline=time.monotonic() + seconds)


def request(**kwargs: Any) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a red fox in snow", "width": 512, "height": 512, **kwargs})


def outline(outcome: ChainOutcome) -> list[tuple[str, str | None, str, str | None]]:
    return [(a.provider, a.model, a.outcome, a.error_class) for a in outcome.attempts]


class TestFallbacks:
    def test_given_gated_dev_when_run_then_schnell_serves_with_schnell_parameters(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        hf_double: HuggingFaceDouble,
    ) -> None:
        hf_double.gated = {DEV}
        chain = chain_for(doubles_environ, provider_http, safe_fetcher, sleep=never_sleep)
        outcome = chain.start(request(providers=["huggingface"], steps=28, guidance=3.5, seed=11), run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert (outcome.image.provider, outcome.image.model, outcome.image.width) == ("huggingface", SCHNELL, 512)
        assert outline(outcome) == [
            ("huggingface", DEV, "failed", "forbidden"),
            ("huggingface", SCHNELL, "succeeded", None),
        ]
        assert outcome.attempts[1].dropped_params == ["steps", "guidance"]
        sent = hf_double.server.calls("POST", SCHNELL)[0]
        assert sent.json() == {
            "inputs": "a red fox in snow",
            "parameters": {"seed": 11, "num_inference_steps": 4, "guidance_scale": 0, "width": 512, "height": 512},
        }
        assert sent.headers["accept"] == "image/png"

    def test_given_lora_in_extra_when_run_on_huggingface_then_it_is_dropped_and_recorded(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        hf_double: HuggingFaceDouble,
    ) -> None:
        chain = chain_for(doubles_environ, provider_http, safe_fetcher)
        outcome = chain.start(request(providers=["huggingface"], extra={"lora": "pixel", "lora_scale": 0.7}), run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert outcome.attempts[0].dropped_params == ["extra.lora", "extra.lora_scale"]
        assert "huggingface does not take: extra.lora, extra.lora_scale" in outcome.warnings
        assert set(hf_double.server.calls("POST")[0].json()["parameters"]) == {"width", "height"}

    def test_given_siliconflow_500_when_run_then_huggingface_serves(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(500, {"code": 50000, "message": "Unknown error", "data": None}))
        chain = chain_for({**doubles_environ, "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors"}, provider_http, safe_fetcher)
        outcome = chain.start(request(), run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("siliconflow", "Kwai-Kolors/Kolors", "failed", "server_error"),
            ("huggingface", DEV, "succeeded", None),
        ]
        assert outcome.attempts[0].status_code == 500

    def test_given_429_with_retry_after_when_run_then_the_same_link_is_retried_and_serves(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(429, RATE_LIMITED, {"retry-after": "1"}))
        slept: list[float] = []
        chain = chain_for(doubles_environ, provider_http, safe_fetcher, sleep=slept.append)
        outcome = chain.start(request(providers=["siliconflow"]), run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("siliconflow", "Kwai-Kolors/Kolors", "retried", "rate_limited"),
            ("siliconflow", "Kwai-Kolors/Kolors", "succeeded", None),
        ]
        assert len(slept) == 1 and 1.0 <= slept[0] <= 1.2
        assert len(siliconflow_double.server.calls("POST")) == 2

    def test_given_a_hanging_provider_when_run_then_the_next_provider_serves_within_the_deadline(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(200, {}, delay=30))
        environ = {**doubles_environ, "SILICONFLOW_TIMEOUT_S": "0.5", "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors"}
        chain = chain_for(environ, provider_http, safe_fetcher)
        outcome = chain.start(request(), run_ctx(seconds=5))
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("siliconflow", "Kwai-Kolors/Kolors", "failed", "timeout"),
            ("huggingface", DEV, "succeeded", None),
        ]

    def test_given_a_blank_image_when_run_then_the_next_link_serves(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
    ) -> None:
        siliconflow_double.image_override = blank(1024, 1024, (255, 255, 255))
        environ = {**doubles_environ, "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors"}
        outcome = chain_for(environ, provider_http, safe_fetcher).start(request(), run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("siliconflow", "Kwai-Kolors/Kolors", "failed", "invalid_image"),
            ("huggingface", DEV, "succeeded", None),
        ]
        assert outcome.attempts[0].message == "blank or uniform image (grey stddev 0.0)"

    def test_given_hf_503_loading_within_budget_when_run_then_it_waits_and_retries(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        hf_double: HuggingFaceDouble,
    ) -> None:
        hf_double.server.enqueue(loading(DEV, 0.2), path_prefix="/hf-inference/")
        outcome = chain_for(doubles_environ, provider_http, safe_fetcher).start(
            request(providers=["huggingface"]), run_ctx()
        )
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("huggingface", DEV, "retried", "model_loading"),
            ("huggingface", DEV, "succeeded", None),
        ]

    def test_given_hf_503_loading_beyond_budget_and_402_credits_when_run_then_it_falls_through(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        hf_double: HuggingFaceDouble,
    ) -> None:
        hf_double.server.enqueue(loading(DEV, 2315.18), Reply.json(402, CREDITS), path_prefix="/hf-inference/")
        outcome = chain_for(doubles_environ, provider_http, safe_fetcher, sleep=never_sleep).start(
            request(providers=["huggingface", "placeholder"]), run_ctx()
        )
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("huggingface", DEV, "failed", "model_loading"),
            ("huggingface", SCHNELL, "failed", "payment_required"),
            ("placeholder", "placeholder", "succeeded", None),
        ]

    def test_given_an_expired_signed_url_when_run_then_it_falls_through_as_expired(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
    ) -> None:
        siliconflow_double.url_ttl = -1
        environ = {**doubles_environ, "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors"}
        outcome = chain_for(environ, provider_http, safe_fetcher).start(
            request(providers=["siliconflow", "placeholder"]), run_ctx()
        )
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("siliconflow", "Kwai-Kolors/Kolors", "failed", "expired"),
            ("placeholder", "placeholder", "succeeded", None),
        ]

    @pytest.mark.parametrize(("style", "shape"), [("azure", "data"), ("s3", "images"), ("oss", "images")])
    def test_given_any_signed_url_style_when_run_then_it_is_fetched_without_authorization(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
        storage: StorageDouble,
        style: Kind,
        shape: str,
    ) -> None:
        siliconflow_double.url_style, siliconflow_double.result_shape = style, shape
        outcome = chain_for(doubles_environ, provider_http, safe_fetcher).start(
            request(providers=["siliconflow"]), run_ctx()
        )
        assert isinstance(outcome, ChainSucceeded)
        assert outcome.image.content_type == "image/png"
        # One GET of a link of that style, which the storage accepted: signature intact, no Authorization header.
        assert [(r.kind, r.status, r.headers.get("authorization")) for r in storage.requests] == [(style, 200, None)]
        assert siliconflow_double.server.requests[0].headers["authorization"] == f"Bearer {SF_KEY}"

    def test_given_every_provider_failing_when_run_then_one_aggregated_error_lists_each_attempt(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
        hf_double: HuggingFaceDouble,
        horde_double: HordeDouble,
        pollinations_double: PollinationsDouble,
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(503, OVERLOADED))
        hf_double.served = set()
        horde_double.server.enqueue(Reply.json(403, {"message": "Due to heavy demand...", "rc": "KudosUpfront"}))
        pollinations_double.server.enqueue(queue_full())
        environ = {**doubles_environ, "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors"}
        outcome = chain_for(environ, provider_http, safe_fetcher).start(request(), run_ctx())
        assert isinstance(outcome, ChainFailed)
        assert outcome.error.code == "all_providers_failed"
        assert outcome.error.message == (
            "All 4 providers failed: "
            "siliconflow/Kwai-Kolors/Kolors: failed 503 overloaded "
            "(Model service overloaded. Please try again later.); "
            f"huggingface/{DEV}: failed 404 model_unavailable (Model {DEV} is not served by hf-inference); "
            f"huggingface/{SCHNELL}: failed 404 model_unavailable (Model {SCHNELL} is not served by hf-inference); "
            "horde: failed 403 payment_required (KudosUpfront: Due to heavy demand...); "
            "pollinations/flux: failed 402 rate_limited (Queue full for IP: 127.0.0.1 - 1 requests already queued "
            "(max: 1). Get unlimited access at https://enter.pollinations.ai)"
        )


class TestHorde:
    def test_given_an_odd_size_when_run_then_sizes_are_multiples_of_64_and_the_async_loop_never_sleeps(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        horde_double: HordeDouble,
        storage: StorageDouble,
    ) -> None:
        chain = chain_for(doubles_environ, provider_http, safe_fetcher, sleep=never_sleep)
        ask = request(providers=["horde"], width=1000, height=700, negative_prompt="fog", seed=5)
        outcome = chain.start(ask, run_ctx())
        checks = 0
        while isinstance(outcome, ChainPending):
            assert outcome.delay_seconds == (2 if checks == 0 else 30)
            json.dumps(outcome.state)  # the worker stores it on the job
            outcome = chain.resume(ask, outcome.state, run_ctx())
            checks += 1
        assert isinstance(outcome, ChainSucceeded)
        assert (outcome.image.width, outcome.image.height, outcome.image.content_type) == (1024, 704, "image/webp")
        assert checks == 2
        submit = horde_double.server.calls("POST", "/generate/async")[0]
        assert submit.json()["params"] == {"width": 1024, "height": 704, "n": 1, "seed": "5"}
        assert submit.json()["prompt"] == "a red fox in snow ### fog"
        assert submit.headers["apikey"] == HORDE_KEY
        assert submit.headers["client-agent"] == "imagegen:0.1.0:tests@example.invalid"
        assert len(horde_double.server.calls("GET", "/generate/check/")) == 2
        assert len(horde_double.server.calls("GET", "/generate/status/")) == 1
        assert "horde: size 1000x700 -> 1024x704" in outcome.warnings
        assert [(r.kind, r.status, r.headers.get("authorization")) for r in storage.requests] == [("s3", 200, None)]

    @pytest.mark.parametrize("via_metadata", [False, True])
    def test_given_a_censored_generation_when_collected_then_it_is_not_a_success(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        horde_double: HordeDouble,
        via_metadata: bool,
    ) -> None:
        horde_double.checks_until_done = 1
        horde_double.censored, horde_double.censorship_metadata = not via_metadata, via_metadata
        chain = chain_for(doubles_environ, provider_http, safe_fetcher)
        ask = request(providers=["horde", "placeholder"])
        pending = chain.start(ask, run_ctx())
        assert isinstance(pending, ChainPending)
        outcome = chain.resume(ask, pending.state, run_ctx())
        assert isinstance(outcome, ChainFailed)
        assert outcome.error.code == "content_refused"
        assert outline(outcome) == [("horde", None, "failed", "content_policy")]

    def test_given_a_base64_webp_result_when_collected_then_it_decodes(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        horde_double: HordeDouble,
    ) -> None:
        horde_double.checks_until_done, horde_double.r2 = 1, False
        chain = chain_for(doubles_environ, provider_http, safe_fetcher)
        pending = chain.start(request(providers=["horde"]), run_ctx())
        assert isinstance(pending, ChainPending)
        outcome = chain.resume(request(providers=["horde"]), pending.state, run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert outcome.image.content_type == "image/webp"

    def test_given_an_expired_remote_request_when_resumed_then_the_next_link_serves(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        horde_double: HordeDouble,
    ) -> None:
        chain = chain_for(doubles_environ, provider_http, safe_fetcher)
        ask = request(providers=["horde", "pollinations"])
        pending = chain.start(ask, run_ctx())
        assert isinstance(pending, ChainPending)
        horde_double.server.enqueue(Reply.json(410, {"message": "request expired", "rc": "RequestExpired"}))
        outcome = chain.resume(ask, pending.state, run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [("horde", None, "failed", "expired"), ("pollinations", "flux", "succeeded", None)]

    def test_given_a_pending_job_when_canceled_then_the_horde_gets_delete(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        horde_double: HordeDouble,
    ) -> None:
        chain = chain_for(doubles_environ, provider_http, safe_fetcher)
        pending = chain.start(request(providers=["horde"]), run_ctx())
        assert isinstance(pending, ChainPending)
        chain.cancel(pending.state)
        (job,) = horde_double.jobs.values()
        assert job.canceled is True
        assert horde_double.server.calls("DELETE")[0].headers["apikey"] == HORDE_KEY


class TestPollinations:
    def test_given_402_queue_full_then_a_placeholder_200_when_run_then_both_fall_through(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        pollinations_double: PollinationsDouble,
    ) -> None:
        pollinations_double.server.enqueue(queue_full(), placeholder_reply())
        environ = {
            **doubles_environ,
            "POLLINATIONS_MODELS": "flux,turbo",
            "IMAGEGEN_PLACEHOLDER_HASHES": dhash_bytes(branded_placeholder()),
        }
        ask = request(providers=["pollinations", "placeholder"], width=1024, height=1024)
        outcome = chain_for(environ, provider_http, safe_fetcher).start(ask, run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("pollinations", "flux", "failed", "rate_limited"),
            ("pollinations", "turbo", "failed", "invalid_image"),
            ("placeholder", "placeholder", "succeeded", None),
        ]
        assert outcome.attempts[1].message == "a known placeholder image, not a generated one"
        legacy = pollinations_double.server.calls("GET")[0]
        assert legacy.path == "/prompt/a red fox in snow"
        assert legacy.query == {"width": "1024", "height": "1024", "model": "flux", "nologo": "true"}
        assert "authorization" not in legacy.headers

    def test_given_a_key_when_run_then_the_gen_path_gets_the_bearer_key(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        pollinations_double: PollinationsDouble,
    ) -> None:
        environ = {**doubles_environ, "POLLINATIONS_API_KEY": POLLINATIONS_KEY}
        outcome = chain_for(environ, provider_http, safe_fetcher).start(request(providers=["pollinations"]), run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        sent = pollinations_double.server.calls("GET")[0]
        assert (sent.path, sent.headers["authorization"]) == ("/image/a red fox in snow", f"Bearer {POLLINATIONS_KEY}")


SF_SCOPE = key_scope("deployment", key=SecretStr(SF_KEY)) or ""


class TestBreakerOnDynamo:
    def test_given_repeated_5xx_when_runs_continue_then_it_opens_skips_probes_and_closes(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
        dynamodb_client: Any,
        breaker_table: str,
    ) -> None:
        # Given the deployment key's breaker on DynamoDB, opening after 2 failures in a row
        store = DynamoBreakerStore(breaker_table, dynamodb_client)
        wall = WallClock()
        environ = {**doubles_environ, "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors", "IMAGEGEN_BREAKER_THRESHOLD": "2"}
        chain = chain_for(environ, provider_http, safe_fetcher, breaker=store, wall_clock=wall)
        ask = request(providers=["siliconflow", "placeholder"])
        siliconflow_double.server.enqueue(*[Reply.json(503, OVERLOADED)] * 2)
        # When two runs meet a 503 each
        for _ in range(2):
            assert isinstance(chain.start(ask, run_ctx()), ChainSucceeded)
        # Then its item (keyed by the key's fingerprint, never the key) says open, and the next run skips it
        item = dynamodb_client.get_item(
            TableName=breaker_table, Key={"pk": {"S": f"BREAKER#siliconflow#{SF_SCOPE}"}, "sk": {"S": "BREAKER"}}
        )["Item"]
        assert item["state"]["S"] == "open"
        skipped = chain.start(ask, run_ctx())
        assert outline(skipped)[0] == ("siliconflow", "Kwai-Kolors/Kolors", "skipped", "breaker_open")
        assert len(siliconflow_double.server.calls("POST")) == 2
        wall.offset = 61
        # Another container claims the one half-open probe first: this run must not probe too.
        other = Breakers(store, BreakerPolicy(cooldown_s=60))
        assert other.acquire("siliconflow", SF_SCOPE, wall()).probe is True
        assert outline(chain.start(ask, run_ctx()))[0] == (
            "siliconflow",
            "Kwai-Kolors/Kolors",
            "skipped",
            "breaker_open",
        )
        wall.offset = 61 + 121  # that probe never reported back; its lease is over
        probed = chain.start(ask, run_ctx())
        assert outline(probed)[0] == ("siliconflow", "Kwai-Kolors/Kolors", "succeeded", None)
        assert store.read("siliconflow", SF_SCOPE).state == "closed"

    def test_given_a_failed_probe_when_recorded_then_the_breaker_reopens(
        self, dynamodb_client: Any, breaker_table: str
    ) -> None:
        # Given a breaker that opened at t=100 with a 10 s cool-down (no read cache: each step sees the table)
        breakers = Breakers(
            DynamoBreakerStore(breaker_table, dynamodb_client), BreakerPolicy(threshold=1, cooldown_s=10, cache_s=0)
        )
        breakers.failed("horde", "keyless", 100.0, CLOSED)
        # When probes are asked for before and after the cool-down, and the probe fails
        assert breakers.acquire("horde", "keyless", 105.0).allowed is False
        probe = breakers.acquire("horde", "keyless", 111.0)
        assert (probe.allowed, probe.probe) == (True, True)
        assert breakers.acquire("horde", "keyless", 111.5).allowed is False
        breakers.failed("horde", "keyless", 112.0, probe)
        # Then it is open again for a whole cool-down from the failed probe
        assert breakers.status("horde", "keyless", 112.0).state == "open"
        assert breakers.acquire("horde", "keyless", 121.0).allowed is False
        assert breakers.acquire("horde", "keyless", 122.5).probe is True

    def test_given_400s_when_repeated_then_the_breaker_never_trips(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
        dynamodb_client: Any,
        breaker_table: str,
    ) -> None:
        store = DynamoBreakerStore(breaker_table, dynamodb_client)
        siliconflow_double.server.enqueue(*[Reply.json(400, {"code": 20012, "message": "bad", "data": None})] * 3)
        environ = {**doubles_environ, "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors", "IMAGEGEN_BREAKER_THRESHOLD": "1"}
        chain = chain_for(environ, provider_http, safe_fetcher, breaker=store)
        for _ in range(3):
            chain.start(request(providers=["siliconflow", "placeholder"]), run_ctx())
        assert store.read("siliconflow", SF_SCOPE).state == "closed"
        assert len(siliconflow_double.server.calls("POST")) == 3
        # A healthy breaker costs no write at all: there is no item.
        assert dynamodb_client.scan(TableName=breaker_table)["Items"] == []


class TestHedging:
    def test_given_a_slow_first_link_when_hedging_then_the_second_wins_and_the_first_is_recorded_canceled(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(500, {"message": "late"}, delay=1.2))
        environ = {
            **doubles_environ,
            "IMAGEGEN_HEDGE_DELAY_S": "0.2",
            "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors",
            # A fresh container has made no calls yet: a budget of one hedge per call lets this first one go.
            "IMAGEGEN_HEDGE_BUDGET": "1",
        }
        chain = chain_for(environ, provider_http, safe_fetcher)
        outcome = chain.start(request(hedge=True), run_ctx())
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("siliconflow", "Kwai-Kolors/Kolors", "canceled", "hedge_lost"),
            ("huggingface", DEV, "succeeded", None),
        ]

    def test_given_hedging_off_when_the_first_link_is_slow_then_the_chain_waits_for_it(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(500, {"message": "late"}, delay=0.4))
        environ = {**doubles_environ, "IMAGEGEN_HEDGE_DELAY_S": "0.1", "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors"}
        outcome = chain_for(environ, provider_http, safe_fetcher).start(request(hedge=False), run_ctx())
        assert outline(outcome) == [
            ("siliconflow", "Kwai-Kolors/Kolors", "failed", "server_error"),
            ("huggingface", DEV, "succeeded", None),
        ]


class TestSecrets:
    def test_given_failures_everywhere_when_run_then_no_key_reaches_logs_attempts_or_errors_or_a_foreign_host(
        self,
        doubles_environ: dict[str, str],
        provider_http: httpx.Client,
        safe_fetcher: SafeFetcher,
        siliconflow_double: SiliconFlowDouble,
        hf_double: HuggingFaceDouble,
        horde_double: HordeDouble,
        pollinations_double: PollinationsDouble,
        storage: StorageDouble,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        caplog.set_level(logging.DEBUG)
        # Providers that echo the key back in an error body must not get it into our output either.
        siliconflow_double.server.enqueue(Reply.json(500, {"message": f"upstream rejected {SF_KEY}"}))
        hf_double.server.enqueue(
            Reply.json(401, {"error": f"token {HF_TOKEN} invalid"}),
            Reply.json(500, {"error": "x"}),
            path_prefix="/hf-inference/",
        )
        horde_double.server.enqueue(Reply.json(401, {"message": f"bad key {HORDE_KEY}", "rc": "InvalidAPIKey"}))
        pollinations_double.server.enqueue(Reply.json(500, {"error": "down"}))
        environ = {
            **doubles_environ,
            "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors",
            "POLLINATIONS_API_KEY": POLLINATIONS_KEY,
        }
        chain = chain_for(environ, provider_http, safe_fetcher)
        outcome = chain.start(request(), run_ctx())
        assert isinstance(outcome, ChainFailed)
        captured = capsys.readouterr()
        haystack = "\n".join(
            [
                caplog.text,
                captured.out,
                captured.err,
                repr(outcome),
                repr(chain.settings),
                json.dumps(outcome.error.model_dump()),
                json.dumps([a.model_dump() for a in outcome.attempts]),
            ]
        )
        assert [key for key in ALL_KEYS if key in haystack] == []
        assert "upstream rejected ***" in outcome.error.message
        own = {
            siliconflow_double.server: ("authorization", f"Bearer {SF_KEY}"),
            hf_double.server: ("authorization", f"Bearer {HF_TOKEN}"),
            horde_double.server: ("apikey", HORDE_KEY),
            pollinations_double.server: ("authorization", f"Bearer {POLLINATIONS_KEY}"),
        }
        for server, (header, value) in own.items():
            for recorded in server.requests:
                values = " ".join(recorded.headers.values()) + recorded.body.decode("utf-8", "replace") + recorded.path
                assert [key for key in ALL_KEYS if key in values and key not in value] == []
                assert recorded.headers[header] == value
        # The storage double only takes GETs: a key could ride in a header or in the raw path and query.
        for stored in storage.requests:
            seen = " ".join(stored.headers.values()) + stored.raw_target
            assert [key for key in ALL_KEYS if key in seen] == []
            assert "authorization" not in stored.headers
