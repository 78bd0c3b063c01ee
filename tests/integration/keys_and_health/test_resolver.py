"""KeyResolver against moto (KMS, Secrets Manager, DynamoDB): user → deployment → keyless, bad keys reported."""

from __future__ import annotations

import json
import os
import time

import pytest
from imagegen import wiring
from imagegen.errors import ServiceUnavailable
from imagegen.keys.resolver import KeyResolver
from imagegen.models import utcnow
from imagegen.settings import KeySettings

from tests.integration.keys_and_health.conftest import KeysEnv

pytestmark = pytest.mark.integration

USER_SF = "sk-Al1ceOwnSiliconFlowKey0001"
DEPLOY_SF = "sk-DeploymentSiliconFlowKey0001"
DEPLOY_HF = "hf_DeploymentHuggingFaceToken01"


def _resolver() -> KeyResolver:
    return wiring.key_resolver(KeySettings.from_env(os.environ))


def _secret(keys_env: KeysEnv, value: dict[str, str]) -> str:
    name = f"imagegen/provider-keys-{keys_env.aws.table}"
    keys_env.aws.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))
    return name


def test_given_user_and_deployment_keys_when_resolved_then_user_first_then_deployment_then_keyless(
    call_api, keys_env: KeysEnv
):
    keys_env.set(SILICONFLOW_API_KEY=DEPLOY_SF, HF_TOKEN=DEPLOY_HF)
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": USER_SF})
    resolver = _resolver()

    alice_sf = resolver.resolve("alice", "siliconflow")
    bob_sf = resolver.resolve("bob", "siliconflow")
    alice_hf = resolver.resolve("alice", "huggingface")
    horde = resolver.resolve("alice", "horde")
    pollinations = resolver.resolve("alice", "pollinations")
    tavily = resolver.resolve("alice", "tavily")

    assert (alice_sf.source, alice_sf.key.get_secret_value(), alice_sf.health.status) == ("user", USER_SF, "ok")  # type: ignore[union-attr]
    assert (bob_sf.source, bob_sf.key.get_secret_value(), bob_sf.health) == ("deployment", DEPLOY_SF, None)  # type: ignore[union-attr]
    assert (alice_hf.source, alice_hf.key.get_secret_value()) == ("deployment", DEPLOY_HF)  # type: ignore[union-attr]
    assert (horde.source, horde.key, horde.usable) == ("keyless", None, True)
    assert (pollinations.source, pollinations.key, pollinations.usable) == ("keyless", None, True)
    assert (tavily.source, tavily.key, tavily.usable, tavily.skip_reason) == (None, None, False, "no key configured")


def test_given_invalid_user_key_when_resolved_then_reported_for_skipping_not_replaced(call_api, keys_env: KeysEnv):
    keys_env.set(SILICONFLOW_API_KEY=DEPLOY_SF)
    keys_env.double.respond("invalid", key=USER_SF)
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": USER_SF})

    resolved = _resolver().resolve("alice", "siliconflow")

    assert resolved.source == "user"
    assert resolved.usable is False
    assert resolved.skip_reason == "user key invalid (rejected by SiliconFlow (HTTP 401))"


def test_given_unreachable_check_when_resolved_then_key_still_usable(call_api, keys_env: KeysEnv):
    keys_env.double.respond("server_error", provider="siliconflow")
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": USER_SF})

    resolved = _resolver().resolve("alice", "siliconflow")

    assert (resolved.health.status, resolved.usable, resolved.skip_reason) == ("unreachable", True, None)  # type: ignore[union-attr]


def test_given_resolved_once_when_key_deleted_then_same_invocation_keeps_it_and_a_new_one_does_not(
    call_api, keys_env: KeysEnv
):
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": USER_SF})
    resolver = _resolver()
    first = resolver.resolve("alice", "siliconflow")

    call_api("DELETE", "/v1/keys/siliconflow")
    cached = resolver.resolve("alice", "siliconflow")
    resolver.clear()
    after_clear = resolver.resolve("alice", "siliconflow")

    assert first.source == cached.source == "user"
    assert after_clear.source is None
    assert _resolver().resolve("alice", "siliconflow").source is None


