"""GET /v1/providers: the chain as this caller would get it, before anything is generated."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from imagegen.adapters.breaker_store import DynamoBreakerStore
from imagegen.keys.types import key_scope
from imagegen.models import utcnow
from pydantic import SecretStr

from tests.integration.keys_and_health.conftest import KeysEnv
from tests.integration.keys_and_health.test_scheduled import _run_scheduled

pytestmark = pytest.mark.integration

USER_SF = "sk-Al1ceProvidersKey000001"
DEPLOY_HF = "hf_DeploymentProvidersTok01"


@pytest.fixture(autouse=True)
def _default_chain(keys_env: KeysEnv) -> None:
    # The suite's environment runs the offline placeholder only; these tests look at the deployed default chain.
    keys_env.set(IMAGEGEN_PROVIDERS="siliconflow,huggingface,horde,pollinations")


def _breaker(keys_env: KeysEnv, provider: str, source: str, state: str, open_until: dict[str, str] | None) -> None:
    item = {"pk": {"S": f"BREAKER#{provider}#{source}"}, "sk": {"S": "BREAKER"}, "state": {"S": state}}
    if open_until:
        item["open_until"] = open_until
    keys_env.aws.client("dynamodb").put_item(TableName=keys_env.aws.table, Item=item)


def _links(answer) -> list[tuple]:
    return [(i["provider"], i["key_source"], i["would_try"], i["reason"]) for i in answer.body["items"]]


def test_given_no_keys_when_providers_listed_then_keyless_links_tried_and_others_say_which_key(
    call_api, keys_env: KeysEnv
):
    answer = call_api("GET", "/v1/providers")

    assert answer.status == 200
    assert _links(answer) == [
        (
            "siliconflow",
            None,
            False,
            "no key: PUT /v1/keys/siliconflow, or the deployment sets SILICONFLOW_API_KEY",
        ),
        ("huggingface", None, False, "no key: PUT /v1/keys/huggingface, or the deployment sets HF_TOKEN"),
        ("horde", "keyless", True, "no key needed (anonymous / keyless access)"),
        ("pollinations", "keyless", True, "no key needed (anonymous / keyless access)"),
    ]
    assert all(i["breaker"] == {"state": "closed", "open_until": None} for i in answer.body["items"])
    assert answer.body["hint"] is None


def test_given_nothing_usable_when_providers_listed_then_hint_names_the_keys_to_set(call_api, keys_env: KeysEnv):
    keys_env.set(IMAGEGEN_PROVIDERS="siliconflow,huggingface")

    answer = call_api("GET", "/v1/providers")

    assert [i["would_try"] for i in answer.body["items"]] == [False, False]
    assert answer.body["hint"] == (
        "no provider can be tried: store a working key with PUT /v1/keys/{provider}, or have the operator set it "
        "in the provider keys secret, for any of: siliconflow (SILICONFLOW_API_KEY), huggingface (HF_TOKEN)"
    )


def test_given_user_and_deployment_keys_with_health_and_breakers_when_listed_then_each_link_explained(
    call_api, keys_env: KeysEnv
):
    keys_env.set(HF_TOKEN=DEPLOY_HF, IMAGEGEN_PROVIDERS="siliconflow,huggingface,horde,pollinations,placeholder")
    keys_env.double.respond("out_of_credit", key=USER_SF)
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": USER_SF})
    opened = time.time()
    store = DynamoBreakerStore(keys_env.aws.table, keys_env.aws.client("dynamodb"))
    store.open("horde", "keyless", opened, expected="closed")  # the chain's own breaker store opens it
    until = datetime.fromtimestamp(opened + 60, UTC)
    # Pollinations' breaker opened 65 s ago: its 60 s cool-down is over, so it reads half-open and the next call is
    # a trial (no call has claimed it yet).
    store.open("pollinations", "keyless", opened - 65, expected="closed")

    answer = call_api("GET", "/v1/providers")

    items = {i["provider"]: i for i in answer.body["items"]}
    assert _links(answer) == [
        ("siliconflow", "user", False, "user key out_of_credit (balance -0.50)"),
        ("huggingface", "deployment", True, "deployment key, not checked yet"),
        ("horde", "keyless", False, f"circuit breaker open until {until.isoformat()}"),
        (
            "pollinations",
            "keyless",
            True,
            "no key needed (anonymous / keyless access); circuit breaker half-open: the next call is a trial",
        ),
        ("placeholder", "keyless", True, "offline placeholder image (needs no key)"),
    ]
    assert items["siliconflow"]["health"]["detail"] == "balance -0.50"
    assert items["horde"]["breaker"]["state"] == "open"
    assert items["pollinations"]["breaker"] == {"state": "half_open", "open_until": None}
    assert answer.body["hint"] is None
    assert USER_SF not in json.dumps(answer.body) and DEPLOY_HF not in json.dumps(answer.body)


def test_given_deployment_key_checked_when_listed_then_status_shown_but_not_its_detail(call_api, keys_env: KeysEnv):
    keys_env.set(HF_TOKEN=DEPLOY_HF, KEYCHECK_INTERVAL_SECONDS="0")
    keys_env.double.respond("invalid", key=DEPLOY_HF)
    _run_scheduled()
    answer = call_api("GET", "/v1/providers", user="bob")

    hf = answer.body["items"][1]
    assert (hf["key_source"], hf["would_try"], hf["reason"]) == ("deployment", False, "deployment key invalid")
    assert (hf["health"]["status"], hf["health"]["detail"]) == ("invalid", None)


def test_given_alice_key_when_bob_lists_providers_then_he_does_not_get_it(call_api, keys_env: KeysEnv):
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": USER_SF})

    alice = call_api("GET", "/v1/providers").body["items"][0]
    bob = call_api("GET", "/v1/providers", user="bob").body["items"][0]

    assert (alice["key_source"], alice["would_try"]) == ("user", True)
    assert (bob["key_source"], bob["would_try"]) == (None, False)


def test_given_half_open_breaker_with_a_trial_call_out_when_listed_then_not_tried_until_the_probe_ends(
    call_api, keys_env: KeysEnv
):
    probe_until = utcnow() + timedelta(seconds=90)
    _breaker(keys_env, "horde", "keyless", "half_open", None)
    keys_env.aws.client("dynamodb").update_item(
        TableName=keys_env.aws.table,
        Key={"pk": {"S": "BREAKER#horde#keyless"}, "sk": {"S": "BREAKER"}},
        UpdateExpression="SET probe_until = :until",
        ExpressionAttributeValues={":until": {"N": repr(probe_until.timestamp())}},
    )

    horde = call_api("GET", "/v1/providers").body["items"][2]

    assert (horde["would_try"], horde["breaker"]["state"]) == (False, "half_open")
    assert horde["reason"] == f"circuit breaker half-open, a trial call is out until {probe_until.isoformat()}"


def test_given_stored_mappings_and_a_listing_when_providers_listed_then_routes_and_live_models_are_shown(
    call_api, keys_env: KeysEnv
):
    # Given the deployment's keys, a stored mapping for FLUX.1-dev (none yet for schnell), a cooling fal-ai route,
    # and SiliconFlow's last listing with one model since said gone
    from imagegen.adapters.key_store import KeyStore
    from imagegen.adapters.route_maps import DynamoRouteMapStore
    from imagegen.catalogs import StoredCatalog
    from imagegen.keys.types import KeyHealth
    from imagegen.providers.base import CatalogEntry

    deploy_sf = "sk-DeploymentProvidersKey01"
    keys_env.set(HF_TOKEN=DEPLOY_HF, SILICONFLOW_API_KEY=deploy_sf, IMAGEGEN_PROVIDERS="siliconflow,huggingface")
    ddb = keys_env.aws.client("dynamodb")
    entries = (
        CatalogEntry("replicate", "black-forest-labs/flux-dev", "live", "text-to-image"),
        CatalogEntry("fal-ai", "fal-ai/flux/dev", "live", "text-to-image"),
        CatalogEntry("wavespeed", "wavespeed-ai/flux-dev", "staging", "text-to-image"),
    )
    DynamoRouteMapStore(keys_env.aws.table, ddb).put(
        "huggingface", "black-forest-labs/FLUX.1-dev", StoredCatalog(entries, 1_700_000_000.0)
    )
    listing = KeyHealth(
        status="ok",
        detail="balance 1",
        checked_at=utcnow(),
        models=("Kwai-Kolors/Kolors", "Qwen/Qwen-Image"),
        gone=("Qwen/Qwen-Image",),
    )
    KeyStore(keys_env.aws.table, ddb, keys_env.aws.client("kms"), None).record_deployment_health(
        "siliconflow", SecretStr(deploy_sf), listing
    )
    DynamoBreakerStore(keys_env.aws.table, ddb).open(
        "huggingface/fal-ai", key_scope("deployment", key=SecretStr(DEPLOY_HF)) or "", time.time(), expected="closed"
    )

    answer = call_api("GET", "/v1/providers")

    # Then SiliconFlow shows its listing; Hugging Face its routes per default model, in the order they are tried
    sf, hf = answer.body["items"]
    assert (sf["live_models"], sf["gone_models"], sf["routes"]) == (
        ["Kwai-Kolors/Kolors", "Qwen/Qwen-Image"],
        ["Qwen/Qwen-Image"],
        None,
    )
    assert [(r["model"], r["route"], r["provider_model"], r["breaker"]["state"]) for r in hf["routes"]] == [
        ("black-forest-labs/FLUX.1-dev", "fal-ai", "fal-ai/flux/dev", "open"),
        ("black-forest-labs/FLUX.1-dev", "replicate", "black-forest-labs/flux-dev", "closed"),
        ("black-forest-labs/FLUX.1-schnell", None, None, "closed"),
    ]
    assert hf["routes"][0]["reason"] == "live in the mapping read at 2023-11-14T22:13:20+00:00"
    assert "not been read yet" in hf["routes"][2]["reason"]
    assert hf["live_models"] is None


def _alice_own_key_cooling(call_api, keys_env: KeysEnv) -> None:
    """alice stores her own SiliconFlow key, and its breaker (scoped to her key's version) is open."""
    call_api("PUT", "/v1/keys/siliconflow", body={"api_key": USER_SF})
    version = keys_env.aws.client("dynamodb").get_item(
        TableName=keys_env.aws.table, Key={"pk": {"S": "USER#alice"}, "sk": {"S": "KEY#siliconflow"}}
    )["Item"]["version"]["S"]
    store = DynamoBreakerStore(keys_env.aws.table, keys_env.aws.client("dynamodb"))
    store.open("siliconflow", f"user:alice:{version}", time.time(), expected="closed")


def test_given_alice_own_key_breaker_open_when_each_lists_providers_then_only_alice_sees_it(
    call_api, keys_env: KeysEnv
):
    # Given alice's own SiliconFlow key, whose breaker is open, and bob on the deployment's key
    keys_env.set(SILICONFLOW_API_KEY="sk-DeploymentProvidersKey01")
    _alice_own_key_cooling(call_api, keys_env)

    # When both list the chain
    alice = call_api("GET", "/v1/providers").body["items"][0]
    bob = call_api("GET", "/v1/providers", user="bob").body["items"][0]

    # Then alice's own breaker governs her chain only; bob's deployment key is not cooling down
    assert (alice["key_source"], alice["breaker"]["state"], alice["would_try"]) == ("user", "open", False)
    assert (bob["key_source"], bob["breaker"]["state"], bob["would_try"]) == ("deployment", "closed", True)


def test_given_a_video_chain_when_providers_listed_then_video_links_show_their_keys_and_breakers(
    call_api, keys_env: KeysEnv
):
    # Given the video chain fal then SiliconFlow, alice's own SiliconFlow key with its breaker open, no fal key
    keys_env.set(VIDEO_PROVIDERS="fal,siliconflow")
    _alice_own_key_cooling(call_api, keys_env)

    # When alice lists the chain
    body = call_api("GET", "/v1/providers").body

    # Then the video chain is listed in its own order, each link with the key and breaker its calls would use
    video = [(i["provider"], i["key_source"], i["breaker"]["state"], i["would_try"]) for i in body["video"]]
    assert video == [("fal", None, "closed", False), ("siliconflow", "user", "open", False)]
    assert body["video"][0]["reason"] == "no key: PUT /v1/keys/fal, or the deployment sets FAL_KEY"
    assert all(item["latency"] is None for item in body["video"])
    assert [i["provider"] for i in body["items"]] == ["siliconflow", "huggingface", "horde", "pollinations"]
