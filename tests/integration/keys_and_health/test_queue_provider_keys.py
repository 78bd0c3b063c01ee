"""fal.ai and Replicate keys: PUT /v1/keys checks format and key against each double; GET /v1/providers lists both."""

from __future__ import annotations

import json

import pytest

from tests.doubles.fal import LOCKED_ADMIN, LOCKED_EXHAUSTED, FalDouble
from tests.doubles.keys import FAL_KEY, REPLICATE_TOKEN
from tests.doubles.replicate import ReplicateDouble
from tests.integration.keys_and_health.conftest import KeysEnv

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration


@pytest.fixture
def queues(keys_env: KeysEnv, fal_double: FalDouble, replicate_double: ReplicateDouble) -> KeysEnv:
    keys_env.set(
        FAL_QUEUE_URL=fal_double.queue_url,
        FAL_API_URL=fal_double.api_url,
        REPLICATE_BASE_URL=replicate_double.base_url,
        IMAGEGEN_PROVIDERS="fal,replicate",
    )
    return keys_env


@pytest.mark.parametrize(
    ("provider", "key", "status", "detail"),
    [
        ("fal", FAL_KEY, "ok", "key accepted; fal media never expire"),
        ("fal", "falUNKNOWNkeyid:falUNKNOWNsecret", "invalid", "fal does not know this key (HTTP 401)"),
        ("replicate", REPLICATE_TOKEN, "ok", "user alice"),
        ("replicate", "r8_UnknownToken000000000", "invalid", "Replicate does not know this token (HTTP 401)"),
    ],
)
def test_given_a_key_when_put_then_its_own_service_checks_it_at_once(
    call_api, queues: KeysEnv, fal_double: FalDouble, replicate_double: ReplicateDouble, provider, key, status, detail
):
    answer = call_api("PUT", f"/v1/keys/{provider}", body={"api_key": key})

    assert answer.status == 200
    assert (answer.body["provider"], answer.body["last4"]) == (provider, key[-4:])
    assert (answer.body["health"]["status"], answer.body["health"]["detail"]) == (status, detail)
    assert key not in json.dumps(answer.body)
    # The check went to that service's own key-check call, with the key in its own header.
    if provider == "fal":
        (check,) = fal_double.api_server.requests
        assert (check.path, check.headers["authorization"]) == ("/v1/storage/settings", f"Key {key}")
    else:
        (check,) = replicate_double.server.requests
        assert (check.path, check.headers["authorization"]) == ("/v1/account", f"Bearer {key}")


@pytest.mark.parametrize(("lock", "status"), [(LOCKED_EXHAUSTED, "out_of_credit"), (LOCKED_ADMIN, "invalid")])
def test_given_a_locked_fal_account_when_its_key_is_put_then_the_lock_decides(
    call_api, queues: KeysEnv, fal_double: FalDouble, lock: str, status: str
):
    fal_double.locked = lock

    answer = call_api("PUT", "/v1/keys/fal", body={"api_key": FAL_KEY})

    assert (answer.body["health"]["status"], answer.body["health"]["detail"]) == (
        status,
        f"User is locked. Reason: {lock}",
    )


@pytest.mark.parametrize(
    ("provider", "bad_key", "expected"),
    [
        ("fal", "not a key", "expected a fal.ai key: key_id:key_secret (or one string)"),
        ("replicate", "sk-notAReplicateToken000", "expected a Replicate API token: r8_ followed by"),
    ],
)
def test_given_a_malformed_key_when_put_then_422_names_api_key_and_nothing_is_checked(
    call_api, queues: KeysEnv, fal_double: FalDouble, replicate_double: ReplicateDouble, provider, bad_key, expected
):
    answer = call_api("PUT", f"/v1/keys/{provider}", body={"api_key": bad_key})

    assert answer.status == 422
    assert answer.body["error"]["message"].startswith(f"api_key: {expected}")
    assert bad_key not in json.dumps(answer.body)
    assert queues.key_item("alice", provider) is None
    assert fal_double.api_server.requests == [] and replicate_double.server.requests == []


def test_given_fal_and_replicate_in_the_chain_when_providers_listed_then_each_says_its_key(call_api, queues: KeysEnv):
    queues.set(FAL_KEY=FAL_KEY)
    call_api("PUT", "/v1/keys/replicate", body={"api_key": REPLICATE_TOKEN})

    answer = call_api("GET", "/v1/providers")

    assert answer.status == 200
    assert [(i["provider"], i["key_source"], i["would_try"]) for i in answer.body["items"]] == [
        ("fal", "deployment", True),
        ("replicate", "user", True),
    ]


def test_given_no_keys_when_providers_listed_then_the_variables_to_set_are_named(call_api, queues: KeysEnv):
    answer = call_api("GET", "/v1/providers")

    assert [i["reason"] for i in answer.body["items"]] == [
        "no key: PUT /v1/keys/fal, or the deployment sets FAL_KEY",
        "no key: PUT /v1/keys/replicate, or the deployment sets REPLICATE_API_TOKEN",
    ]
