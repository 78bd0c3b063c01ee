"""Pure parts of keys and quotas: formats, provider names, skip reasons, reset times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from imagegen.api.keys import KeyPut
from imagegen.errors import NotFound, ValidationFailed
from imagegen.jobs.quota import next_reset, quota_day
from imagegen.keys.chain_keys import ChainKeys
from imagegen.keys.formats import check_key_format, key_provider, last4
from imagegen.keys.types import KeyHealth, ResolvedKey
from pydantic import SecretStr, ValidationError


@pytest.mark.parametrize(
    ("provider", "key"),
    [
        ("siliconflow", "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL"),
        ("huggingface", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
        ("horde", "Ab1_-Cd2Ef3Gh4Ij5Kl6Mn"),
        ("pollinations", "sk_live0123456789abcdef"),
        ("pollinations", "pk_pub0123456789abcdef"),
        ("tavily", "tvly-dev-0123456789abcdefABCDEF"),
    ],
)
def test_given_well_formed_key_when_format_checked_then_accepted(provider, key):
    check_key_format(provider, key)


@pytest.mark.parametrize(
    ("provider", "key", "expected"),
    [
        ("siliconflow", "hf_notASiliconFlowKey123", "expected a SiliconFlow API key: sk- followed by"),
        ("siliconflow", "sk-short", "expected a SiliconFlow API key: sk- followed by"),
        ("huggingface", "sk-notAHuggingFaceToken1", "expected a Hugging Face token: hf_ followed by"),
        ("tavily", "tvly_wrongSeparator12345", "expected a Tavily API key: tvly- followed by"),
        ("horde", "short", "expected an AI Horde API key: 10-64 characters"),
        ("horde", "has spaces in the key", "expected an AI Horde API key: 10-64 characters"),
        ("horde", "x" * 65, "expected an AI Horde API key: 10-64 characters"),
        ("pollinations", "rk_notAPollinationsKey", "expected a Pollinations key: sk_ (secret) or pk_"),
    ],
)
def test_given_malformed_key_when_format_checked_then_422_names_api_key_and_never_echoes_it(provider, key, expected):
    with pytest.raises(ValidationFailed) as refused:
        check_key_format(provider, key)

    assert refused.value.message.startswith(f"api_key: {expected}")
    assert refused.value.details[0]["field"] == "api_key"
    assert key not in refused.value.message


def test_given_anonymous_horde_key_when_format_checked_then_422_although_it_matches_the_charset():
    with pytest.raises(ValidationFailed) as refused:
        check_key_format("horde", "0000000000")

    assert refused.value.details == [
        {
            "field": "api_key",
            "message": "expected an AI Horde API key: 10-64 characters of A-Z a-z 0-9 _ - "
            "(not the anonymous 0000000000)",
        }
    ]


def test_given_unknown_provider_name_when_parsed_then_not_found_listing_the_known_ones():
    with pytest.raises(NotFound) as missing:
        key_provider("placeholder")

    assert missing.value.hint == (
        "providers that take keys: siliconflow, huggingface, fal, replicate, horde, pollinations, tavily"
    )


def test_given_key_with_surrounding_whitespace_when_parsed_then_stripped_and_last4_from_the_key():
    body = KeyPut.model_validate({"api_key": "  sk-abcdefgh1234\n"})

    assert body.api_key.get_secret_value() == "sk-abcdefgh1234"
    assert last4(body.api_key.get_secret_value()) == "1234"


def test_given_key_not_a_string_when_parsed_then_refused():
    with pytest.raises(ValidationError):
        KeyPut.model_validate({"api_key": 12345678901})


def test_given_resolved_keys_when_asked_then_skip_reasons_name_source_status_and_detail():
    at = datetime(2026, 11, 22, tzinfo=UTC)
    bad = KeyHealth(status="invalid", detail="HTTP 401", checked_at=at)
    unreachable = KeyHealth(status="unreachable", detail="timed out", checked_at=at)

    assert ResolvedKey("user", SecretStr("k"), bad).skip_reason == "user key invalid (HTTP 401)"
    assert ResolvedKey("deployment", SecretStr("k"), unreachable).skip_reason is None
    assert ResolvedKey("keyless", None, None).usable is True
    assert ResolvedKey(None, None, None).skip_reason == "no key configured"


def test_given_late_evening_when_quota_day_asked_then_utc_day_and_reset_at_next_midnight():
    now = datetime(2026, 11, 22, 23, 59, 30, tzinfo=UTC)

    assert quota_day(now) == "2026-11-22"
    assert next_reset(now) == datetime(2026, 11, 23, tzinfo=UTC)


class _Resolvers:
    """Counts the resolvers ChainKeys asks for; each resolves every provider to a fixed deployment key."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> Any:
        self.made += 1
        made = self.made

        class Resolver:
            def resolve(self, user_id: str, provider: str) -> ResolvedKey:
                at = datetime(2026, 11, 22, tzinfo=UTC)
                health = KeyHealth(status="out_of_credit", detail=None, checked_at=at)
                return ResolvedKey("deployment", SecretStr(f"sk-key{made}"), health if provider == "tavily" else None)

        return Resolver()


def test_given_chain_keys_when_invocations_begin_or_cache_ages_then_a_fresh_resolver_is_used():
    resolvers, now = _Resolvers(), [0.0]
    keys = ChainKeys(resolvers, max_age_seconds=60, monotonic=lambda: now[0])

    first = keys.resolve("alice", "siliconflow")
    keys.begin_invocation()
    second = keys.resolve("alice", "siliconflow")
    now[0] = 61.0
    aged = keys.resolve("alice", "siliconflow")

    assert [k.key.get_secret_value() for k in (first, second, aged) if k.key] == ["sk-key1", "sk-key2", "sk-key3"]
    assert first.source == "deployment"
    tavily = keys.resolve("alice", "tavily")
    assert (tavily.health.status if tavily.health else None, tavily.usable) == ("out_of_credit", False)
    assert aged.health is None
