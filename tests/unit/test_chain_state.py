"""The async pending state: a typed value whose stored form is versioned, and refused when it cannot be resumed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from imagegen.chain import Link
from imagegen.chain.state import STATE_VERSION, BadChainState, PendingState
from imagegen.models import Attempt
from imagegen.providers import REGISTRY


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
