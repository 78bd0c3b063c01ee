"""PUT/GET/DELETE /v1/keys against moto's KMS and DynamoDB and the key-check double: encrypted, write-only, private."""

from __future__ import annotations

import base64
import json
import logging
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.integration.keys_and_health.conftest import KeysEnv

pytestmark = pytest.mark.integration

KEYS = {
    "siliconflow": "sk-Al1ceSiliconFlowSecret000000001",
    "huggingface": "hf_Al1ceHuggingFaceSecret00000001",
    "horde": "Al1ceHordeKey_000001",
    "pollinations": "sk_Al1cePollinationsSecret0001",
    "tavily": "tvly-dev-Al1ceTavilySecret0001",
}


def test_given_valid_key_when_put_then_answer_shows_last4_and_fresh_health_never_the_key(call_api, keys_env: KeysEnv):
    answer = call_api("PUT", "/v1/keys/siliconflow", body={"api_key": KEYS["siliconflow"]})

    assert answer.status == 200
    body = answer.body
    assert set(body) == {"provider", "last4", "health", "created_at", "updated_at"}
    assert (body["provider"], body["last4"]) == ("siliconflow", "0001")
    assert (body["health"]["status"], body["health"]["detail"]) == ("ok", "balance 88.88")
    assert body["created_at"] == body["updated_at"]
    assert KEYS["siliconflow"] not in json.dumps(body)
    assert [(seen.provider, seen.key) for seen in keys_env.double.seen] == [("siliconflow", KEYS["siliconflow"])]


def test_given_stored_key_when_item_read_raw_then_no_plaintext_and_only_its_own_context_decrypts(
    call_api, keys_env: KeysEnv
):
    call_api("PUT", "/v1/keys/huggingface", body={"api_key": KEYS["huggingface"]})

    item = keys_env.key_item("alice", "huggingface")
    assert item is not None
    ciphertext = item["ciphertext"]["B"]
    raw = json.dumps({name: str(value) for name, value in item.items()})
    secret = KEYS["huggingface"]
    assert secret not in raw
    assert secret.encode() not in ciphertext
    assert base64.b64encode(secret.encode()).decode() not in raw
    assert item["last4"] == {"S": "0001"}
    kms = keys_env.aws.client("kms")
    right = kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext={"user_id": "alice", "provider": "huggingface"})
    assert right["Plaintext"] == secret.encode()
    for wrong in ({"user_id": "bob", "provider": "huggingface"}, {"user_id": "alice", "provider": "tavily"}, {}):
        with pytest.raises(ClientError) as refused:
            kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=wrong)
        assert refused.value.response["Error"]["Code"] == "InvalidCiphertextException"


def test_given_two_keys_when_listed_then_provider_last4_and_health_only(call_api, keys_env: KeysEnv):
    keys_env.double.respond("invalid", provider="tavily")
    call_api("PUT", "/v1/keys/tavily", body={"api_key": KEYS["tavily"]})
    call_api("PUT", "/v1/keys/horde", body={"api_key": KEYS["horde"]})

    answer = call_api("GET", "/v1/keys")

    assert answer.status == 200
    items = answer.body["items"]
    assert answer.body["next_cursor"] is None
    assert [(i["provider"], i["last4"], i["health"]["status"], i["health"]["detail"]) for i in items] == [
        ("horde", "0001", "ok", "user alice#4711, kudos 1520.5"),
        ("tavily", "0001", "invalid", "rejected by Tavily (HTTP 401)"),
    ]
    text = json.dumps(answer.body)
    assert KEYS["tavily"] not in text
    assert KEYS["horde"] not in text
    assert "ciphertext" not in text


def test_given_alice_keys_when_bob_lists_or_deletes_then_he_sees_nothing(call_api, keys_env: KeysEnv):
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": KEYS["siliconflow"]})

    listed = call_api("GET", "/v1/keys", user="bob")
    deleted = call_api("DELETE", "/v1/keys/siliconflow", user="bob")

    assert listed.body == {"items": [], "next_cursor": None}
    assert (deleted.status, deleted.body["error"]["code"]) == (404, "not_found")
    assert [i["provider"] for i in call_api("GET", "/v1/keys").body["items"]] == ["siliconflow"]


def test_given_stored_key_when_deleted_then_204_gone_and_second_delete_404(call_api, keys_env: KeysEnv):
    call_api("PUT", "/v1/keys/pollinations", body={"api_key": KEYS["pollinations"]})

    first = call_api("DELETE", "/v1/keys/pollinations")
    second = call_api("DELETE", "/v1/keys/pollinations")

    assert first.status == 204
    assert keys_env.key_item("alice", "pollinations") is None
    assert call_api("GET", "/v1/keys").body["items"] == []
    assert second.status == 404
    assert second.body["error"] == {
        "code": "not_found",
        "message": "you have no pollinations key",
        "hint": "PUT /v1/keys/pollinations stores one",
    }


