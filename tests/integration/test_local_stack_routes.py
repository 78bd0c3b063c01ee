"""Issue 10 end to end on the local stack: Hugging Face through the router's Inference Providers, SiliconFlow's live
models. HTTP API -> SQS -> worker -> the chain -> the router + Hub double and the SiliconFlow double on 127.0.0.1,
with no provider key but those a test names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from imagegen.local import LocalStack

from tests.doubles.hf_router import DEV, SCHNELL, HfRouterDouble
from tests.doubles.keys import HF_TOKEN, SF_KEY
from tests.doubles.siliconflow import SiliconFlowDouble
from tests.doubles.storage import StorageDouble

pytest_plugins = ["tests.doubles.fixtures", "tests.doubles.local_stack"]
pytestmark = pytest.mark.integration

# Every provider variable the suite's environment could carry: the stack gets only what a test names.
PROVIDER_KEYS = (
    "SILICONFLOW_API_KEY",
    "HF_TOKEN",
    "HORDE_API_KEY",
    "POLLINATIONS_API_KEY",
    "FAL_KEY",
    "REPLICATE_API_TOKEN",
)


@pytest.fixture
def hf_router(storage: StorageDouble) -> Iterator[HfRouterDouble]:
    with HfRouterDouble(storage, tokens={HF_TOKEN}) as double:
        yield double


Start = Callable[..., tuple[LocalStack, httpx.Client]]


@pytest.fixture
def start(
    local_stack_factory: Callable[..., LocalStack], hf_router: HfRouterDouble, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Start]:
    for name in PROVIDER_KEYS:
        monkeypatch.delenv(name, raising=False)
    clients: list[httpx.Client] = []

    def begin(**env: str) -> tuple[LocalStack, httpx.Client]:
        stack = local_stack_factory(
            env_overrides={
                "HF_ROUTER_URL": hf_router.url,
                "HF_ENDPOINT": hf_router.url,
                # Result links on the storage double are plain http on 127.0.0.1.
                "MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
                "WORKER_DEADLINE_SECONDS": "20",
                "IMAGEGEN_LOCAL_VISIBILITY_TIMEOUT": "30",
                **env,
            },
            run_schedules=False,
        )
        client = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30.0)
        clients.append(client)
        return stack, client

    yield begin
    for client in clients:
        client.close()


def finished(client: httpx.Client, job_id: str) -> dict[str, Any]:
    for _ in range(3):
        job: dict[str, Any] = client.get(f"/v1/images/{job_id}", headers={"Prefer": "wait=20"}).json()
        if job["status"] not in ("queued", "running"):
            return job
    raise AssertionError(f"job {job_id} still {job['status']}")


def create(client: httpx.Client, **request: Any) -> str:
    answer = client.post("/v1/images", json={"prompt": "a lighthouse at dusk", "width": 512, "height": 512, **request})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_given_only_hf_token_when_a_flux_dev_job_runs_then_the_first_live_route_serves_it(
    start: Start, hf_router: HfRouterDouble
) -> None:
    # Given a deployment with HF_TOKEN and nothing else, on the template's default chain (the local stack's own
    # default is the offline placeholder)
    stack, client = start(HF_TOKEN=HF_TOKEN, IMAGEGEN_PROVIDERS="siliconflow,huggingface,horde,pollinations")

    # When a job runs on the default chain
    job = finished(client, create(client, model=DEV))

    # Then SiliconFlow is skipped for want of a key, and fal-ai (first live route in the mapping) serves FLUX.1-dev
    assert (job["status"], job["provider"], job["model"]) == ("succeeded", "huggingface", DEV)
    tried = [(a["provider"], a["route"], a["outcome"], a["error_class"]) for a in job["attempts"]]
    assert tried[-1] == ("huggingface", "fal-ai", "succeeded", None)
    assert {t for t in tried[:-1]} == {("siliconflow", None, "skipped", "no_key")}
    assert [r.path for r in hf_router.calls("fal-ai")] == ["/fal-ai/fal-ai/flux/dev"]
    # The mapping the worker read is in the table now, for the next container.
    table = stack.physical_id("Table")
    item = stack.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": "ROUTES#huggingface"}, "sk": {"S": f"MODEL#{DEV}"}}
    )
    assert '"route":"fal-ai"' in item["Item"]["entries"]["S"]
    # And GET /v1/providers shows the routes it would try for FLUX.1-dev.
    providers = client.get("/v1/providers").json()["items"]
    hf = next(item for item in providers if item["provider"] == "huggingface")
    assert [(r["model"], r["route"]) for r in hf["routes"] if r["model"] == DEV] == [
        (DEV, "fal-ai"),
        (DEV, "replicate"),
        (DEV, "wavespeed"),
    ]


def test_given_flux_dev_refused_on_every_route_when_a_job_runs_then_schnell_serves_with_4_steps_and_guidance_0(
    start: Start, hf_router: HfRouterDouble
) -> None:
    hf_router.payg_disabled |= {"fal-ai", "replicate", "wavespeed", "nscale"}
    _, client = start(HF_TOKEN=HF_TOKEN, IMAGEGEN_PROVIDERS="huggingface")

    job = finished(client, create(client, steps=30, guidance=4.0))

    assert (job["status"], job["model"]) == ("succeeded", SCHNELL)
    assert job["attempts"][-1]["route"] == "together"
    assert hf_router.calls("together")[0].json()["steps"] == 4
    assert hf_router.calls("together")[0].json()["guidance_scale"] == 0


def test_given_a_model_missing_from_siliconflows_listing_when_a_job_runs_then_it_is_skipped_and_a_listed_one_serves(
    start: Start, storage: StorageDouble
) -> None:
    with SiliconFlowDouble(storage, api_key=SF_KEY) as siliconflow:
        siliconflow.retire("Kwai-Kolors/Kolors")
        stack, client = start(
            SILICONFLOW_API_KEY=SF_KEY, SILICONFLOW_BASE_URL=siliconflow.base_url, IMAGEGEN_PROVIDERS="siliconflow"
        )
        # The schedule's key check lists the models (invoked as the schedule would).
        stack.invoke("ScheduledFunction", {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

        job = finished(client, create(client))

    assert (job["status"], job["model"]) == ("succeeded", "Tongyi-MAI/Z-Image-Turbo")
    assert [(a["model"], a["outcome"], a["error_class"]) for a in job["attempts"]] == [
        ("Kwai-Kolors/Kolors", "skipped", "model_not_listed"),
        ("Tongyi-MAI/Z-Image-Turbo", "succeeded", None),
    ]
