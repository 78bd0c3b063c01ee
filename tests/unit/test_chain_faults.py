"""The chain under faults, over in-memory transports: hedges to another provider within the budget, hung providers
going last, learned timeouts, jobs that wait for a cooling or rate-limited provider, and 402s as evidence only."""

from __future__ import annotations

import time
from typing import Any

import httpx
from imagegen.breaker import InMemoryBreakerStore
from imagegen.chain.limits import MemoryRateStore
from imagegen.generation import ChainFailed, ChainSucceeded, ChainWaiting, RunContext
from imagegen.keys.types import key_scope
from pydantic import SecretStr

from tests.doubles.key_stores import MemoryKeyStore
from tests.unit.test_chain import HF, SF, SF_KEY, Handler, ctx, make, png, req, sf_ok, status

KOLORS, ZIMAGE = "Kwai-Kolors/Kolors", "Tongyi-MAI/Z-Image-Turbo"
SF_SCOPE = key_scope("deployment", key=SecretStr(SF_KEY)) or ""


def outline(outcome: Any) -> list[tuple[str, str | None, str, str | None]]:
    return [(a.provider, a.model, a.outcome, a.error_class) for a in outcome.attempts]


def slow(seconds: float, then: Handler) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        time.sleep(seconds)  # real time: the hedge waits on real futures
        return then(request)

    return answer


def hangs(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


def waiting_ctx(clock: Any, latest_start: float | None) -> RunContext:
    return RunContext(job_id="job-1", user_id="user-1", deadline=clock.now + 60, latest_start=latest_start)


class TestHedging:
    def test_given_a_silent_link_when_hedged_then_the_hedge_goes_to_another_provider_not_the_next_model(self) -> None:
        # Given SiliconFlow with two models, the first silent for a while, and a budget that allows a hedge
        h = make(
            {"SILICONFLOW_MODELS": f"{KOLORS},{ZIMAGE}", "IMAGEGEN_HEDGE_DELAY_S": "0.05", "IMAGEGEN_HEDGE_BUDGET": "1"}
        )
        h.hosts.on(SF, slow(0.5, status(500, {"message": "late"})))
        h.hosts.on(HF, png())
        # When a hedged job runs
        outcome = h.chain.start(req(providers=["siliconflow", "huggingface"], hedge=True), ctx(h.clock))
        # Then Hugging Face started beside it and won; SiliconFlow's second model was never called
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("siliconflow", KOLORS, "canceled", "hedge_lost"),
            ("huggingface", "black-forest-labs/FLUX.1-dev", "succeeded", None),
        ]
        assert [r.url.host for r in h.hosts.seen].count(SF) == 1

    def test_given_no_budget_left_when_a_link_is_slow_then_no_hedge_starts_and_the_link_is_waited_for(self) -> None:
        # Given the default 5 % budget and a fresh container (no calls made yet, so no hedge earned)
        h = make({"IMAGEGEN_HEDGE_DELAY_S": "0.05"})
        h.hosts.on(SF, slow(0.3, sf_ok))
        outcome = h.chain.start(req(providers=["siliconflow", "huggingface"], hedge=True), ctx(h.clock))
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [("siliconflow", KOLORS, "succeeded", None)]
        assert HF not in [r.url.host for r in h.hosts.seen]

    def test_given_only_the_same_provider_left_when_silent_then_no_hedge_starts(self) -> None:
        h = make(
            {"SILICONFLOW_MODELS": f"{KOLORS},{ZIMAGE}", "IMAGEGEN_HEDGE_DELAY_S": "0.05", "IMAGEGEN_HEDGE_BUDGET": "1"}
        )
        h.hosts.on(SF, slow(0.3, status(500, {"message": "late"})), sf_ok)
        outcome = h.chain.start(req(providers=["siliconflow"], hedge=True), ctx(h.clock))
        assert outline(outcome) == [
            ("siliconflow", KOLORS, "failed", "server_error"),
            ("siliconflow", ZIMAGE, "succeeded", None),
        ]


