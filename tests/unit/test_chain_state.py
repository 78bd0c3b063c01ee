"""The async pending state: a typed value whose stored form is versioned, and refused when it cannot be resumed."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from imagegen.chain import Link
from imagegen.chain.state import STATE_VERSION, BadChainState, PendingState
from imagegen.models import Attempt
from imagegen.providers import REGISTRY
from imagegen.providers.base import RemoteRequest


def _state() -> PendingState:
    return PendingState(
        provider="horde",
        remote_id="rid-1",
        key_source="keyless",
        user_id="alice",
        link_index=1,
        links=(Link("siliconflow", "Kwai-Kolors/Kolors"), Link("horde", None, model_dropped=True)),
        submitted_at=1000.5,
        checks=2,
        attempts=(
            Attempt(provider="siliconflow", model="Kwai-Kolors/Kolors", outcome="failed", error_class="server_error"),
            Attempt(provider="horde", outcome="pending", dropped_params=["model"]),
        ),
        warnings=("horde: size 1000x700 -> 1024x704",),
    )


def test_given_a_pending_state_when_stored_as_json_and_loaded_then_it_is_the_same_state() -> None:
    # Given a state as the chain parks it, When it goes through the job's JSON and back
    stored = json.loads(json.dumps(_state().dump()))
    loaded = PendingState.load(stored, REGISTRY)

    # Then nothing is lost, and the stored form names its version
    assert loaded == _state()
    assert stored["version"] == STATE_VERSION
    assert (loaded.link, loaded.pending_attempt) == (Link("horde", None, True), _state().attempts[1])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"version": 99}, "version 99"),
        ({"version": None}, "version None"),
        (
            {"links": [{"provider": "dalle", "model": None}], "link_index": 0},
            "links do not match this deployment's providers",
        ),
        ({"links": [["horde", None, False]]}, "AttributeError"),
        ({"link_index": 5}, "links do not match this deployment's providers"),
        ({"attempts": [{"provider": "horde"}]}, "ValidationError"),
        ({"remote_id": None, "submitted_at": "soon"}, "ValueError"),
    ],
)
def test_given_a_state_this_deployment_cannot_resume_when_loaded_then_refused_naming_why(
    change: dict[str, Any], reason: str
) -> None:
    stored = {**_state().dump(), **change}

    with pytest.raises(BadChainState) as refused:
        PendingState.load(stored, REGISTRY)

    assert str(refused.value) == reason


def test_given_the_urls_a_service_named_when_stored_and_loaded_then_the_remote_request_keeps_them() -> None:
    urls = {"check": "https://queue.fal.run/fal-ai/flux/requests/r/status", "cancel": "https://queue.fal.run/x/cancel"}
    state = dataclasses.replace(_state(), provider="fal", remote_id="r", remote_urls=urls)

    loaded = PendingState.load(json.loads(json.dumps(state.dump())), REGISTRY)

    assert loaded.remote == RemoteRequest("r", urls)


def test_given_a_state_stored_before_remote_urls_existed_when_loaded_then_it_resumes_without_them() -> None:
    stored = _state().dump()
    del stored["remote_urls"]

    assert PendingState.load(stored, REGISTRY).remote == RemoteRequest("rid-1", {})


@pytest.mark.parametrize("urls", [["https://x"], {"check": 5}, "https://x"])
def test_given_remote_urls_of_another_shape_when_loaded_then_refused(urls: Any) -> None:
    with pytest.raises(BadChainState, match="TypeError"):
        PendingState.load({**_state().dump(), "remote_urls": urls}, REGISTRY)


@pytest.mark.parametrize(
    ("provider", "wait_time", "delays"),
    [
        # Horde: its own wait_time above a 2 s floor, never a backoff.
        ("horde", 0.0, [2, 2, 2, 2, 2, 2]),
        ("horde", 30.0, [30, 30, 30, 30, 30, 30]),
        # fal and Replicate give no wait_time: 2 s, then 1.5 times longer each check, up to 10 s.
        ("fal", 0.0, [2, 3, 5, 7, 10, 10]),
        ("replicate", 0.0, [2, 3, 5, 7, 10, 10]),
        # A Retry-After (as wait_time) longer than the backoff wins.
        ("replicate", 45.0, [45, 45, 45, 45, 45, 45]),
    ],
)
def test_given_an_async_provider_when_checks_go_on_then_each_delay_follows_its_spec(
    provider: str, wait_time: float, delays: list[int]
) -> None:
    async_ = REGISTRY[provider].async_
    assert async_ is not None

    assert [async_.delay(wait_time, checks) for checks in range(6)] == delays
