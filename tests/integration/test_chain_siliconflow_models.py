"""SiliconFlow's live models: the key check lists them, the chain tries the configured ones that are listed, and a
model SiliconFlow says does not exist is marked gone until the next listing. Keys and health live in the table on
moto's server (adapters/key_store.py), SiliconFlow is its double; plus the hardening cases found in review."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from imagegen.adapters.deployment_keys import EnvDeploymentKeys
from imagegen.adapters.key_store import KeyStore
from imagegen.chain import Chain
from imagegen.generation import ChainOutcome, ChainSucceeded, RunContext
from imagegen.keys.chain_keys import ChainKeys
from imagegen.keys.check import KeyChecker
from imagegen.keys.health import HealthService
from imagegen.keys.resolver import KeyResolver
from imagegen.media.fetch import SafeFetcher
from imagegen.models import ImageRequest
from imagegen.providers import REGISTRY, siliconflow
from imagegen.providers.settings import ProvidersSettings
from pydantic import SecretStr

from tests.conftest import Aws
from tests.doubles.keys import SF_KEY
from tests.doubles.server import Reply
from tests.doubles.siliconflow import SiliconFlowDouble, broken_gzip_reply

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration

KOLORS, ZIT = "Kwai-Kolors/Kolors", "Tongyi-MAI/Z-Image-Turbo"


class Metrics:
    def key_checked(self, provider: str, source: str, status: str) -> None:
        return None


class Deployment:
    """The deployment's SiliconFlow key with its health in the table: checked by the schedule's code, used by the
    chain through the worker's key path."""

    def __init__(self, aws: Aws, double: SiliconFlowDouble, http: httpx.Client, fetcher: SafeFetcher, **env: str):
        self.settings = ProvidersSettings.from_environ(
            {
                "SILICONFLOW_API_KEY": SF_KEY,
                "SILICONFLOW_BASE_URL": double.base_url,
                "SILICONFLOW_TIMEOUT_S": "3",
                **env,
            }
        )
        self.store = KeyStore(aws.table, aws.client("dynamodb"), aws.client("kms"), None)
        self.health = HealthService(
            KeyChecker(http, self.settings), self.store, self.store, Metrics(), interval_seconds=3600
        )
        keys = ChainKeys(lambda: KeyResolver(self.store, EnvDeploymentKeys(self.settings), self.store))
        self._http, self._fetcher, self._keys = http, fetcher, keys

    def check(self) -> Any:
        return self.health.check_deployment_key("siliconflow", SecretStr(SF_KEY), force=True)

    def run(self, registry: Any = None, **request: Any) -> ChainOutcome:
        # Each run is a worker invocation: keys and their health are read afresh, as the worker handler does.
        self._keys.begin_invocation()
        chain = Chain(self.settings, self._http, self._fetcher, keys=self._keys, registry=registry or REGISTRY)
        asked = ImageRequest.model_validate(
            {"prompt": "a red fox", "width": 512, "height": 512, "providers": ["siliconflow", "placeholder"], **request}
        )
        return chain.start(asked, RunContext(job_id="j", user_id="u", deadline=time.monotonic() + 20))


def outline(outcome: ChainOutcome) -> list[tuple[str, str | None, str, str | None]]:
    return [(a.provider, a.model, a.outcome, a.error_class) for a in outcome.attempts]


@pytest.fixture
def deployment(aws: Aws, siliconflow_double: SiliconFlowDouble, provider_http: httpx.Client, safe_fetcher: SafeFetcher):
    return Deployment(aws, siliconflow_double, provider_http, safe_fetcher)


def generations(double: SiliconFlowDouble) -> list[str]:
    return [call.json()["model"] for call in double.server.calls("POST", "/images/generations")]


class TestListing:
    def test_given_kolors_retired_when_the_key_is_checked_then_the_listing_is_stored_and_kolors_skipped(
        self, deployment: Deployment, siliconflow_double: SiliconFlowDouble
    ) -> None:
        # Given SiliconFlow no longer lists Kolors, and the key's check has run
        siliconflow_double.retire(KOLORS)
        health = deployment.check()

        # When a job runs with the default models
        outcome = deployment.run(steps=20, guidance=5.0, seed=4, negative_prompt="blur")

        # Then Kolors is skipped with its reason and Z-Image-Turbo, listed, serves the job
        assert health.status == "ok" and health.models is not None
        assert KOLORS not in health.models and ZIT in health.models
        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome) == [
            ("siliconflow", KOLORS, "skipped", "model_not_listed"),
            ("siliconflow", ZIT, "succeeded", None),
        ]
        assert generations(siliconflow_double) == [ZIT]
        [sent] = siliconflow_double.server.calls("POST", "/images/generations")
        assert sent.json() == {"model": ZIT, "prompt": "a red fox", "image_size": "512x512", "seed": 4}
        assert outcome.attempts[1].dropped_params == ["negative_prompt", "steps", "guidance"]
        [listing] = siliconflow_double.server.calls("GET", "/models")
        assert (listing.query["type"], listing.query["sub_type"]) == ("image", "text-to-image")

    def test_given_the_listing_fails_when_the_key_is_checked_then_no_listing_and_every_model_is_tried(
        self, deployment: Deployment, siliconflow_double: SiliconFlowDouble
    ) -> None:
        siliconflow_double.server.enqueue(Reply.json(500, {"message": "down"}), method="GET", path_contains="/models")
        health = deployment.check()

        outcome = deployment.run()

        assert (health.status, health.models) == ("ok", None)
        assert outline(outcome) == [("siliconflow", KOLORS, "succeeded", None)]