class TestHangs:
    def test_given_a_timeout_when_the_provider_has_more_models_then_they_go_after_the_other_providers(self) -> None:
        # Given SiliconFlow's first model timing out, and Hugging Face failing once then serving
        h = make({"SILICONFLOW_MODELS": f"{KOLORS},{ZIMAGE}", "IMAGEGEN_HEDGE": "false"})
        h.hosts.on(SF, hangs, sf_ok)
        h.hosts.on(HF, status(500, {"error": "x"}), status(500, {"error": "x"}))
        # When a job runs
        outcome = h.chain.start(req(providers=["siliconflow", "huggingface"]), ctx(h.clock))
        # Then SiliconFlow's second model was tried last, not next
        assert outline(outcome) == [
            ("siliconflow", KOLORS, "failed", "timeout"),
            ("huggingface", "black-forest-labs/FLUX.1-dev", "failed", "server_error"),
            ("huggingface", "black-forest-labs/FLUX.1-schnell", "failed", "server_error"),
            ("siliconflow", ZIMAGE, "succeeded", None),
        ]

    def test_given_a_provider_that_just_hung_when_the_next_job_runs_then_it_goes_last_until_it_answers(self) -> None:
        h = make({"IMAGEGEN_HEDGE": "false", "IMAGEGEN_SUSPECT_S": "30"})
        h.hosts.on(SF, hangs)
        h.hosts.on(HF, png(), png())
        first = h.chain.start(req(providers=["siliconflow", "huggingface"]), ctx(h.clock))
        second = h.chain.start(req(providers=["siliconflow", "huggingface"]), ctx(h.clock))
        assert outline(first)[0] == ("siliconflow", KOLORS, "failed", "timeout")
        assert outline(second) == [("huggingface", "black-forest-labs/FLUX.1-dev", "succeeded", None)]
        h.clock.now += 31  # the suspicion lapses: SiliconFlow is first again
        h.hosts.on(SF, sf_ok)
        assert (
            outline(h.chain.start(req(providers=["siliconflow", "huggingface"]), ctx(h.clock)))[0][0] == "siliconflow"
        )


class TestLearnedTimeouts:
    def test_given_known_latencies_when_the_next_call_goes_out_then_its_timeout_is_three_p95s_within_bounds(
        self,
    ) -> None:
        # Given SiliconFlow answering in 2 s (on the test's clock), ten times
        h = make({"IMAGEGEN_HEDGE": "false", "SILICONFLOW_TIMEOUT_S": "60"})

        def two_seconds(request: httpx.Request) -> httpx.Response:
            h.clock.now += 2.0
            return sf_ok(request)

        h.hosts.on(SF, *[two_seconds] * 11)
        for _ in range(11):
            assert isinstance(h.chain.start(req(providers=["siliconflow"]), ctx(h.clock, 120)), ChainSucceeded)
        # Then the first calls had the configured 60 s, and the one after ten samples about 3 x 2 s
        timeouts = [r.extensions["timeout"]["read"] for r in h.hosts.seen if r.url.host == SF]
        assert timeouts[:10] == [60.0] * 10
        assert 3 * 2.0 / 1.25 <= timeouts[10] <= 3 * 2.0 * 1.25

    def test_given_fast_answers_when_learned_then_the_timeout_stays_at_the_floor(self) -> None:
        h = make({"IMAGEGEN_HEDGE": "false", "IMAGEGEN_TIMEOUT_FLOOR_S": "5"})
        h.hosts.on(SF, *[sf_ok] * 11)  # the clock does not move: every call took "0 s"
        for _ in range(11):
            h.chain.start(req(providers=["siliconflow"]), ctx(h.clock, 120))
        assert h.hosts.seen[-1].extensions["timeout"]["read"] == 5.0


