"""Issue 3's chain behaviours end to end through the local stack.

HTTP API -> SQS -> worker -> the real provider chain -> the provider doubles on 127.0.0.1 (reached through the
`*_BASE_URL` settings, keys from the environment) -> signed result URLs on the storage double. Each test starts
its own stack, so breaker state, queues and invocation counts belong to that test alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from imagegen.keys.types import key_scope
from imagegen.local import LocalStack
from imagegen.media.imaging import dhash_bytes
from pydantic import SecretStr

from tests.doubles.horde import HordeDouble
from tests.doubles.huggingface import HuggingFaceDouble
from tests.doubles.images import blank, branded_placeholder
from tests.doubles.keys import ALL_KEYS, HF_TOKEN, HORDE_KEY, POLLINATIONS_KEY, SF_KEY
from tests.doubles.pollinations import PollinationsDouble, queue_full
from tests.doubles.server import Reply
from tests.doubles.siliconflow import OVERLOADED, RATE_LIMITED, SiliconFlowDouble
from tests.doubles.storage import StorageDouble

pytest_plugins = ["tests.doubles.fixtures", "tests.doubles.local_stack"]
pytestmark = pytest.mark.integration

DEV, SCHNELL = "black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell"
KOLORS = "Kwai-Kolors/Kolors"
PROMPT = "a lighthouse at dusk"
# Long enough that a slow invocation is never redelivered mid-test (which would change invocation counts);
# nothing here relies on a redelivery.
VISIBILITY_TIMEOUT = "10"

Snapshot = tuple[str, str | None, str | None]


@dataclass
class Api:
    """The local stack seen as a client sees it: JSON over HTTP with the stack's bearer token."""

    stack: LocalStack
    client: httpx.Client

    def create(self, **request: Any) -> str:
        answer = self.client.post("/v1/images", json={"prompt": PROMPT, "width": 64, "height": 64, **request})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def get_raw(self, job_id: str, *, wait: int | None = None) -> httpx.Response:
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        answer = self.client.get(f"/v1/images/{job_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        return answer

    def finished(self, job_id: str) -> dict[str, Any]:
        """The job once terminal: long-polls (`Prefer: wait`) rather than sleeping in the test."""
        for _ in range(3):
            job: dict[str, Any] = self.get_raw(job_id, wait=20).json()
            if job["status"] not in ("queued", "running"):
                return job
        raise AssertionError(f"job {job_id} still {job['status']} after 60 s")

    @property
    def worker_invocations(self) -> int:
        return self.stack.function("WorkerFunction").invocations


StartApi = Callable[..., Api]


def api_starter(local_stack_factory: Callable[..., LocalStack], base_env: dict[str, str]) -> Iterator[StartApi]:
    """Starts the repository's stack with `base_env` (the providers pointed at their doubles); `env` overrides per test.
    A generator for a fixture to yield from: its clients are closed after the test."""
    clients: list[httpx.Client] = []

    def start(**env: str) -> Api:
        stack = local_stack_factory(
            env_overrides={
                **base_env,
                # Signed result links on the storage double are plain http on 127.0.0.1.
                "MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
                "WORKER_DEADLINE_SECONDS": "10",
                "IMAGEGEN_LOCAL_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT,
                "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "2",
                **env,
            },
            # The scheduled function (key checks, sweeper) would only be a second actor on these jobs.
            run_schedules=False,
        )
        client = httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=httpx.Timeout(30.0)
        )
        clients.append(client)
        return Api(stack, client)

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def start_api(local_stack_factory: Callable[..., LocalStack], doubles_environ: dict[str, str]) -> Iterator[StartApi]:
    """Starts the repository's stack with every provider pointed at its double; `env` overrides per test."""
    yield from api_starter(local_stack_factory, doubles_environ)


def outline(job: dict[str, Any]) -> list[tuple[str, str | None, str, str | None]]:
    return [(a["provider"], a["model"], a["outcome"], a["error_class"]) for a in job["attempts"]]


