"""The real chain over the provider doubles with ChainKeys: a user's own key is used, a bad one is skipped."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from imagegen import wiring
from imagegen.chain import Chain
from imagegen.chain.wiring import build_chain
from imagegen.generation import ChainFailed, ChainSucceeded, RunContext
from imagegen.keys.chain_keys import ChainKeys
from imagegen.media.fetch import SafeFetcher
from imagegen.models import ImageRequest
from imagegen.settings import KeySettings

from tests.doubles.keys import SF_KEY
from tests.doubles.siliconflow import SiliconFlowDouble
from tests.integration.keys_and_health.conftest import KeysEnv

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration


def _ctx(user: str) -> RunContext:
    return RunContext(job_id="job-keys", user_id=user, deadline=time.monotonic() + 10)


def _request() -> ImageRequest:
    return ImageRequest(prompt="a red fox in snow", width=512, height=512, providers=["siliconflow"])


def _chain(
    keys_env: KeysEnv, environ: dict[str, str], http: httpx.Client, fetcher: SafeFetcher
) -> tuple[ChainKeys, Chain]:
    """The chain as the worker builds it: one settings tree from the function's environment (the doubles'
    URLs), the worker's key port, the breaker table on moto."""
    keys_env.set(**environ)
    settings = KeySettings.from_env(os.environ)
    keys = wiring.chain_keys(settings)
    chain = build_chain(
        settings.providers, keys=keys, fetcher=fetcher, breaker=wiring.breaker_store(settings), http=http
    )
    return keys, chain


def test_given_only_a_user_key_when_chain_runs_then_that_users_key_is_sent_and_others_have_none(
    call_api,
    keys_env: KeysEnv,
    doubles_environ: dict[str, str],
    provider_http: httpx.Client,
    safe_fetcher: SafeFetcher,
    siliconflow_double: SiliconFlowDouble,
):
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": SF_KEY})
    environ = {name: value for name, value in doubles_environ.items() if name != "SILICONFLOW_API_KEY"}
    _, chain = _chain(keys_env, environ, provider_http, safe_fetcher)

    alice = chain.start(_request(), _ctx("alice"))
    bob = chain.start(_request(), _ctx("bob"))

    assert isinstance(alice, ChainSucceeded)
    assert alice.image.provider == "siliconflow"
    assert {call.headers.get("authorization") for call in siliconflow_double.server.calls("POST")} == {
        f"Bearer {SF_KEY}"
    }
    assert isinstance(bob, ChainFailed)
    assert bob.error.code == "no_providers_configured"
    assert {attempt.error_class for attempt in bob.attempts} == {"no_key"}


def test_given_user_key_found_invalid_when_chain_runs_then_link_skipped_with_the_reason(
    call_api,
    keys_env: KeysEnv,
    doubles_environ: dict[str, str],
    provider_http: httpx.Client,
    safe_fetcher: SafeFetcher,
    siliconflow_double: SiliconFlowDouble,
):
    keys_env.double.respond("invalid", key=SF_KEY)
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": SF_KEY})
    _, chain = _chain(keys_env, doubles_environ, provider_http, safe_fetcher)

    outcome = chain.start(_request().model_copy(update={"providers": ["siliconflow", "placeholder"]}), _ctx("alice"))

    assert isinstance(outcome, ChainSucceeded)
    assert outcome.image.provider == "placeholder"
    skipped = [(a.provider, a.outcome, a.error_class, a.message) for a in outcome.attempts if a.outcome == "skipped"]
    assert skipped
    assert set(skipped) == {
        ("siliconflow", "skipped", "key_invalid", "the user key is invalid per the last check"),
    }
    # The deployment's SiliconFlow key was not used in the user's stead: the double saw no generation call.
    assert siliconflow_double.server.calls() == []


def test_given_user_key_refused_by_the_provider_when_chain_runs_then_key_marked_invalid_and_skipped_next_time(
    call_api,
    keys_env: KeysEnv,
    doubles_environ: dict[str, str],
    provider_http: httpx.Client,
    safe_fetcher: SafeFetcher,
    siliconflow_double: SiliconFlowDouble,
):
    # Given a user key that the last health check passed, but that SiliconFlow's generation endpoint refuses (401)
    refused = "sk-" + "r" * 40
    keys_env.double.respond("ok", key=refused)
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": refused})
    keys, chain = _chain(keys_env, doubles_environ, provider_http, safe_fetcher)
    request = _request().model_copy(update={"providers": ["siliconflow", "placeholder"]})

    # When one run meets the 401, and a later invocation runs again
    first = chain.start(request, _ctx("alice"))
    keys.begin_invocation()
    second = chain.start(request, _ctx("alice"))

    # Then the first fell through, the key is recorded invalid, and the second skipped it without a call
    assert isinstance(first, ChainSucceeded)
    assert (first.attempts[0].provider, first.attempts[0].outcome, first.attempts[0].status_code) == (
        "siliconflow",
        "failed",
        401,
    )
    listed = call_api("GET", "/v1/keys").body["items"]
    assert [(item["provider"], item["health"]["status"]) for item in listed] == [("siliconflow", "invalid")]
    assert listed[0]["health"]["detail"] == "siliconflow answered 401"
    assert isinstance(second, ChainSucceeded)
    assert (second.attempts[0].provider, second.attempts[0].outcome, second.attempts[0].error_class) == (
        "siliconflow",
        "skipped",
        "key_invalid",
    )
    assert len(siliconflow_double.server.calls("POST")) == 1
    assert refused not in str(listed)
