"""Hugging Face through the router's Inference Providers, over real HTTP against the router + Hub double.

Each router provider is its own link: the Hub's mapping (tests/doubles/hf_router.py `default_models()`: FLUX.1-dev on
fal-ai, replicate, wavespeed; FLUX.1-schnell also on nscale and together) decides the routes, HF_INFERENCE_PROVIDERS
their order. Results are left on the storage double and fetched by the safe fetcher, as in production.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from imagegen.breaker import InMemoryBreakerStore
from imagegen.catalogs import InMemoryRouteMapStore, RouteMaps, StoredCatalog
from imagegen.chain import Chain
from imagegen.generation import ChainFailed, ChainOutcome, ChainPending, ChainSucceeded, RunContext
from imagegen.keys.types import key_scope
from imagegen.media.fetch import SafeFetcher
from imagegen.models import ImageRequest
from imagegen.providers import REGISTRY
from imagegen.providers.base import CatalogEntry
from imagegen.providers.settings import ProvidersSettings

from tests.doubles.hf_router import DEV, GLM, SCHNELL, SD3, HfRouterDouble, Mapping
from tests.doubles.key_stores import chain_keys
from tests.doubles.keys import HF_TOKEN
from tests.doubles.replicate import E005
from tests.doubles.server import Reply
from tests.doubles.storage import StorageDouble

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration


@pytest.fixture
def hf_router(storage: StorageDouble) -> Iterator[HfRouterDouble]:
    with HfRouterDouble(storage, tokens={HF_TOKEN}) as double:
        yield double


@pytest.fixture
def environ(hf_router: HfRouterDouble) -> dict[str, str]:
    """Only HF_TOKEN and where the router and the Hub are."""
    return {
        "HF_TOKEN": HF_TOKEN,
        "HF_ROUTER_URL": hf_router.url,
        "HF_ENDPOINT": hf_router.url,
        "HF_TIMEOUT_S": "5",
        "IMAGEGEN_PROVIDERS": "huggingface",
    }


class Run:
    """A chain over the doubles with an in-memory catalog store the test can look into."""

    def __init__(self, environ: dict[str, str], http: httpx.Client, fetcher: SafeFetcher, **kwargs: Any) -> None:
        self.settings = ProvidersSettings.from_environ(environ)
        self.store = InMemoryRouteMapStore()
        self.catalog = RouteMaps(
            self.store,
            self.settings,
            http,
            registry=REGISTRY,
            token=lambda name: self.settings.for_provider(name).api_key,
        )
        keys = chain_keys(self.settings)
        self.chain = Chain(self.settings, http, fetcher, keys=keys, catalog=self.catalog, sleep=_no_sleep, **kwargs)

    def start(self, **request: Any) -> ChainOutcome:
        return self.chain.start(_request(**request), _ctx())

    def resume(self, outcome: ChainOutcome, **request: Any) -> ChainOutcome:
        assert isinstance(outcome, ChainPending), outcome
        return self.chain.resume(_request(**request), json.loads(json.dumps(outcome.state)), _ctx())


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"the chain slept {seconds} s")


def _request(**kwargs: Any) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a red fox in snow", "width": 512, "height": 512, **kwargs})


def _ctx() -> RunContext:
    return RunContext(job_id="job-routes", user_id="user-routes", deadline=time.monotonic() + 20)


def outline(outcome: ChainOutcome) -> list[tuple[str | None, str | None, str, str | None]]:
    return [(a.model, a.route, a.outcome, a.error_class) for a in outcome.attempts]


@pytest.fixture
def run(environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher) -> Run:
    return Run(environ, provider_http, safe_fetcher)


class TestFirstLiveRoute:
    def test_given_only_hf_token_when_flux_dev_runs_then_fal_ai_serves_it_from_the_mapping(
        self, run: Run, hf_router: HfRouterDouble, storage: StorageDouble
    ) -> None:
        outcome = run.start(steps=28, guidance=3.5, seed=7)

        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [(DEV, "fal-ai", "succeeded", None)]
        assert (outcome.image.provider, outcome.image.model, outcome.image.width) == ("huggingface", DEV, 512)
        [hub] = hf_router.calls("hub")
        assert (hub.path, hub.query_all("expand[]")) == (f"/api/models/{DEV}", ["inferenceProviderMapping"])
        [sent] = hf_router.calls("fal-ai")
        assert (sent.path, sent.headers["authorization"]) == ("/fal-ai/fal-ai/flux/dev", f"Bearer {HF_TOKEN}")
        assert sent.json() == {
            "prompt": "a red fox in snow",
            "image_size": "square",
            "num_inference_steps": 28,
            "guidance_scale": 3.5,
            "seed": 7,
            "num_images": 1,
            "enable_safety_checker": True,
            "output_format": "png",
        }
        # The result came from fal's CDN path on the storage double, fetched without a key.
        assert [r.kind for r in storage.requests] == ["fal"]
        assert all("authorization" not in r.headers for r in storage.requests)
        assert run.store.get("huggingface", DEV) is not None

    def test_given_the_mapping_stored_when_a_second_job_runs_then_the_hub_is_not_asked_again(
        self, run: Run, hf_router: HfRouterDouble
    ) -> None:
        run.start()
        run.start()

        assert len(hf_router.calls("hub")) == 1
        assert len(hf_router.calls("fal-ai")) == 2


class TestFallThroughRoutes:
    def test_given_dev_refused_on_every_route_when_run_then_schnell_serves_with_4_steps_and_guidance_0(
        self, run: Run, hf_router: HfRouterDouble
    ) -> None:
        # Given an account that cannot pay through fal-ai, replicate, wavespeed or nscale
        hf_router.payg_disabled |= {"fal-ai", "replicate", "wavespeed", "nscale"}

        outcome = run.start(steps=28, guidance=3.5, seed=3)

        # Then each route of FLUX.1-dev fails once, schnell skips the routes already refused, and together serves
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            (DEV, "fal-ai", "failed", "payment_required"),
            (DEV, "replicate", "failed", "payment_required"),
            (DEV, "wavespeed", "failed", "payment_required"),
            (SCHNELL, "fal-ai", "skipped", "payment_required"),
            (SCHNELL, "replicate", "skipped", "payment_required"),
            (SCHNELL, "wavespeed", "skipped", "payment_required"),
            (SCHNELL, "nscale", "failed", "payment_required"),
            (SCHNELL, "together", "succeeded", None),
        ]
        [sent] = hf_router.calls("together")
        assert sent.json() == {
            "prompt": "a red fox in snow",
            "response_format": "base64",
            "width": 512,
            "height": 512,
            "steps": 4,
            "guidance_scale": 0,
            "seed": 3,
            "model": SCHNELL,
        }
        assert outcome.attempts[-1].dropped_params == ["steps", "guidance"]
        # Pay-as-you-go is about the route, not the key: nothing says the token is out of credit.
        assert "Pay-as-you go is not enabled for provider fal-ai" in (outcome.attempts[0].message or "")

    def test_given_a_stale_mapping_when_a_route_answers_404_then_the_next_route_serves_and_the_mapping_is_read_again(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        # Given a stored mapping that still lists together for FLUX.1-dev, which the router does not serve there
        run = Run({**environ, "HF_INFERENCE_PROVIDERS": "together,fal-ai"}, provider_http, safe_fetcher)
        stale = (
            CatalogEntry("together", DEV, "live", "text-to-image"),
            CatalogEntry("fal-ai", "fal-ai/flux/dev", "live", "text-to-image"),
        )
        run.store.put("huggingface", DEV, StoredCatalog(stale, time.time()))

        outcome = run.start(model=DEV)

        # Then together's 404 falls through to fal-ai, and the Hub is asked again for the mapping
        assert isinstance(outcome, ChainSucceeded)
        assert [(a.route, a.outcome, a.error_class, a.status_code) for a in outcome.attempts] == [
            ("together", "failed", "model_unavailable", 404),
            ("fal-ai", "succeeded", None, None),
        ]
        assert [r.path for r in hf_router.calls("hub")] == [f"/api/models/{DEV}"]
        fresh = run.store.get("huggingface", DEV)
        assert fresh is not None and [e.route for e in fresh.entries] == ["fal-ai", "replicate", "wavespeed"]


class TestRouterRefusals:
    def test_given_a_token_without_the_permission_when_run_then_said_once_with_the_hint_and_hf_is_skipped(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        hf_router.no_permission.add(HF_TOKEN)
        run = Run({**environ, "IMAGEGEN_PROVIDERS": "huggingface,placeholder"}, provider_http, safe_fetcher)

        outcome = run.start()

        assert isinstance(outcome, ChainSucceeded) and outcome.image.provider == "placeholder"
        assert [(a.model, a.route, a.outcome, a.error_class) for a in outcome.attempts] == [
            (DEV, "fal-ai", "failed", "forbidden"),
            (DEV, "replicate", "skipped", "forbidden"),
            (DEV, "wavespeed", "skipped", "forbidden"),
            (SCHNELL, None, "skipped", "forbidden"),
            ("placeholder", None, "succeeded", None),
        ]
        hints = [w for w in outcome.warnings if "Make calls to Inference Providers" in w]
        assert len(hints) == 1 and "fineGrained" in hints[0]
        # One router call, and no mapping read for a model that was never going to be tried.
        assert len([r for r in hf_router.server.requests if not r.path.startswith("/api/")]) == 1
        assert [r.path for r in hf_router.calls("hub")] == [f"/api/models/{DEV}"]

    def test_given_every_route_failing_when_run_then_the_failure_names_each_route_and_the_hint(
        self, run: Run, hf_router: HfRouterDouble
    ) -> None:
        hf_router.no_permission.add(HF_TOKEN)

        outcome = run.start()

        assert isinstance(outcome, ChainFailed)
        assert "huggingface/black-forest-labs/FLUX.1-dev: failed 403 forbidden" in outcome.error.message
        assert outcome.error.hint is not None and "Make calls to Inference Providers" in outcome.error.hint


class TestHubUnreachable:
    def test_given_no_hub_and_nothing_stored_when_run_then_only_hf_inference_is_tried_and_the_attempt_says_why(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        # Given a Hub that answers nothing (a closed port), and a model that hf-inference serves
        run = Run(
            {**environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_MODELS": f"{DEV},{SD3}"}, provider_http, safe_fetcher
        )

        outcome = run.start()

        # Then FLUX.1-dev is tried on hf-inference only (where the router refuses it), SD3 is served there
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            (DEV, "hf-inference", "failed", "model_unavailable"),
            (SD3, "hf-inference", "succeeded", None),
        ]
        assert "mapping could not be read" in (outcome.attempts[0].message or "")
        assert any("mapping could not be read" in w for w in outcome.warnings)
        assert hf_router.calls("fal-ai") == []


class TestQueuedRoutes:
    def test_given_wavespeed_first_when_run_then_the_job_parks_and_a_later_check_through_the_router_collects(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        run = Run({**environ, "HF_INFERENCE_PROVIDERS": "wavespeed"}, provider_http, safe_fetcher)
        hf_router.wavespeed_polls = 2

        pending = run.start()
        again = run.resume(pending)
        done = run.resume(again)

        assert isinstance(pending, ChainPending) and pending.state["remote_id"].startswith("wavespeed:/api/v3/")
        assert isinstance(again, ChainPending)
        assert isinstance(done, ChainSucceeded)
        # The pending attempt is replaced by how it ended, as for every queued provider.
        assert [(a.route, a.outcome) for a in done.attempts] == [("wavespeed", "succeeded")]
        checks = [r for r in hf_router.calls("wavespeed") if r.method == "GET"]
        assert len(checks) == 2 and all(r.headers["authorization"] == f"Bearer {HF_TOKEN}" for r in checks)

    def test_given_a_failed_wavespeed_task_when_checked_then_the_next_route_runs_in_the_same_invocation(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        run = Run({**environ, "HF_INFERENCE_PROVIDERS": "wavespeed,fal-ai"}, provider_http, safe_fetcher)
        hf_router.wavespeed_error = "content flagged"

        outcome = run.resume(run.start())

        assert isinstance(outcome, ChainSucceeded)
        assert [(a.model, a.route, a.outcome, a.error_class) for a in outcome.attempts] == [
            (DEV, "wavespeed", "failed", "faulted"),
            (DEV, "fal-ai", "succeeded", None),
        ]
        assert outcome.attempts[0].message == "content flagged"

    def test_given_a_slow_replicate_prediction_when_run_then_it_parks_and_the_router_check_collects_it(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        # Given a prediction that outlasts the attempt's wait (5 s budget -> Prefer: wait=3)
        hf_router.replicate.run_seconds = 30
        hf_router.replicate.polls_until_done = 1
        run = Run({**environ, "HF_INFERENCE_PROVIDERS": "replicate"}, provider_http, safe_fetcher)

        pending = run.start(width=768, height=512, guidance=3.5)
        done = run.resume(pending, width=768, height=512, guidance=3.5)

        assert isinstance(pending, ChainPending) and pending.state["remote_id"].startswith("replicate:")
        assert isinstance(done, ChainSucceeded)
        [create] = [r for r in hf_router.calls("replicate") if r.method == "POST"]
        assert create.headers["prefer"] == "wait=3"
        assert create.json()["input"] == {
            "prompt": "a red fox in snow",
            "aspect_ratio": "3:2",
            "megapixels": "1",
            "guidance": 3.5,
            "num_outputs": 1,
            "output_format": "png",
        }
        assert (done.image.width, done.image.height) == (1248, 832)

    def test_given_an_e005_prediction_when_run_then_the_chain_stops_at_the_refusal(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        hf_router.replicate.fail_with = E005
        run = Run({**environ, "HF_INFERENCE_PROVIDERS": "replicate,fal-ai"}, provider_http, safe_fetcher)

        outcome = run.start()

        assert isinstance(outcome, ChainFailed) and outcome.error.code == "content_refused"
        assert outline(outcome) == [(DEV, "replicate", "failed", "content_policy")]
        assert hf_router.calls("fal-ai") == []

    def test_given_zai_org_glm_when_run_then_the_async_result_is_collected(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        run = Run({**environ, "HF_MODELS": GLM, "HF_INFERENCE_PROVIDERS": "auto"}, provider_http, safe_fetcher)

        pending = run.start()
        done = run.resume(pending)

        assert isinstance(pending, ChainPending) and pending.delay_seconds == 5
        assert isinstance(done, ChainSucceeded) and done.attempts[-1].route == "zai-org"


class TestAutoAndBreakers:
    def test_given_auto_when_the_first_entry_is_staging_then_the_next_live_one_serves(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        hf_router.models[DEV].mapping.insert(0, Mapping("together", DEV, status="staging"))
        hf_router.set_status(DEV, "fal-ai", "error")
        run = Run({**environ, "HF_INFERENCE_PROVIDERS": "auto"}, provider_http, safe_fetcher)
        hf_router.replicate.run_seconds = 0

        outcome = run.start()

        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [(DEV, "replicate", "succeeded", None)]

    def test_given_a_route_failing_repeatedly_when_runs_continue_then_only_that_route_cools_down(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        breakers = InMemoryBreakerStore()
        cooling = {"IMAGEGEN_BREAKER_THRESHOLD": "1", "IMAGEGEN_BREAKER_COOLDOWN_S": "600"}
        run = Run(
            {**environ, **cooling, "HF_INFERENCE_PROVIDERS": "fal-ai,together", "HF_MODELS": SCHNELL},
            provider_http,
            safe_fetcher,
            breaker=breakers,
        )
        hf_router.fail_route("fal-ai", Reply.json(500, {"error": "boom"}))

        first, second = run.start(), run.start()

        assert [(a.route, a.outcome, a.error_class) for a in first.attempts] == [
            ("fal-ai", "failed", "server_error"),
            ("together", "succeeded", None),
        ]
        assert [(a.route, a.outcome, a.error_class) for a in second.attempts] == [
            ("fal-ai", "skipped", "breaker_open"),
            ("together", "succeeded", None),
        ]
        scope = key_scope("deployment", key=run.settings.for_provider("huggingface").api_key) or ""
        assert breakers.read("huggingface/fal-ai", scope).state == "open"
        assert breakers.read("huggingface/together", scope).state == "closed"

    def test_given_hedging_when_the_first_route_is_slow_then_the_next_route_starts_beside_it_and_wins(
        self, environ: dict[str, str], provider_http: httpx.Client, safe_fetcher: SafeFetcher, hf_router: HfRouterDouble
    ) -> None:
        env = {**environ, "HF_INFERENCE_PROVIDERS": "fal-ai,together", "HF_MODELS": SCHNELL}
        # A fresh container has made no calls yet: a budget of one hedge per call lets this first one go.
        run = Run({**env, "IMAGEGEN_HEDGE_DELAY_S": "0.2", "IMAGEGEN_HEDGE_BUDGET": "1"}, provider_http, safe_fetcher)
        hf_router.fail_route("fal-ai", Reply.json(500, {"error": "slow and broken"}, delay=2))

        outcome = run.start(hedge=True)

        assert isinstance(outcome, ChainSucceeded)
        assert [(a.route, a.outcome, a.error_class) for a in outcome.attempts] == [
            ("fal-ai", "canceled", "hedge_lost"),
            ("together", "succeeded", None),
        ]
