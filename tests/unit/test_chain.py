"""Chain logic over in-memory transports: ordering, skips, classification, retries, breaker, async, secrets."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from aws_lambda_powertools import Metrics
from imagegen.breaker import InMemoryBreakerStore
from imagegen.catalogs import InMemoryRouteMapStore, RouteMaps, StoredCatalog
from imagegen.chain import Chain, Link
from imagegen.chain.report import mask_secrets
from imagegen.generation import ChainFailed, ChainPending, ChainSucceeded, RunContext
from imagegen.keys.types import KeyHealth, key_scope
from imagegen.models import ImageRequest
from imagegen.providers import REGISTRY
from imagegen.providers.base import MAX_MESSAGE, CatalogEntry, Refused
from imagegen.providers.settings import ProvidersSettings
from imagegen.providers.spec import ProviderSpec
from pydantic import SecretStr

from tests.doubles.images import blank, picture
from tests.doubles.key_stores import MemoryKeyStore, chain_keys

SF_KEY = "sk-unitSECRETsiliconflow"
HF_KEY = "hf_unitSECREThuggingface"

Handler = Callable[[httpx.Request], httpx.Response]


class Hosts:
    """An httpx transport answering per host from queued handlers, recording every request."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[Handler]] = defaultdict(deque)
        self.defaults: dict[str, Handler] = {}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        queue = self.queues[request.url.host]
        handler = queue.popleft() if queue else self.defaults.get(request.url.host)
        if handler is None:
            return httpx.Response(599, text=f"no handler for {request.url.host}")
        return handler(request)

    def on(self, host: str, *handlers: Handler) -> None:
        self.queues[host].extend(handlers)


def png(width: int = 1024, height: int = 1024) -> Handler:
    return lambda request: httpx.Response(
        200, content=picture(width, height, str(request.url)), headers={"content-type": "image/png"}
    )


def status(code: int, payload: Any = None, headers: dict[str, str] | None = None) -> Handler:
    return lambda request: httpx.Response(code, json=payload, headers=headers)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeFetched:
    content_type: str | None
    data: bytes


class Fetcher:
    def __init__(self) -> None:
        self.urls: list[str] = []

    def fetch_bytes(self, url: str) -> FakeFetched:
        self.urls.append(url)
        return FakeFetched("image/png", picture(1024, 1024, url))


@dataclass
class Harness:
    chain: Chain
    hosts: Hosts
    clock: Clock
    fetcher: Fetcher
    keys: MemoryKeyStore


def make(
    environ: dict[str, str] | None = None,
    *,
    breaker: InMemoryBreakerStore | None = None,
    registry: dict[str, ProviderSpec[Any]] | None = None,
    metrics: Any = None,
    keys: MemoryKeyStore | None = None,
) -> Harness:
    # No rate limit of ours by default: the test clock stands still, so every job would come "at once".
    env = {
        "SILICONFLOW_API_KEY": SF_KEY,
        "HF_TOKEN": HF_KEY,
        "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors",
        "SILICONFLOW_RPM": "0",
    }
    env.update(environ or {})
    hosts, clock, fetcher, store = Hosts(), Clock(), Fetcher(), keys or MemoryKeyStore()
    settings = ProvidersSettings.from_environ(env)
    http = httpx.Client(transport=httpx.MockTransport(hosts))
    chain = Chain(
        settings,
        http,
        fetcher,
        keys=chain_keys(settings, store),
        breaker=breaker,
        catalog=hf_inference_catalog(settings, http, clock),
        registry=registry or REGISTRY,
        metrics=metrics,
        clock=clock,
        wall_clock=clock,
        sleep=clock.sleep,
    )
    return Harness(chain, hosts, clock, fetcher, store)