class TestWaiting:
    def test_given_every_breaker_open_when_the_job_has_time_then_it_waits_for_the_first_to_reopen(self) -> None:
        # Given SiliconFlow's breaker opened just now (60 s cool-down) and no other provider
        store = InMemoryBreakerStore()
        store.open("siliconflow", SF_SCOPE, 1000.0, expected="closed")
        h = make({"IMAGEGEN_BREAKER_COOLDOWN_S": "60"}, breaker=store)
        # When a job that may start again within the hour runs
        outcome = h.chain.start(req(providers=["siliconflow"]), waiting_ctx(h.clock, latest_start=h.clock.now + 3000))
        # Then it waits until the cool-down ends, with the skip recorded
        assert isinstance(outcome, ChainWaiting)
        assert (outcome.reason, outcome.until) == ("breaker_open", 1060.0)
        assert outline(outcome) == [("siliconflow", KOLORS, "skipped", "breaker_open")]
        assert h.hosts.seen == []

    def test_given_every_breaker_open_past_the_deadline_when_run_then_the_job_fails_and_says_why(self) -> None:
        store = InMemoryBreakerStore()
        store.open("siliconflow", SF_SCOPE, 1000.0, expected="closed")
        h = make({"IMAGEGEN_BREAKER_COOLDOWN_S": "600"}, breaker=store)
        outcome = h.chain.start(req(providers=["siliconflow"]), waiting_ctx(h.clock, latest_start=h.clock.now + 100))
        assert isinstance(outcome, ChainFailed)
        assert outcome.error.code == "all_providers_failed"
        assert outcome.error.hint is not None and "after this job's deadline" in outcome.error.hint

    def test_given_a_job_that_may_not_wait_when_every_breaker_is_open_then_it_fails_as_before(self) -> None:
        store = InMemoryBreakerStore()
        store.open("siliconflow", SF_SCOPE, 1000.0, expected="closed")
        h = make(breaker=store)
        outcome = h.chain.start(req(providers=["siliconflow"]), ctx(h.clock))
        assert isinstance(outcome, ChainFailed)
        assert outcome.error.hint == "Every provider is cooling down after repeated failures; retry in a minute."

    def test_given_one_provider_failing_and_one_cooling_when_run_then_the_job_waits_for_the_cooling_one(self) -> None:
        store = InMemoryBreakerStore()
        store.open("siliconflow", SF_SCOPE, 1000.0, expected="closed")
        h = make({"IMAGEGEN_BREAKER_COOLDOWN_S": "60", "IMAGEGEN_HEDGE": "false"}, breaker=store)
        h.hosts.on(HF, status(500, {"error": "x"}), status(500, {"error": "x"}))
        outcome = h.chain.start(
            req(providers=["siliconflow", "huggingface"]), waiting_ctx(h.clock, latest_start=h.clock.now + 3000)
        )
        assert isinstance(outcome, ChainWaiting)
        assert [a.outcome for a in outcome.attempts] == ["skipped", "failed", "failed"]

    def test_given_a_retry_after_when_the_next_job_comes_then_it_waits_for_the_key_until_then(self) -> None:
        # Given a 429 with Retry-After: 40 (too long to retry in the run), on a rate-limited provider
        h = make({"IMAGEGEN_HEDGE": "false"})
        h.hosts.on(SF, status(429, {"message": "Request was rejected due to rate limiting."}, {"retry-after": "40"}))
        first = h.chain.start(req(providers=["siliconflow"]), waiting_ctx(h.clock, latest_start=h.clock.now + 3000))
        # When the next job comes
        second = h.chain.start(req(providers=["siliconflow"]), waiting_ctx(h.clock, latest_start=h.clock.now + 3000))
        # Then the first failed on the 429 and the second waits for the key's Retry-After, without a call
        assert isinstance(first, ChainFailed)
        assert isinstance(second, ChainWaiting)
        assert (second.reason, second.until) == ("rate_limited", h.clock.now + 40)
        assert len(h.hosts.seen) == 1

    def test_given_a_low_rpm_when_jobs_come_at_once_then_the_extra_ones_wait_for_a_token(self) -> None:
        rates = MemoryRateStore()
        h = make({"SILICONFLOW_RPM": "6", "IMAGEGEN_HEDGE": "false"})
        h.chain.deps.limits.store = rates
        h.hosts.on(SF, sf_ok)
        served = h.chain.start(req(providers=["siliconflow"]), waiting_ctx(h.clock, latest_start=h.clock.now + 3000))
        limited = h.chain.start(req(providers=["siliconflow"]), waiting_ctx(h.clock, latest_start=h.clock.now + 3000))
        assert isinstance(served, ChainSucceeded)
        assert isinstance(limited, ChainWaiting)
        assert (limited.reason, limited.until) == ("rate_limited", h.clock.now + 10)


class TestCreditRefusals:
    def test_given_a_single_402_when_recorded_then_the_deployment_key_stays_usable(self) -> None:
        store = MemoryKeyStore()
        h = make({"IMAGEGEN_HEDGE": "false"}, keys=store)
        h.hosts.on(SF, status(402, {"message": "insufficient balance for this request"}), sf_ok)
        first = h.chain.start(req(providers=["siliconflow"]), ctx(h.clock))
        second = h.chain.start(req(providers=["siliconflow"]), ctx(h.clock))
        assert outline(first) == [("siliconflow", KOLORS, "failed", "payment_required")]
        assert isinstance(second, ChainSucceeded)
        assert store.deployment == {}

    def test_given_402s_from_three_jobs_when_recorded_then_the_key_is_marked_and_a_check_is_asked_for(self) -> None:
        # Given a key refused for credit in three different jobs
        store = MemoryKeyStore()
        rechecks: list[tuple[str, str, str, int]] = []
        h = make({"IMAGEGEN_HEDGE": "false"}, keys=store)
        h.chain.deps.keys._recheck = lambda *args: rechecks.append(args)  # type: ignore[attr-defined]
        h.hosts.on(SF, *[status(402, {"message": "insufficient balance"})] * 4)
        for job in ("job-a", "job-a", "job-b"):
            h.chain.start(req(providers=["siliconflow"]), RunContext(job, "user-1", h.clock.now + 60))
        assert store.deployment == {}  # job-a twice is one job
        h.chain.start(req(providers=["siliconflow"]), RunContext("job-c", "user-1", h.clock.now + 60))
        # Then the deployment key is out of credit, and a key check comes in two minutes
        (health,) = store.deployment.values()
        assert health.status == "out_of_credit"
        assert health.detail is not None and "3 different jobs" in health.detail
        assert rechecks == [("user-1", "siliconflow", "deployment", 120)]