def wait_for(condition: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class TestModelFallbacksAndParameters:
    def test_given_dev_gated_when_a_job_runs_then_schnell_serves_with_4_steps_and_guidance_0(
        self, start_api: StartApi, hf_double: HuggingFaceDouble
    ) -> None:
        hf_double.gated = {DEV}
        api = start_api()

        job = api.finished(api.create(providers=["huggingface"], steps=28, guidance=3.5, seed=11))

        assert (job["status"], job["provider"], job["model"]) == ("succeeded", "huggingface", SCHNELL)
        assert outline(job) == [
            ("huggingface", DEV, "failed", "forbidden"),
            ("huggingface", SCHNELL, "succeeded", None),
        ]
        assert job["attempts"][0]["status_code"] == 401
        assert job["attempts"][1]["dropped_params"] == ["steps", "guidance"]
        assert "huggingface does not take: steps, guidance" in job["warnings"]
        dev_call, schnell_call = hf_double.server.calls("POST")
        assert dev_call.path == f"/hf-inference/models/{DEV}"
        assert dev_call.json()["parameters"] == {
            "seed": 11,
            "num_inference_steps": 28,
            "guidance_scale": 3.5,
            "width": 64,
            "height": 64,
        }
        assert schnell_call.path == f"/hf-inference/models/{SCHNELL}"
        assert schnell_call.json() == {
            "inputs": PROMPT,
            "parameters": {"seed": 11, "num_inference_steps": 4, "guidance_scale": 0, "width": 64, "height": 64},
        }
        assert (job["image"]["width"], job["image"]["height"], job["image"]["content_type"]) == (64, 64, "image/png")
        assert api.worker_invocations == 1

    def test_given_a_lora_in_extra_when_a_job_runs_on_huggingface_then_it_is_dropped_and_recorded_on_the_attempt(
        self, start_api: StartApi, hf_double: HuggingFaceDouble
    ) -> None:
        api = start_api()

        job = api.finished(api.create(providers=["huggingface"], extra={"lora": "pixel-art", "lora_scale": 0.7}))

        assert job["status"] == "succeeded"
        assert outline(job) == [("huggingface", DEV, "succeeded", None)]
        assert job["attempts"][0]["dropped_params"] == ["extra.lora", "extra.lora_scale"]
        assert "huggingface does not take: extra.lora, extra.lora_scale" in job["warnings"]
        (sent,) = hf_double.server.calls("POST")
        assert sent.json() == {"inputs": PROMPT, "parameters": {"width": 64, "height": 64}}


class TestFallThrough:
    def test_given_siliconflow_answers_500_when_a_job_runs_then_the_next_provider_serves(
        self, start_api: StartApi, siliconflow_double: SiliconFlowDouble, hf_double: HuggingFaceDouble
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(500, {"code": 50000, "message": "Unknown error", "data": None}))
        api = start_api(SILICONFLOW_MODELS=KOLORS)

        job = api.finished(api.create())

        assert (job["status"], job["provider"], job["model"]) == ("succeeded", "huggingface", DEV)
        assert outline(job) == [
            ("siliconflow", KOLORS, "failed", "server_error"),
            ("huggingface", DEV, "succeeded", None),
        ]
        assert (job["attempts"][0]["status_code"], job["attempts"][0]["message"]) == (500, "Unknown error")
        assert len(siliconflow_double.server.calls("POST")) == 1
        assert len(hf_double.server.calls("POST")) == 1

    def test_given_a_hanging_provider_when_a_job_runs_then_the_next_provider_serves_within_the_deadline(
        self, start_api: StartApi, siliconflow_double: SiliconFlowDouble
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(200, {}, delay=60))  # far past the job's 10 s deadline
        api = start_api(SILICONFLOW_MODELS=KOLORS, SILICONFLOW_TIMEOUT_S="0.5")

        job = api.finished(api.create())

        assert (job["status"], job["provider"]) == ("succeeded", "huggingface")
        assert outline(job) == [("siliconflow", KOLORS, "failed", "timeout"), ("huggingface", DEV, "succeeded", None)]
        assert job["attempts"][0]["message"] == "no answer within 0.5 s"
        assert job["attempts"][0]["status_code"] is None
        # Bounded by the attempt timeout, not by the hang: far inside the 10 s job deadline.
        assert job["attempts"][0]["latency_ms"] < 10_000
        assert api.worker_invocations == 1

    def test_given_a_429_with_retry_after_when_a_job_runs_then_the_same_link_is_retried_and_serves(
        self, start_api: StartApi, siliconflow_double: SiliconFlowDouble
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(429, RATE_LIMITED, {"retry-after": "1"}))
        api = start_api(SILICONFLOW_MODELS=SCHNELL)

        job = api.finished(api.create(providers=["siliconflow"]))

        assert (job["status"], job["provider"], job["model"]) == ("succeeded", "siliconflow", SCHNELL)
        assert outline(job) == [
            ("siliconflow", SCHNELL, "retried", "rate_limited"),
            ("siliconflow", SCHNELL, "succeeded", None),
        ]
        assert job["attempts"][0]["status_code"] == 429
        assert job["attempts"][0]["message"].startswith(f"{RATE_LIMITED['message']}; retrying in 1.")
        assert len(siliconflow_double.server.calls("POST")) == 2

    def test_given_a_blank_image_when_a_job_runs_then_it_fails_validation_and_the_next_provider_serves(
        self, start_api: StartApi, siliconflow_double: SiliconFlowDouble, storage: StorageDouble
    ) -> None:
        siliconflow_double.image_override = blank(64, 64, (255, 255, 255))
        api = start_api(SILICONFLOW_MODELS=SCHNELL)

        job = api.finished(api.create())

        assert outline(job) == [
            ("siliconflow", SCHNELL, "failed", "invalid_image"),
            ("huggingface", DEV, "succeeded", None),
        ]
        assert job["attempts"][0]["message"] == "blank or uniform image (grey stddev 0.0)"
        # The signed link was fetched as given: no Authorization header reached the storage double.
        assert [r.headers.get("authorization") for r in storage.requests] == [None]

    def test_given_pollinations_402_queue_full_then_its_placeholder_200_when_a_job_runs_then_both_fall_through(
        self, start_api: StartApi, pollinations_double: PollinationsDouble
    ) -> None:
        placeholder = branded_placeholder(64, 64)
        pollinations_double.server.enqueue(queue_full(), Reply(200, placeholder, {"content-type": "image/jpeg"}))
        api = start_api(POLLINATIONS_MODELS="flux,turbo", IMAGEGEN_PLACEHOLDER_HASHES=dhash_bytes(placeholder))

        job = api.finished(api.create(providers=["pollinations", "huggingface"]))

        assert (job["status"], job["provider"]) == ("succeeded", "huggingface")
        assert outline(job) == [
            ("pollinations", "flux", "failed", "rate_limited"),
            ("pollinations", "turbo", "failed", "invalid_image"),
            ("huggingface", DEV, "succeeded", None),
        ]
        assert job["attempts"][0]["status_code"] == 402
        assert job["attempts"][0]["message"].startswith("Queue full for IP: 127.0.0.1")
        assert job["attempts"][1]["message"] == "a known placeholder image, not a generated one"
        first = pollinations_double.server.calls("GET")[0]
        assert (first.path, first.query) == (
            f"/prompt/{PROMPT}",
            {"width": "64", "height": "64", "model": "flux", "nologo": "true"},
        )
        assert "authorization" not in first.headers  # keyless legacy host

    def test_given_every_provider_failing_when_a_job_runs_then_it_fails_with_one_aggregated_error(
        self,
        start_api: StartApi,
        siliconflow_double: SiliconFlowDouble,
        hf_double: HuggingFaceDouble,
        horde_double: HordeDouble,
        pollinations_double: PollinationsDouble,
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(503, OVERLOADED))
        hf_double.served = set()
        horde_double.server.enqueue(Reply.json(403, {"message": "Due to heavy demand...", "rc": "KudosUpfront"}))
        pollinations_double.server.enqueue(queue_full())
        api = start_api(SILICONFLOW_MODELS=KOLORS)

        job = api.finished(api.create())

        assert (job["status"], job["provider"], job["image"]) == ("failed", None, None)
        error = job["error"]
        assert error["code"] == "all_providers_failed"
        assert error["message"] == (
            "All 4 providers failed: "
            "siliconflow/Kwai-Kolors/Kolors: failed 503 overloaded "
            "(Model service overloaded. Please try again later.); "
            f"huggingface/{DEV}: failed 404 model_unavailable (Model {DEV} is not served by hf-inference); "
            f"huggingface/{SCHNELL}: failed 404 model_unavailable (Model {SCHNELL} is not served by hf-inference); "
            "horde: failed 403 payment_required (KudosUpfront: Due to heavy demand...); "
            "pollinations/flux: failed 402 rate_limited (Queue full for IP: 127.0.0.1 - 1 requests already queued "
            "(max: 1). Get unlimited access at https://enter.pollinations.ai)"
        )
        assert error["hint"] == "Retry later, add another provider to the chain, or check the keys named above."
        assert error["details"]["attempts"] == job["attempts"]
        assert outline(job) == [
            ("siliconflow", KOLORS, "failed", "overloaded"),
            ("huggingface", DEV, "failed", "model_unavailable"),
            ("huggingface", SCHNELL, "failed", "model_unavailable"),
            ("horde", None, "failed", "payment_required"),
            ("pollinations", "flux", "failed", "rate_limited"),
        ]
        assert api.worker_invocations == 1  # a failed chain is a settled job, not a redelivery


class TestBreakerAndHedging:
    def test_given_a_threshold_of_one_when_siliconflow_fails_once_then_the_next_job_skips_it(
        self, start_api: StartApi, siliconflow_double: SiliconFlowDouble
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(500, {"code": 50000, "message": "Unknown error", "data": None}))
        # A cool-down far longer than the test: the second job must find the breaker open.
        api = start_api(SILICONFLOW_MODELS=KOLORS, IMAGEGEN_BREAKER_THRESHOLD="1", IMAGEGEN_BREAKER_COOLDOWN_S="600")

        first = api.finished(api.create())
        second = api.finished(api.create())

        assert outline(first) == [
            ("siliconflow", KOLORS, "failed", "server_error"),
            ("huggingface", DEV, "succeeded", None),
        ]
        assert outline(second) == [
            ("siliconflow", KOLORS, "skipped", "breaker_open"),
            ("huggingface", DEV, "succeeded", None),
        ]
        item = api.stack.client("dynamodb").get_item(
            TableName=api.stack.physical_id("Table"),
            Key={
                "pk": {"S": f"BREAKER#siliconflow#{key_scope('deployment', key=SecretStr(SF_KEY))}"},
                "sk": {"S": "BREAKER"},
            },
        )["Item"]
        until = datetime.fromtimestamp(float(item["opened_at"]["N"]) + 600, UTC).isoformat(timespec="seconds")
        assert second["attempts"][0]["message"] == (
            f"skipped: circuit breaker open for siliconflow (deployment key) until {until}"
        )
        assert len(siliconflow_double.server.calls("POST")) == 1
        assert item["state"]["S"] == "open"

    def test_given_hedging_and_a_slow_first_provider_when_a_job_runs_then_the_hedge_wins_and_the_loser_is_recorded(
        self, start_api: StartApi, siliconflow_double: SiliconFlowDouble
    ) -> None:
        # The slow answer comes well after the 0.2 s hedge delay and well inside the 5 s attempt timeout.
        siliconflow_double.server.enqueue(Reply.json(500, {"message": "late"}, delay=3))
        # A fresh worker has made no calls yet: a budget of one hedge per call lets this first one go.
        api = start_api(
            SILICONFLOW_MODELS=KOLORS,
            SILICONFLOW_TIMEOUT_S="5",
            IMAGEGEN_HEDGE_DELAY_S="0.2",
            IMAGEGEN_HEDGE_BUDGET="1",
        )

        job = api.finished(api.create(hedge=True))

        assert (job["status"], job["provider"]) == ("succeeded", "huggingface")
        assert outline(job) == [
            ("siliconflow", KOLORS, "canceled", "hedge_lost"),
            ("huggingface", DEV, "succeeded", None),
        ]
        assert job["attempts"][0]["message"] == "hedged; huggingface answered first, this result is discarded"


class TestHordeAsync:
    def test_given_horde_when_a_job_runs_then_it_goes_running_with_delayed_checks_to_succeeded_without_sleeping(
        self, start_api: StartApi, horde_double: HordeDouble, storage: StorageDouble
    ) -> None:
        horde_double.checks_until_done = 2
        # Not done at the first check: wait_time 3 becomes the next check's DelaySeconds (the first uses the 2 s floor).
        horde_double.wait_time = 3
        api = start_api()
        sqs = api.stack.client("sqs")
        queue = api.stack.physical_id("JobsQueue")

        def delayed_messages() -> int:
            attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
            return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])

        job_id = api.create(providers=["horde"], width=100, height=70, negative_prompt="fog", seed=5)
        seen: list[Snapshot] = []
        delayed_while_pending: set[int] = set()

        def terminal() -> dict[str, Any] | None:
            job: dict[str, Any] = api.get_raw(job_id).json()
            last = job["attempts"][-1] if job["attempts"] else {}
            snapshot = (job["status"], last.get("outcome"), last.get("message"))
            if not seen or seen[-1] != snapshot:
                seen.append(snapshot)
            if last.get("outcome") == "pending":
                delayed_while_pending.add(delayed_messages())
            return job if job["status"] not in ("queued", "running") else None

        job = wait_for(terminal, timeout=30)

        pending = [s for s in seen if s[1] == "pending"]
        assert pending == [
            ("running", "pending", "queued at horde; checking again in 2 s"),
            ("running", "pending", "still queued after 1 check(s); checking again in 3 s"),
        ]
        assert seen[-1] == ("succeeded", "succeeded", "done after 2 check(s)")
        # While parked, the check was a delayed message on the jobs queue, not a worker waiting.
        assert 1 in delayed_while_pending
        # The Horde made 128x64; the job's image is the 100x70 asked for.
        image = job["image"]
        assert (job["provider"], image["width"], image["height"]) == ("horde", 100, 70)
        assert image["content_type"] == "image/webp"
        assert (image["source_width"], image["source_height"]) == (128, 64)
        assert "horde: size 100x70 -> 128x64" in job["warnings"]
        # One invocation to submit and one per check: none of them waited for the Horde.
        assert api.worker_invocations == 3
        (submit,) = horde_double.server.calls("POST", "/generate/async")
        assert submit.json()["params"] == {"width": 128, "height": 64, "n": 1, "seed": "5"}
        assert submit.json()["prompt"] == f"{PROMPT} ### fog"
        assert (submit.headers["apikey"], submit.headers["client-agent"]) == (
            HORDE_KEY,
            "imagegen:0.1.0:tests@example.invalid",
        )
        assert len(horde_double.server.calls("GET", "/generate/check/")) == 2
        assert len(horde_double.server.calls("GET", "/generate/status/")) == 1
        assert [r.headers.get("authorization") for r in storage.requests] == [None]

    def test_given_a_queued_horde_request_when_the_job_is_canceled_then_the_horde_gets_delete_and_nothing_revives_it(
        self, start_api: StartApi, horde_double: HordeDouble
    ) -> None:
        horde_double.checks_until_done = 1000  # never done: only the cancel can end this job
        api = start_api()
        job_id = api.create(providers=["horde"])
        wait_for(lambda: [a["outcome"] for a in api.get_raw(job_id).json()["attempts"]] == ["pending"])

        canceled = api.client.post(f"/v1/images/{job_id}/cancel")
        (remote,) = horde_double.jobs.values()
        wait_for(lambda: remote.canceled)
        # generate, cancel, and the check that was already queued (before or after the cancel, whichever came first).
        wait_for(lambda: api.worker_invocations == 3)

        assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
        (delete,) = horde_double.server.calls("DELETE")
        assert (delete.path, delete.headers["apikey"]) == (f"/api/v2/generate/status/{remote.id}", HORDE_KEY)
        assert remote.status_calls == 0
        assert api.get_raw(job_id).json()["status"] == "canceled"

    def test_given_a_censored_horde_generation_when_collected_then_the_job_is_not_a_success(
        self, start_api: StartApi, horde_double: HordeDouble
    ) -> None:
        horde_double.checks_until_done, horde_double.censored = 1, True
        api = start_api()

        job = api.finished(api.create(providers=["horde", "huggingface"]))

        assert (job["status"], job["error"]["code"]) == ("failed", "content_refused")
        assert outline(job) == [("horde", None, "failed", "content_policy")]
        assert api.worker_invocations == 2