class TestGone:
    def test_given_no_listing_when_a_model_does_not_exist_then_it_is_marked_gone_until_the_next_listing(
        self, deployment: Deployment, siliconflow_double: SiliconFlowDouble
    ) -> None:
        # Given a key never checked, and Kolors retired: generation answers "Model does not exist"
        siliconflow_double.retire(KOLORS)

        first = deployment.run()
        second = deployment.run()

        # Then the first run learns it (and Z-Image-Turbo serves), the second skips Kolors without asking
        assert outline(first) == [
            ("siliconflow", KOLORS, "failed", "model_gone"),
            ("siliconflow", ZIT, "succeeded", None),
        ]
        assert outline(second) == [
            ("siliconflow", KOLORS, "skipped", "model_gone"),
            ("siliconflow", ZIT, "succeeded", None),
        ]
        assert generations(siliconflow_double) == [KOLORS, ZIT, ZIT]
        stored = deployment.store.deployment_health("siliconflow", SecretStr(SF_KEY))
        assert stored is not None and (stored.status, stored.gone) == ("ok", (KOLORS,))

        # When Kolors comes back and the next check lists it, the mark is gone and Kolors serves again
        siliconflow_double.models.add(KOLORS)
        listed = deployment.check()
        third = deployment.run()

        assert (listed.gone, KOLORS in (listed.models or ())) == ((), True)
        assert outline(third) == [("siliconflow", KOLORS, "succeeded", None)]

    @pytest.mark.parametrize("status", [400, 404])
    def test_given_either_reading_of_model_does_not_exist_when_run_then_model_gone(
        self, deployment: Deployment, siliconflow_double: SiliconFlowDouble, status: int
    ) -> None:
        siliconflow_double.retire(KOLORS)
        siliconflow_double.missing_model_status = status

        outcome = deployment.run()

        assert outline(outcome)[0] == ("siliconflow", KOLORS, "failed", "model_gone")
        assert outcome.attempts[0].status_code == status


class TestHardening:
    def test_given_a_broken_gzip_200_when_run_then_bad_response_falls_through_to_the_next_link(
        self, deployment: Deployment, siliconflow_double: SiliconFlowDouble
    ) -> None:
        siliconflow_double.server.enqueue(broken_gzip_reply(), method="POST")

        outcome = deployment.run(providers=["siliconflow", "placeholder"])

        assert isinstance(outcome, ChainSucceeded)
        assert outline(outcome)[:2] == [
            ("siliconflow", KOLORS, "failed", "bad_response"),
            ("siliconflow", ZIT, "succeeded", None),
        ]
        assert outcome.attempts[0].status_code == 200
        assert "could not be decoded (DecodingError)" in (outcome.attempts[0].message or "")

    def test_given_an_adapter_that_trips_over_the_answer_when_run_then_bad_response_not_an_exception(
        self, deployment: Deployment, siliconflow_double: SiliconFlowDouble
    ) -> None:
        def broken(response: httpx.Response, plan: Any) -> Any:
            return response.json()["no such field"]["url"]  # a parser bug: KeyError on a good answer

        registry = {**REGISTRY, "siliconflow": replace(siliconflow.SPEC, parse_response=broken)}

        outcome = deployment.run(registry=registry, providers=["siliconflow", "placeholder"], model=KOLORS)

        assert isinstance(outcome, ChainSucceeded) and outcome.image.provider == "placeholder"
        assert next((a.provider, a.outcome, a.error_class, a.status_code) for a in outcome.attempts) == (
            "siliconflow",
            "failed",
            "bad_response",
            200,
        )
        assert outcome.attempts[0].message == "the answer could not be read (KeyError)"


def test_given_a_users_own_key_when_a_model_does_not_exist_then_the_mark_lands_on_that_key_only(
    aws: Aws, siliconflow_double: SiliconFlowDouble, provider_http: httpx.Client, safe_fetcher: SafeFetcher
) -> None:
    # Given alice's own SiliconFlow key, stored encrypted, and Kolors retired at SiliconFlow
    from datetime import UTC, datetime

    kms_key = aws.client("kms").create_key(Description="user keys")["KeyMetadata"]["KeyId"]
    store = KeyStore(aws.table, aws.client("dynamodb"), aws.client("kms"), kms_key)
    store.put("alice", "siliconflow", SecretStr(SF_KEY), now=datetime.now(UTC))
    settings = ProvidersSettings.from_environ({"SILICONFLOW_BASE_URL": siliconflow_double.base_url})
    keys = ChainKeys(lambda: KeyResolver(store, EnvDeploymentKeys(settings), store))
    siliconflow_double.retire(KOLORS)
    asked = ImageRequest.model_validate({"prompt": "a fox", "width": 512, "height": 512, "providers": ["siliconflow"]})

    def run_for(user: str) -> ChainOutcome:
        keys.begin_invocation()
        chain = Chain(settings, provider_http, safe_fetcher, keys=keys)
        return chain.start(asked, RunContext(job_id="j", user_id=user, deadline=time.monotonic() + 20))

    first, second = run_for("alice"), run_for("alice")

    # Then her key's record carries the mark (her next run skips Kolors), and it was written for her key's version
    assert [(a.model, a.outcome, a.error_class) for a in first.attempts][:2] == [
        (KOLORS, "failed", "model_gone"),
        (ZIT, "succeeded", None),
    ]
    assert (second.attempts[0].model, second.attempts[0].outcome, second.attempts[0].error_class) == (
        KOLORS,
        "skipped",
        "model_gone",
    )
    stored = store.get("alice", "siliconflow")
    assert stored is not None and stored.health is not None and stored.health.gone == (KOLORS,)