def test_given_chain_marks_key_out_of_credit_when_resolved_later_then_skipped_with_reason(call_api, keys_env: KeysEnv):
    keys_env.set(HF_TOKEN=DEPLOY_HF)
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": USER_SF})
    resolver = _resolver()
    resolver.resolve("alice", "siliconflow")

    resolver.mark("alice", "siliconflow", "out_of_credit", "HTTP 403 from images/generations", at=utcnow())
    resolver.mark("alice", "huggingface", "out_of_credit", "HTTP 402: monthly credits used", at=utcnow())

    same = resolver.resolve("alice", "siliconflow")
    fresh_sf = _resolver().resolve("alice", "siliconflow")
    fresh_hf = _resolver().resolve("bob", "huggingface")
    assert same.skip_reason == fresh_sf.skip_reason == "user key out_of_credit (HTTP 403 from images/generations)"
    assert fresh_hf.skip_reason == "deployment key out_of_credit (HTTP 402: monthly credits used)"
    listed = call_api("GET", "/v1/keys").body["items"][0]["health"]
    assert (listed["status"], listed["detail"]) == ("out_of_credit", "HTTP 403 from images/generations")


def test_given_deployment_key_marked_invalid_when_secret_rotated_then_new_key_is_not_judged_by_old_record(
    keys_env: KeysEnv,
):
    keys_env.set(SILICONFLOW_API_KEY=DEPLOY_SF)
    _resolver().mark("bob", "siliconflow", "invalid", "HTTP 401", at=utcnow())
    assert _resolver().resolve("bob", "siliconflow").usable is False

    keys_env.set(SILICONFLOW_API_KEY="sk-RotatedDeploymentKey00002")
    rotated = _resolver().resolve("bob", "siliconflow")

    assert (rotated.source, rotated.health, rotated.usable) == ("deployment", None, True)


def test_given_keys_secret_when_resolved_then_read_from_secrets_manager_by_provider_or_env_name(keys_env: KeysEnv):
    name = _secret(keys_env, {"siliconflow": DEPLOY_SF, "HF_TOKEN": DEPLOY_HF, "horde": "0000000000", "tavily": ""})
    keys_env.set(PROVIDER_KEYS_SECRET=name, SILICONFLOW_API_KEY="sk-EnvIsIgnoredWhenSecretIsSet01")
    resolver = _resolver()

    found = {p: resolver.resolve("bob", p) for p in ("siliconflow", "huggingface", "horde", "tavily")}

    assert found["siliconflow"].key.get_secret_value() == DEPLOY_SF  # type: ignore[union-attr]
    assert found["huggingface"].key.get_secret_value() == DEPLOY_HF  # type: ignore[union-attr]
    # The anonymous Horde key and an empty string are no keys at all.
    assert (found["horde"].source, found["horde"].key) == ("keyless", None)
    assert found["tavily"].source is None


def test_given_keys_secret_cached_when_rotated_then_old_value_until_max_age(keys_env: KeysEnv):
    name = _secret(keys_env, {"siliconflow": DEPLOY_SF})
    keys_env.set(PROVIDER_KEYS_SECRET=name, PROVIDER_KEYS_MAX_AGE_SECONDS="1")
    assert _resolver().resolve("bob", "siliconflow").key.get_secret_value() == DEPLOY_SF  # type: ignore[union-attr]

    keys_env.aws.client("secretsmanager").put_secret_value(
        SecretId=name, SecretString=json.dumps({"siliconflow": "sk-RotatedInTheSecret000002"})
    )
    cached = _resolver().resolve("bob", "siliconflow")
    time.sleep(1.1)
    fresh = _resolver().resolve("bob", "siliconflow")

    assert cached.key.get_secret_value() == DEPLOY_SF  # type: ignore[union-attr]
    assert fresh.key.get_secret_value() == "sk-RotatedInTheSecret000002"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("secret_value", "message"),
    [
        (None, "provider keys are unavailable right now (the secret store did not answer)"),
        ("not json", "provider keys are misconfigured on this deployment"),
        ('["a list"]', "provider keys are misconfigured on this deployment"),
    ],
)
def test_given_keys_secret_unreadable_when_resolved_then_service_unavailable_and_providers_503(
    call_api, keys_env: KeysEnv, secret_value: str | None, message: str
):
    name = f"imagegen/missing-{keys_env.aws.table}"
    if secret_value is not None:
        keys_env.aws.client("secretsmanager").create_secret(Name=name, SecretString=secret_value)
    keys_env.set(PROVIDER_KEYS_SECRET=name, IMAGEGEN_PROVIDERS="siliconflow,horde")

    with pytest.raises(ServiceUnavailable) as raised:
        _resolver().resolve("bob", "siliconflow")
    answer = call_api("GET", "/v1/providers", user="bob")

    assert raised.value.message == message
    assert (answer.status, answer.body["error"]["code"], answer.body["error"]["message"]) == (
        503,
        "service_unavailable",
        message,
    )