class TestSecrets:
    def test_given_providers_that_echo_keys_when_a_job_fails_then_no_key_is_in_the_job_logs_or_stored_items(
        self,
        start_api: StartApi,
        siliconflow_double: SiliconFlowDouble,
        hf_double: HuggingFaceDouble,
        horde_double: HordeDouble,
        pollinations_double: PollinationsDouble,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        caplog.set_level(logging.DEBUG)
        # Providers that echo the key back in an error body must not get it into our output either.
        siliconflow_double.server.enqueue(Reply.json(500, {"message": f"upstream rejected {SF_KEY}"}))
        hf_double.server.enqueue(
            Reply.json(401, {"error": f"token {HF_TOKEN} invalid"}),
            Reply.json(500, {"error": f"x {HF_TOKEN}"}),
            path_prefix="/hf-inference/",
        )
        horde_double.server.enqueue(Reply.json(401, {"message": f"bad key {HORDE_KEY}", "rc": "InvalidAPIKey"}))
        pollinations_double.api_key = POLLINATIONS_KEY
        pollinations_double.server.enqueue(Reply.json(500, {"error": f"down for {POLLINATIONS_KEY}"}))
        api = start_api(SILICONFLOW_MODELS=KOLORS, POLLINATIONS_API_KEY=POLLINATIONS_KEY)

        job_id = api.create()
        job = api.finished(job_id)
        raw_job = api.get_raw(job_id).text
        listed = api.client.get("/v1/images").text
        stored = api.stack.client("dynamodb").scan(TableName=api.stack.physical_id("Table"))["Items"]
        captured = capsys.readouterr()

        assert job["status"] == "failed"
        assert [a["outcome"] for a in job["attempts"]] == ["failed"] * 5
        assert "upstream rejected ***" in job["error"]["message"]
        # Every record with all its fields (Powertools prints the `extra` ones): caplog sees each record whatever
        # stream Powertools' handler writes to (that stream is sys.stdout as of the first test that loaded it).
        records = [{**record.__dict__, "rendered": record.getMessage()} for record in caplog.records]
        # The chain's log lines and the worker's metrics print were captured, so the check below is not vacuous.
        assert [r["provider"] for r in records if r["rendered"] == "link failed"] == [
            "siliconflow",
            "huggingface",
            "huggingface",
            "horde",
            "pollinations",
        ]
        assert '"CloudWatchMetrics"' in captured.out
        haystack = "\n".join(
            [
                raw_job,
                listed,
                json.dumps(stored),
                json.dumps(records, default=repr),
                caplog.text,
                captured.out,
                captured.err,
            ]
        )
        assert [key for key in ALL_KEYS if key in haystack] == []
        # Each key went to its own provider, and only there.
        assert siliconflow_double.server.requests[0].headers["authorization"] == f"Bearer {SF_KEY}"
        assert hf_double.server.requests[0].headers["authorization"] == f"Bearer {HF_TOKEN}"
        assert horde_double.server.requests[0].headers["apikey"] == HORDE_KEY
        assert pollinations_double.server.requests[0].headers["authorization"] == f"Bearer {POLLINATIONS_KEY}"
