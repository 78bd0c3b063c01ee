"""Each provider's key check against the double speaking its real bodies: ok, invalid, out_of_credit, unreachable."""

from __future__ import annotations

import socket

import httpx
import pytest
from imagegen.keys.check import KeyChecker, build_request, new_client, parse_response
from imagegen.providers.horde import KEYCHECK_CLIENT_AGENT
from imagegen.providers.settings import ProvidersSettings
from pydantic import SecretStr

from tests.doubles.keycheck import KeyCheckDouble

pytestmark = pytest.mark.integration

KEY = {
    "siliconflow": "sk-checkMeSiliconFlow0001",
    "huggingface": "hf_checkMeHuggingFace0001",
    "horde": "checkMeHorde_0001",
    "pollinations": "sk_checkMePollinations0001",
    "tavily": "tvly-dev-checkMeTavily0001",
}


def _checker(double: KeyCheckDouble, timeout: float = 0.5) -> KeyChecker:
    # The key-check hosts come from the providers' own settings, as in every function.
    return KeyChecker(new_client(timeout), ProvidersSettings.from_environ(double.env))


@pytest.mark.parametrize(
    ("provider", "answer", "status", "detail"),
    [
        ("siliconflow", "ok", "ok", "balance 88.88"),
        ("siliconflow", "zero_balance", "ok", "balance 0 (free models only)"),
        ("siliconflow", "out_of_credit", "out_of_credit", "balance -0.50"),
        ("siliconflow", "invalid", "invalid", "rejected by SiliconFlow (HTTP 401)"),
        ("siliconflow", "server_error", "unreachable", "provider error: HTTP 503"),
        ("siliconflow", "throttled", None, "rate limited by the key-check endpoint (HTTP 429)"),
        ("huggingface", "ok", "ok", "user alice, token role fineGrained"),
        ("huggingface", "invalid", "invalid", "Hugging Face says: invalid user token (HTTP 401)"),
        ("huggingface", "server_error", "unreachable", "provider error: HTTP 500"),
        ("huggingface", "throttled", None, "rate limited by the key-check endpoint (HTTP 429)"),
        ("horde", "ok", "ok", "user alice#4711, kudos 1520.5"),
        ("horde", "invalid", "invalid", "AI Horde does not know this key (UserNotFound)"),
        ("horde", "server_error", "unreachable", "provider error: HTTP 503"),
        ("pollinations", "ok", "ok", "balance 42.5 pollen"),
        ("pollinations", "out_of_credit", "out_of_credit", "balance 0 pollen"),
        ("pollinations", "invalid", "invalid", "rejected by Pollinations (HTTP 401)"),
        (
            "pollinations",
            "forbidden",
            "ok",
            "key accepted; it lacks the account:balance permission, so the balance is unknown",
        ),
        ("pollinations", "server_error", "unreachable", "provider error: HTTP 500"),
        ("tavily", "ok", "ok", "Researcher: 150/1000 credits used"),
        ("tavily", "plan_spent", "out_of_credit", "Researcher: 1000/1000 credits used"),
        ("tavily", "out_of_credit", "out_of_credit", "Tavily: plan usage limit exceeded (HTTP 432)"),
        ("tavily", "invalid", "invalid", "rejected by Tavily (HTTP 401)"),
        ("tavily", "server_error", "unreachable", "provider error: HTTP 500"),
    ],
)
def test_given_provider_answer_when_key_checked_then_outcome_and_detail(
    keycheck: KeyCheckDouble, provider: str, answer: str, status: str | None, detail: str
):
    keycheck.respond(answer, provider=provider)

    result = _checker(keycheck).check(provider, SecretStr(KEY[provider]))

    assert (result.status, result.detail) == (status, detail)
    # The key went to that provider's endpoint, and only there.
    assert [(seen.provider, seen.key) for seen in keycheck.seen] == [(provider, KEY[provider])]


@pytest.mark.parametrize("provider", ["siliconflow", "huggingface", "horde", "pollinations", "tavily"])
def test_given_endpoint_hangs_when_key_checked_then_unreachable_not_invalid(keycheck: KeyCheckDouble, provider: str):
    keycheck.respond("hang", provider=provider)

    result = _checker(keycheck, timeout=0.2).check(provider, SecretStr(KEY[provider]))

    assert (result.status, result.detail) == ("unreachable", "the key-check endpoint timed out")


def test_given_nothing_listening_when_key_checked_then_unreachable_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ProvidersSettings.from_environ({"SILICONFLOW_BASE_URL": f"http://127.0.0.1:{port}/v1"})

    result = KeyChecker(new_client(0.5), settings).check("siliconflow", SecretStr(KEY["siliconflow"]))

    assert (result.status, result.detail) == ("unreachable", "could not reach the key-check endpoint (ConnectError)")


def test_given_tavily_plan_spent_but_paygo_left_when_checked_then_ok():
    body = {
        "key": {"usage": 10, "limit": None},
        "account": {
            "current_plan": "Bootstrap",
            "plan_usage": 1000,
            "plan_limit": 1000,
            "paygo_usage": 5,
            "paygo_limit": 100,
        },
    }
    result = parse_response("tavily", httpx.Response(200, json=body))

    assert (result.status, result.detail) == ("ok", "Bootstrap: 1000/1000 credits used")


def test_given_each_provider_when_request_built_then_key_only_in_that_providers_auth_header():
    settings = ProvidersSettings.defaults()

    built = {provider: build_request(provider, SecretStr(key), settings) for provider, key in KEY.items()}

    assert {p: str(r.url) for p, r in built.items()} == {
        "siliconflow": "https://api.siliconflow.com/v1/user/info",
        "huggingface": "https://huggingface.co/api/whoami-v2",
        "horde": "https://aihorde.net/api/v2/find_user",
        "pollinations": "https://gen.pollinations.ai/account/balance",
        "tavily": "https://api.tavily.com/usage",
    }
    assert built["horde"].headers["apikey"] == KEY["horde"]
    assert built["horde"].headers["Client-Agent"] == KEYCHECK_CLIENT_AGENT
    assert "authorization" not in built["horde"].headers
    for provider in ("siliconflow", "huggingface", "pollinations", "tavily"):
        assert built[provider].headers["Authorization"] == f"Bearer {KEY[provider]}"
        assert KEY[provider] not in str(built[provider].url)