def hf_inference_catalog(settings: ProvidersSettings, http: httpx.Client, clock: Clock) -> RouteMaps:
    """Hugging Face's mapping as these tests assume it: both FLUX models on hf-inference, read a moment ago."""
    entries = {
        ("huggingface", model): StoredCatalog(
            (CatalogEntry("hf-inference", model, "live", "text-to-image"),), clock.now
        )
        for model in ("black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell")
    }
    return RouteMaps(
        InMemoryRouteMapStore(entries),
        settings,
        http,
        registry=REGISTRY,
        token=lambda name: None,
        wall_clock=clock,
        monotonic=clock,
    )


def ctx(clock: Clock, seconds: float = 60.0) -> RunContext:
    return RunContext(job_id="job-1", user_id="user-1", deadline=clock.now + seconds)


def req(**kwargs: Any) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a fox", **kwargs})


SF, HF, HORDE, POLL = "api.siliconflow.com", "router.huggingface.co", "aihorde.net", "image.pollinations.ai"


def sf_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"images": [{"url": "https://sc-maas.oss-cn-shanghai.aliyuncs.com/a.png?Expires=9"}]}
    )


class TestLinks:
    def test_given_no_request_order_when_links_are_built_then_deployment_order_and_model_fallbacks(self) -> None:
        h = make({"IMAGEGEN_PROVIDERS": "huggingface,pollinations"})
        assert h.chain.links_for(req()) == [
            Link("huggingface", "black-forest-labs/FLUX.1-dev"),
            Link("huggingface", "black-forest-labs/FLUX.1-schnell"),
            Link("pollinations", "flux"),
        ]

    def test_given_a_request_model_when_links_are_built_then_it_goes_first_and_others_record_it_dropped(self) -> None:
        h = make()
        links = h.chain.links_for(req(providers=["huggingface", "horde"], model="black-forest-labs/FLUX.1-schnell"))
        assert links == [
            Link("huggingface", "black-forest-labs/FLUX.1-schnell"),
            Link("huggingface", "black-forest-labs/FLUX.1-dev"),
            Link("horde", None, model_dropped=True),
        ]