def test_given_key_replaced_when_put_again_then_new_last4_new_check_and_created_at_kept(call_api, keys_env: KeysEnv):
    first = call_api("PUT", "/v1/keys/siliconflow", body={"api_key": KEYS["siliconflow"]}).body
    keys_env.double.respond("invalid", key="sk-Al1ceSiliconFlowSecret00000NEW9")

    second = call_api("PUT", "/v1/keys/siliconflow", body={"api_key": "sk-Al1ceSiliconFlowSecret00000NEW9"}).body

    assert second["last4"] == "NEW9"
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] >= first["updated_at"]
    assert second["health"]["status"] == "invalid"
    assert keys_env.double.calls("siliconflow") == 2


@pytest.mark.parametrize(
    ("provider", "bad_key", "expected"),
    [
        ("siliconflow", "hf_notASiliconFlowKey123", "expected a SiliconFlow API key: sk- followed by"),
        ("horde", "0000000000", "expected an AI Horde API key: 10-64 characters"),
        ("pollinations", "rk_notAPollinationsKey", "expected a Pollinations key: sk_ (secret) or pk_ (publishable)"),
    ],
)
def test_given_malformed_key_when_put_then_422_names_api_key_and_what_was_expected(
    call_api, keys_env: KeysEnv, provider: str, bad_key: str, expected: str
):
    answer = call_api("PUT", f"/v1/keys/{provider}", body={"api_key": bad_key})

    assert answer.status == 422
    error = answer.body["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"api_key: {expected}")
    assert error["details"][0]["field"] == "api_key"
    assert error["details"][0]["message"].startswith(expected)
    if bad_key != "0000000000":  # the anonymous key is public and named in the message on purpose
        assert bad_key not in json.dumps(answer.body)
    assert keys_env.key_item("alice", provider) is None
    assert keys_env.double.seen == []


def test_given_unknown_field_or_missing_key_when_put_then_422_names_the_field(call_api, keys_env: KeysEnv):
    unknown = call_api("PUT", "/v1/keys/tavily", body={"api_key": KEYS["tavily"], "label": "mine"})
    missing = call_api("PUT", "/v1/keys/tavily", body={})

    assert (unknown.status, unknown.body["error"]["details"]) == (422, [{"field": "label", "message": "unknown field"}])
    assert KEYS["tavily"] not in json.dumps(unknown.body)
    assert missing.status == 422
    assert missing.body["error"]["details"][0]["field"] == "api_key"


@pytest.mark.parametrize(("method", "body"), [("PUT", {"api_key": "sk-whatever12345678"}), ("DELETE", None)])
def test_given_unknown_provider_when_called_then_404(call_api, keys_env: KeysEnv, method: str, body):
    answer = call_api(method, "/v1/keys/openai", body=body)

    assert answer.status == 404
    assert answer.body["error"]["code"] == "not_found"
    assert answer.body["error"]["message"] == "no key provider named 'openai'"


def test_given_kms_key_missing_when_put_then_503_without_key_or_ciphertext(call_api, keys_env: KeysEnv):
    keys_env.set(KEYS_KMS_KEY_ID=str(uuid.uuid4()))

    answer = call_api("PUT", "/v1/keys/siliconflow", body={"api_key": KEYS["siliconflow"]})

    assert answer.status == 503
    assert answer.body["error"] == {
        "code": "service_unavailable",
        "message": "stored provider keys are unavailable right now (the key service did not answer)",
        "hint": "try again in a minute",
    }
    assert keys_env.key_item("alice", "siliconflow") is None


def test_given_no_kms_key_configured_when_put_then_503_says_it_is_not_enabled(call_api, keys_env: KeysEnv):
    keys_env.monkeypatch.delenv("KEYS_KMS_KEY_ID")
    keys_env.set()

    answer = call_api("PUT", "/v1/keys/siliconflow", body={"api_key": KEYS["siliconflow"]})

    assert (answer.status, answer.body["error"]["code"]) == (503, "service_unavailable")
    assert answer.body["error"]["message"] == "storing your own provider keys is not enabled on this deployment"


def test_given_check_endpoint_hangs_when_put_then_stored_quickly_as_unreachable(call_api, keys_env: KeysEnv):
    keys_env.double.respond("hang", provider="horde")

    answer = call_api("PUT", "/v1/keys/horde", body={"api_key": KEYS["horde"]})

    assert answer.status == 200
    assert answer.body["health"]["status"] == "unreachable"
    assert answer.body["health"]["detail"] == "the key-check endpoint timed out"


def test_given_key_traffic_when_logs_captured_then_no_key_appears(call_api, keys_env: KeysEnv, caplog, capsys):
    caplog.set_level(logging.DEBUG, logger="imagegen")
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    keys_env.double.respond("invalid", provider="siliconflow")

    for provider, key in KEYS.items():
        call_api("PUT", f"/v1/keys/{provider}", body={"api_key": key})
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": "hf_wrongProviderKey00000"})
    call_api("GET", "/v1/keys")
    call_api("GET", "/v1/providers")

    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err
    assert "key check for siliconflow: invalid" in caplog.text
    for key in (*KEYS.values(), "hf_wrongProviderKey00000"):
        assert key not in text
