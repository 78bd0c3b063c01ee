"""The scheduled function keeps Hugging Face's provider mappings fresh in the table, after the key checks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from imagegen.adapters.route_maps import DynamoRouteMapStore
from imagegen.catalogs import StoredCatalog

from tests.conftest import ROOT, FakeLambdaContext, load_function
from tests.doubles.hf_router import DEV, SCHNELL, HfRouterDouble
from tests.doubles.storage import StorageDouble
from tests.integration.keys_and_health.conftest import KeysEnv

pytestmark = pytest.mark.integration

EVENT = json.loads((ROOT / "events" / "scheduled_event.json").read_text())


@pytest.fixture
def hub(keys_env: KeysEnv) -> Iterator[HfRouterDouble]:
    with StorageDouble() as storage, HfRouterDouble(storage, tokens=set()) as double:
        keys_env.set(HF_ENDPOINT=double.url, HF_MAPPING_REFRESH_SECONDS="3600")
        yield double


def _run() -> dict:
    return load_function("scheduled").lambda_handler(EVENT, FakeLambdaContext("ScheduledFunction", timeout_seconds=60))


def _store(keys_env: KeysEnv) -> DynamoRouteMapStore:
    return DynamoRouteMapStore(keys_env.aws.table, keys_env.aws.client("dynamodb"))


def test_given_no_stored_mapping_when_the_schedule_runs_then_each_configured_model_is_read_and_stored(
    keys_env: KeysEnv, hub: HfRouterDouble
):
    _run()

    store = _store(keys_env)
    assert sorted(store.models("huggingface")) == [DEV, SCHNELL]
    dev = store.get("huggingface", DEV)
    assert dev is not None and [e.route for e in dev.entries] == ["fal-ai", "replicate", "wavespeed"]
    # No deployment token here: the Hub is asked anonymously.
    assert all("authorization" not in call.headers for call in hub.calls("hub"))


def test_given_fresh_mappings_when_the_schedule_runs_again_then_the_hub_is_not_asked_and_old_ones_are_read_again(
    keys_env: KeysEnv, hub: HfRouterDouble
):
    _run()
    asked = len(hub.calls("hub"))
    _run()
    fresh = len(hub.calls("hub"))
    # A mapping read two hours ago (older than HF_MAPPING_REFRESH_SECONDS), with a route the Hub no longer lists
    store = _store(keys_env)
    old = store.get("huggingface", SCHNELL)
    assert old is not None
    store.put("huggingface", SCHNELL, StoredCatalog(old.entries[:1], time.time() - 7200))
    hub.set_status(SCHNELL, "fal-ai", "error")

    _run()

    assert (asked, fresh) == (2, 2)
    assert [call.path for call in hub.calls("hub")[fresh:]] == [f"/api/models/{SCHNELL}"]
    refreshed = store.get("huggingface", SCHNELL)
    assert refreshed is not None and len(refreshed.entries) == len(old.entries)
    assert (refreshed.entries[0].route, refreshed.entries[0].status) == ("fal-ai", "error")