class TestOutcomes:
    def test_given_no_keys_when_started_then_no_providers_configured_with_the_keys_to_set(self) -> None:
        h = make({"SILICONFLOW_API_KEY": "", "HF_TOKEN": "", "SILICONFLOW_MODELS": ""})
        outcome = h.chain.start(req(providers=["siliconflow", "huggingface"]), ctx(h.clock))
        assert isinstance(outcome, ChainFailed)
        assert outcome.error.code == "no_providers_configured"
        assert outcome.error.hint is not None and "SILICONFLOW_API_KEY or HF_TOKEN" in outcome.error.hint
        assert [(a.provider, a.outcome, a.error_class) for a in outcome.attempts] == [
            *[("siliconflow", "skipped", "no_key")] * 5,
            ("huggingface", "skipped", "no_key"),
            ("huggingface", "skipped", "no_key"),
        ]
        assert h.hosts.seen == []

    def test_given_a_500_when_run_then_the_next_provider_serves_and_both_attempts_are_recorded(self) -> None:
        h = make()
        h.hosts.on(SF, status(500, {"code": 50000, "message": "Unknown error"}))
        h.hosts.on(HF, png())
        outcome = h.chain.start(req(providers=["siliconflow", "huggingface"]), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert (outcome.image.provider, outcome.image.model) == ("huggingface", "black-forest-labs/FLUX.1-dev")
        assert [(a.provider, a.outcome, a.error_class, a.status_code) for a in outcome.attempts] == [
            ("siliconflow", "failed", "server_error", 500),
            ("huggingface", "succeeded", None, None),
        ]

    def test_given_a_signed_url_result_when_run_then_it_is_fetched_through_the_fetcher(self) -> None:
        h = make()
        h.hosts.on(SF, sf_ok)
        outcome = h.chain.start(req(providers=["siliconflow"]), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert h.fetcher.urls == ["https://sc-maas.oss-cn-shanghai.aliyuncs.com/a.png?Expires=9"]
        assert [r.url.host for r in h.hosts.seen] == [SF]

    def test_given_429_with_short_retry_after_when_run_then_same_link_is_retried_after_at_least_that_long(self) -> None:
        h = make()
        h.hosts.on(
            SF, status(429, {"message": "Request was rejected due to rate limiting."}, {"retry-after": "2"}), sf_ok
        )
        outcome = h.chain.start(req(providers=["siliconflow"]), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert len(h.clock.sleeps) == 1 and 2.0 <= h.clock.sleeps[0] <= 2.4
        assert [(a.outcome, a.error_class, a.status_code) for a in outcome.attempts] == [
            ("retried", "rate_limited", 429),
            ("succeeded", None, None),
        ]

    def test_given_429_with_long_retry_after_when_run_then_it_falls_through_without_sleeping(self) -> None:
        h = make()
        h.hosts.on(SF, status(429, {"message": "slow down"}, {"retry-after": "120"}))
        h.hosts.on(HF, png())
        outcome = h.chain.start(req(providers=["siliconflow", "huggingface"]), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert h.clock.sleeps == []
        assert [(a.provider, a.outcome, a.error_class) for a in outcome.attempts] == [
            ("siliconflow", "failed", "rate_limited"),
            ("huggingface", "succeeded", None),
        ]

    def test_given_a_retry_that_does_not_fit_the_deadline_when_run_then_it_falls_through(self) -> None:
        h = make()
        h.hosts.on(SF, status(429, {"message": "slow down"}, {"retry-after": "5"}))
        outcome = h.chain.start(req(providers=["siliconflow", "placeholder"]), ctx(h.clock, seconds=6))
        assert isinstance(outcome, ChainSucceeded)
        assert h.clock.sleeps == []
        assert [(a.provider, a.outcome) for a in outcome.attempts] == [
            ("siliconflow", "failed"),
            ("placeholder", "succeeded"),
        ]

    def test_given_too_little_time_left_when_run_then_links_are_skipped_for_the_deadline(self) -> None:
        h = make()
        outcome = h.chain.start(req(providers=["siliconflow"]), ctx(h.clock, seconds=2))
        assert isinstance(outcome, ChainFailed)
        assert [(a.outcome, a.error_class) for a in outcome.attempts] == [("skipped", "deadline")]
        assert h.hosts.seen == []

    def test_given_a_blank_image_when_run_then_invalid_image_falls_through(self) -> None:
        h = make()
        h.hosts.on(HF, lambda r: httpx.Response(200, content=blank(1024, 1024), headers={"content-type": "image/png"}))
        h.hosts.on(HF, png())
        outcome = h.chain.start(req(providers=["huggingface"]), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert [(a.model, a.outcome, a.error_class) for a in outcome.attempts] == [
            ("black-forest-labs/FLUX.1-dev", "failed", "invalid_image"),
            ("black-forest-labs/FLUX.1-schnell", "succeeded", None),
        ]

    def test_given_an_invalid_siliconflow_key_when_run_then_its_other_models_are_skipped(self) -> None:
        h = make({"SILICONFLOW_MODELS": "Kwai-Kolors/Kolors,Qwen/Qwen-Image"})
        h.hosts.on(SF, lambda r: httpx.Response(401, text="Invalid token"))
        outcome = h.chain.start(req(providers=["siliconflow", "placeholder"]), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert [(a.model, a.outcome, a.error_class) for a in outcome.attempts] == [
            ("Kwai-Kolors/Kolors", "failed", "unauthorized"),
            ("Qwen/Qwen-Image", "skipped", "unauthorized"),
            ("placeholder", "succeeded", None),
        ]

    def test_given_a_key_marked_invalid_by_health_when_run_then_the_link_is_skipped_with_that_reason(self) -> None:
        # Given the deployment's Hugging Face key recorded out of credit by its last check
        store = MemoryKeyStore()
        checked = KeyHealth(status="out_of_credit", detail="balance -1", checked_at=datetime.now(UTC))
        store.record_deployment_health("huggingface", SecretStr(HF_KEY), checked)
        h = make(keys=store)
        outcome = h.chain.start(req(providers=["huggingface", "placeholder"]), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert [(a.provider, a.outcome, a.error_class) for a in outcome.attempts] == [
            ("huggingface", "skipped", "key_out_of_credit"),
            ("huggingface", "skipped", "key_out_of_credit"),
            ("placeholder", "succeeded", None),
        ]

    def test_given_every_link_failing_when_run_then_one_aggregated_secret_free_error(self) -> None:
        h = make()
        h.hosts.on(SF, lambda r: httpx.Response(500, json={"message": f"bad key {SF_KEY}"}))
        h.hosts.on(HF, status(503, {"error": "overloaded"}), status(404, {"error": "Not Found"}))
        outcome = h.chain.start(req(providers=["siliconflow", "huggingface"]), ctx(h.clock))
        assert isinstance(outcome, ChainFailed)
        assert outcome.error.code == "all_providers_failed"
        assert outcome.error.message == (
            "All 2 providers failed: siliconflow/Kwai-Kolors/Kolors: failed 500 server_error (bad key ***); "
            "huggingface/black-forest-labs/FLUX.1-dev: failed 503 overloaded (overloaded); "
            "huggingface/black-forest-labs/FLUX.1-schnell: failed 404 model_unavailable (Not Found)"
        )
        dumped = json.dumps([a.model_dump() for a in outcome.attempts]) + json.dumps(outcome.error.model_dump())
        assert SF_KEY not in dumped and HF_KEY not in dumped


class TestScrubbing:
    def test_given_a_key_echoed_across_the_cut_when_stored_then_neither_it_nor_its_start_survives(self) -> None:
        # Given an error text whose key starts 15 characters before the 200-character cut
        h = make()
        echoed = "x" * (MAX_MESSAGE - 20) + f" bad key {SF_KEY} for this model"
        h.hosts.on(SF, status(400, {"code": 20012, "message": echoed}))

        outcome = h.chain.start(req(providers=["siliconflow", "placeholder"]), ctx(h.clock))

        # Then the stored message is cut to its length after the key was masked: no 8-character start of it is left
        message = outcome.attempts[0].message or ""
        assert len(message) == MAX_MESSAGE and message.endswith("…")
        assert [SF_KEY[:n] for n in range(8, len(SF_KEY) + 1) if SF_KEY[:n] in message] == []
        assert "bad key ***" in message

    def test_given_a_provider_echoing_a_cut_down_key_when_stored_then_the_start_is_masked(self) -> None:
        h = make()
        h.hosts.on(SF, status(401, {"message": f"Invalid token {SF_KEY[:12]}..."}))

        outcome = h.chain.start(req(providers=["siliconflow", "placeholder"]), ctx(h.clock))

        assert outcome.attempts[0].message == "Invalid token ***..."

    def test_given_text_that_only_shares_a_short_start_with_a_key_when_masked_then_it_is_left_alone(self) -> None:
        assert mask_secrets("sk-unit and hf_unit", (SF_KEY, HF_KEY)) == "sk-unit and hf_unit"
        assert mask_secrets(f"a{SF_KEY[:9]}b", (SF_KEY,)) == "a***b"


def _refusing_registry() -> dict[str, ProviderSpec[Any]]:
    from dataclasses import replace

    from imagegen.providers import huggingface

    refusing = replace(
        huggingface.SPEC, parse_response=lambda response, plan: Refused("unsafe prompt", status_code=400)
    )
    return {**REGISTRY, "huggingface": refusing}


class TestRefusal:
    def test_given_a_refusal_when_on_refusal_is_stop_then_the_chain_stops(self) -> None:
        h = make(registry=_refusing_registry())
        h.hosts.on(HF, png())
        outcome = h.chain.start(req(providers=["huggingface", "placeholder"]), ctx(h.clock))
        assert isinstance(outcome, ChainFailed)
        assert outcome.error.code == "content_refused"
        assert [(a.provider, a.outcome, a.error_class) for a in outcome.attempts] == [
            ("huggingface", "failed", "content_policy")
        ]

    def test_given_a_refusal_when_on_refusal_is_fallback_then_the_next_link_runs(self) -> None:
        h = make(registry=_refusing_registry())
        h.hosts.on(HF, png(), png())
        outcome = h.chain.start(req(providers=["huggingface", "placeholder"], on_refusal="fallback"), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert outcome.image.provider == "placeholder"
        assert "served by the offline placeholder provider, not an image model" in outcome.warnings


SF_SCOPE = key_scope("deployment", key=SecretStr(SF_KEY))


class TestBreaker:
    def test_given_repeated_5xx_when_runs_continue_then_it_opens_skips_probes_once_and_closes(self) -> None:
        # Given a breaker that opens after 2 failures in a row and cools down for 30 s
        store = InMemoryBreakerStore()
        h = make({"IMAGEGEN_BREAKER_THRESHOLD": "2", "IMAGEGEN_BREAKER_COOLDOWN_S": "30"}, breaker=store)
        h.hosts.on(SF, status(500, {"message": "boom"}), status(500, {"message": "boom"}))
        # When two runs meet a 500 each
        for _ in range(2):
            h.chain.start(req(providers=["siliconflow", "placeholder"]), ctx(h.clock))
        # Then the deployment key's breaker is open (one write: the state change), and the next run skips it
        assert (store.read("siliconflow", SF_SCOPE).state, store.writes) == ("open", 1)
        skipped = h.chain.start(req(providers=["siliconflow", "placeholder"]), ctx(h.clock))
        assert isinstance(skipped, ChainSucceeded)
        assert [(a.provider, a.outcome, a.error_class) for a in skipped.attempts] == [
            ("siliconflow", "skipped", "breaker_open"),
            ("placeholder", "succeeded", None),
        ]
        assert len([r for r in h.hosts.seen if r.url.host == SF]) == 2
        h.clock.now += 31
        h.hosts.on(SF, sf_ok)
        probed = h.chain.start(req(providers=["siliconflow"]), ctx(h.clock))
        assert isinstance(probed, ChainSucceeded)
        assert store.read("siliconflow", SF_SCOPE).state == "closed"

    def test_given_400s_when_repeated_then_the_breaker_stays_closed(self) -> None:
        store = InMemoryBreakerStore()
        h = make({"IMAGEGEN_BREAKER_THRESHOLD": "1"}, breaker=store)
        h.hosts.on(SF, status(400, {"code": 20012, "message": "bad"}), status(400, {"code": 20012, "message": "bad"}))
        for _ in range(2):
            h.chain.start(req(providers=["siliconflow"]), ctx(h.clock))
        assert (store.read("siliconflow", SF_SCOPE).state, store.writes) == ("closed", 0)


class TestHordeAsync:
    def test_given_horde_when_started_then_pending_without_sleeping_then_resumed_to_success(self) -> None:
        h = make({"HORDE_CLIENT_AGENT": "imagegen:0.1.0:unit@example.invalid"})
        h.hosts.on(HORDE, status(202, {"id": "rid-1", "kudos": 10}))
        started = h.chain.start(req(providers=["horde"], width=1000, height=700), ctx(h.clock))
        assert isinstance(started, ChainPending)
        assert (started.delay_seconds, started.state["remote_id"], started.state["link_index"]) == (2, "rid-1", 0)
        assert [(a.outcome, a.provider) for a in started.attempts] == [("pending", "horde")]
        h.hosts.on(HORDE, status(200, {"done": False, "faulted": False, "wait_time": 2000, "is_possible": True}))
        again = h.chain.resume(req(providers=["horde"], width=1000, height=700), started.state, ctx(h.clock))
        assert isinstance(again, ChainPending)
        assert again.delay_seconds == 900
        assert again.state["checks"] == 1
        gen = {"img": "https://r2.example/x.webp?X-Amz-Signature=s", "censored": False, "gen_metadata": []}
        h.hosts.on(
            HORDE,
            status(200, {"done": True, "faulted": False, "wait_time": 0}),
            status(200, {"done": True, "generations": [gen]}),
        )
        h.fetcher.fetch_bytes = lambda url: FakeFetched("image/webp", picture(1024, 704, url, fmt="WEBP"))  # type: ignore[method-assign]
        done = h.chain.resume(req(providers=["horde"], width=1000, height=700), again.state, ctx(h.clock))
        assert isinstance(done, ChainSucceeded)
        assert (done.image.width, done.image.height, done.image.content_type) == (1024, 704, "image/webp")
        assert [(a.outcome, a.message) for a in done.attempts] == [("succeeded", "done after 2 check(s)")]
        assert h.clock.sleeps == []
        assert [(r.method, r.url.path) for r in h.hosts.seen] == [
            ("POST", "/api/v2/generate/async"),
            ("GET", "/api/v2/generate/check/rid-1"),
            ("GET", "/api/v2/generate/check/rid-1"),
            ("GET", "/api/v2/generate/status/rid-1"),
        ]

    def test_given_a_faulted_horde_request_when_resumed_then_the_chain_continues_with_the_next_link(self) -> None:
        h = make()
        h.hosts.on(HORDE, status(202, {"id": "rid-2"}))
        started = h.chain.start(req(providers=["horde", "placeholder"]), ctx(h.clock))
        assert isinstance(started, ChainPending)
        h.hosts.on(HORDE, status(200, {"done": False, "faulted": True, "wait_time": 0}))
        outcome = h.chain.resume(req(providers=["horde", "placeholder"]), started.state, ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert [(a.provider, a.outcome, a.error_class) for a in outcome.attempts] == [
            ("horde", "failed", "faulted"),
            ("placeholder", "succeeded", None),
        ]

    def test_given_a_pending_state_when_canceled_then_delete_is_sent(self) -> None:
        h = make()
        h.hosts.on(HORDE, status(202, {"id": "rid-3"}), status(200, {"done": False}))
        started = h.chain.start(req(providers=["horde"]), ctx(h.clock))
        assert isinstance(started, ChainPending)
        h.chain.cancel(started.state)
        assert (h.hosts.seen[-1].method, h.hosts.seen[-1].url.path) == ("DELETE", "/api/v2/generate/status/rid-3")


class TestMetrics:
    def test_given_a_powertools_metrics_instance_when_a_fallback_happens_then_counts_are_added(self) -> None:
        metrics = Metrics(namespace="imagegen-test", service="worker")
        # Powertools' Metrics instances share one metric set: start from what this test adds alone.
        metrics.clear_metrics()
        h = make(metrics=metrics)
        h.hosts.on(SF, status(500, {"message": "boom"}))
        h.chain.start(req(providers=["siliconflow", "placeholder"]), ctx(h.clock))
        values = {name: sum(m["Value"]) for name, m in metrics.metric_set.items()}
        metrics.clear_metrics()
        assert values["ProviderAttempts"] == 2
        assert values["ProviderFailures"] == 1
        assert values["ProviderSuccesses"] == 1
        assert values["ProviderFallbacks"] == 1
        assert values["siliconflow.Failures.server_error"] == 1
        assert values["placeholder.Successes"] == 1


class TestResumeState:
    def test_given_a_corrupt_state_when_resumed_then_bad_chain_state_without_any_call(self) -> None:
        h = make()
        outcome = h.chain.resume(
            req(), {"links": [["dalle", None, False]], "attempts": [], "link_index": 0, "remote_id": "x"}, ctx(h.clock)
        )
        assert isinstance(outcome, ChainFailed)
        assert (outcome.error.code, outcome.attempts) == ("bad_chain_state", [])
        assert h.hosts.seen == []
