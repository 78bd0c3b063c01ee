"""The chain under faults on the local stack: a job created while every breaker is open waits, queued, and succeeds
once the provider is back; one tenant's 429s never cool another tenant's key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from imagegen.local import LocalStack

from tests.doubles.server import Reply
from tests.doubles.siliconflow import SiliconFlowDouble
from tests.integration.test_local_stack_providers import KOLORS, StartApi, outline, start_api, wait_for

pytest_plugins = ["tests.doubles.fixtures", "tests.doubles.local_stack"]
pytestmark = pytest.mark.integration

__all__ = ["start_api"]  # the fixture, shared with test_local_stack_providers

UNKNOWN_ERROR = {"code": 50000, "message": "Unknown error", "data": None}


class Client:
    """One user of the local stack, by token."""

    def __init__(self, stack: LocalStack, token: str) -> None:
        self.http = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)

    def create(self) -> str:
        answer = self.http.post("/v1/images", json={"prompt": "a neighbour", "width": 64, "height": 64})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def finished(self, job_id: str) -> dict[str, Any]:
        for _ in range(3):
            job: dict[str, Any] = self.http.get(f"/v1/images/{job_id}", headers={"Prefer": "wait=20"}).json()
            if job["status"] not in ("queued", "running"):
                return job
        raise AssertionError(f"job {job_id} still {job['status']} after 60 s")


def test_given_every_breaker_open_when_a_job_is_created_then_it_waits_and_succeeds_once_the_provider_recovers(
    start_api: StartApi, siliconflow_double: SiliconFlowDouble
) -> None:
    # Given SiliconFlow as the only provider, its breaker opening at the first failure for a 3 s cool-down
    siliconflow_double.server.enqueue(Reply.json(500, UNKNOWN_ERROR))
    api = start_api(
        IMAGEGEN_PROVIDERS="siliconflow",
        SILICONFLOW_MODELS=KOLORS,
        SILICONFLOW_RPM="0",
        IMAGEGEN_BREAKER_THRESHOLD="1",
        IMAGEGEN_BREAKER_COOLDOWN_S="3",
    )
    first = api.finished(api.create())
    assert outline(first) == [("siliconflow", KOLORS, "failed", "server_error")]

    # When a job is created while the breaker is open (SiliconFlow itself answers again from now on)
    job_id = api.create()

    # Then it goes back to queued, waiting for the breaker's cool-down to end, instead of failing
    def waiting() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get_raw(job_id).json()
        return job if job["waiting"] is not None else None

    queued = wait_for(waiting)
    assert (queued["status"], queued["waiting"]["reason"], queued["error"]) == ("queued", "breaker_open", None)
    until = datetime.fromisoformat(queued["waiting"]["until"])
    assert 0 < (until - datetime.fromisoformat(first["completed_at"])).total_seconds() <= 3.5
    # And once the cool-down is over its delayed message brings it back: the probe serves it
    done = api.finished(job_id)
    assert (done["status"], done["provider"], done["waiting"]) == ("succeeded", "siliconflow", None)
    assert outline(done) == [
        ("siliconflow", KOLORS, "skipped", "breaker_open"),
        ("siliconflow", KOLORS, "succeeded", None),
    ]
    assert len(siliconflow_double.server.calls("POST")) == 2
    assert api.worker_invocations == 3


def test_given_alice_own_key_answering_429_when_bob_runs_jobs_then_they_reach_siliconflow_with_his_key(
    start_api: StartApi, siliconflow_double: SiliconFlowDouble
) -> None:
    # Given alice and bob each with their own SiliconFlow key, and SiliconFlow answering 429 to alice's key only
    alice_key, bob_key = "sk-AliceOwnKey0000000001", "sk-BobOwnKey000000000001"
    siliconflow_double.other_keys.add(bob_key)
    siliconflow_double.answer_for_key[alice_key] = Reply.json(429, {"message": "rate limited", "data": None})
    api = start_api(
        IMAGEGEN_LOCAL_TOKENS="alice:tok-alice,bob:tok-bob",
        IMAGEGEN_PROVIDERS="siliconflow,placeholder",
        SILICONFLOW_MODELS=KOLORS,
        SILICONFLOW_RPM="0",
        IMAGEGEN_BREAKER_THRESHOLD="2",
        IMAGEGEN_LOCAL_WORKER_CONCURRENCY="4",
    )
    alice, bob = (Client(api.stack, token) for token in ("tok-alice", "tok-bob"))
    for client, key in ((alice, alice_key), (bob, bob_key)):
        assert client.http.put("/v1/keys/siliconflow", json={"api_key": key}).status_code == 200

    # When alice's first two jobs meet 429s (her key's breaker opens), then both run jobs in the same window
    opening = [alice.finished(alice.create()) for _ in range(2)]
    alice_jobs = [alice.create() for _ in range(2)]
    bob_jobs = [bob.create() for _ in range(4)]
    alice_done = [alice.finished(job) for job in alice_jobs]
    bob_done = [bob.finished(job) for job in bob_jobs]

    # Then every one of bob's jobs reached SiliconFlow with his key and was served by it
    assert [(job["status"], job["provider"]) for job in bob_done] == [("succeeded", "siliconflow")] * 4
    assert (
        len([c for c in siliconflow_double.server.calls("POST") if c.headers["authorization"] == f"Bearer {bob_key}"])
        == 4
    )
    # And alice's fell through to the next provider: her key's 429s, then her key's open breaker
    assert [job["attempts"][0]["error_class"] for job in opening] == ["rate_limited"] * 2
    assert [(job["provider"], job["attempts"][0]["error_class"]) for job in alice_done] == [
        ("placeholder", "breaker_open")
    ] * 2
