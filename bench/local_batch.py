"""An 8-image batch against one image on the local stack (`imagegen local` in this process): does the batch run in
parallel? The local stack runs as many worker invocations at once as the template's WorkerMaxConcurrency (the SQS
event source's ScalingConfig.MaximumConcurrency, 20), unless IMAGEGEN_LOCAL_WORKER_CONCURRENCY says otherwise.

Everything is the local stack as `make run` starts it (moto's server, the template's resources, the HTTP gateway
with the authorizer, the SQS pollers, the real handlers) except the provider: the Hugging Face double on loopback,
answering each generation after a fixed L = 2 s. Wall time is from the create call to the last item terminal, seen
over HTTP (`Prefer: wait` on the job; the batch polled every 100 ms).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import write_section
from imagegen.local import LocalStack

from tests.doubles.huggingface import HuggingFaceDouble
from tests.doubles.images import picture
from tests.doubles.keys import HF_TOKEN
from tests.doubles.server import Recorded, Reply

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.2
TOKEN = "tok-bench"
SIZE = {"width": 512, "height": 512}


def slow_double(latency: float) -> HuggingFaceDouble:
    double = HuggingFaceDouble(token=HF_TOKEN)
    double.image_override = picture(512, 512, "batch")  # drawn once: drawing is not the provider's latency
    inner = double.server.handler

    def slow(request: Recorded) -> Reply:
        reply = inner(request)
        return dataclasses.replace(reply, delay=latency) if request.method == "POST" else reply

    double.server.handler = slow
    return double


def start_stack(double: HuggingFaceDouble, concurrency: str | None) -> LocalStack:
    env = {
        "IMAGEGEN_PROVIDERS": "huggingface",
        "HF_TOKEN": HF_TOKEN,
        "HF_ROUTER_URL": double.base_url,
        "HF_ENDPOINT": double.url,
        "IMAGEGEN_LOCAL_TOKENS": f"bench:{TOKEN}",
        "DAILY_IMAGE_QUOTA": "0",
        "IMAGES_PER_MINUTE": "0",
    }
    if concurrency is not None:
        env["IMAGEGEN_LOCAL_WORKER_CONCURRENCY"] = concurrency
    stack = LocalStack(ROOT, port=0, stack_name=f"bench{int(time.time() * 1000) % 10**8}", env_overrides=env)
    stack.run_schedules = False
    return stack.start()


def one_image(http: httpx.Client) -> float:
    started = time.perf_counter()
    created = http.post("/v1/images", json={"prompt": "one lighthouse", **SIZE})
    created.raise_for_status()
    job_id = created.json()["id"]
    while True:
        job = http.get(f"/v1/images/{job_id}", headers={"Prefer": "wait=25"}).json()
        if job["status"] not in ("queued", "running"):
            break
    if job["status"] != "succeeded":
        raise RuntimeError(f"one image ended {job['status']}: {job.get('error')}")
    return time.perf_counter() - started


def batch(http: httpx.Client, size: int) -> float:
    started = time.perf_counter()
    body = {"defaults": SIZE, "items": [{"prompt": f"lighthouse {n}"} for n in range(size)]}
    created = http.post("/v1/batches", json=body)
    created.raise_for_status()
    batch_id = created.json()["id"]
    while True:
        answer: dict[str, Any] = http.get(f"/v1/batches/{batch_id}").json()
        if answer["status"] != "running":
            break
        time.sleep(0.1)
    if answer["status"] != "succeeded":
        raise RuntimeError(f"the batch ended {answer['status']}: {answer['counts']}")
    return time.perf_counter() - started


def measure(latency: float, concurrency: str | None, rounds: int, size: int) -> tuple[list[float], list[float]]:
    double = slow_double(latency)
    stack = start_stack(double, concurrency)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=stack.url, headers=headers, timeout=60.0) as http:
            one_image(http)  # warm: the functions' first invocations and the Hub mapping read
            ones, batches = [], []
            for _ in range(rounds):
                ones.append(one_image(http))
                batches.append(batch(http, size))
        return ones, batches
    finally:
        stack.stop()
        double.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.getLogger("imagegen.local").setLevel(logging.WARNING)
    rows = []
    summary: dict[str, float] = {}
    for name, concurrency in (("template (WorkerMaxConcurrency 20)", None), ("before: 4 workers", "4")):
        ones, batches = measure(args.latency, concurrency, args.rounds, args.size)
        one, many = statistics.median(ones), statistics.median(batches)
        ratio = many / one
        summary[name] = round(ratio, 2)
        verdict = f"**{ratio:.2f}×** {'✓' if ratio <= TARGET else '✗'}" if concurrency is None else f"{ratio:.2f}×"
        rows.append(f"| {name} | {one:.2f} s | {many:.2f} s | {verdict} |")
        print(f"{name}: one {one:.2f} s, batch of {args.size} {many:.2f} s, ratio {ratio:.2f}", flush=True)
    print(json.dumps(summary))
    if args.no_write:
        return
    command = " ".join(["python bench/local_batch.py", *sys.argv[1:]])
    machine = f"{platform.machine()} with {os.cpu_count()} cores (shared with other work)"
    write_section(
        "local_batch",
        f"""## An {args.size}-image batch on the local stack — target ≤ {TARGET}× one image

`bench/local_batch.py`: `imagegen local` in-process (moto's server, the template's resources, the HTTP gateway and
authorizer, SQS pollers invoking the real handlers), with the Hugging Face double answering each generation after
L = {args.latency:g} s. Wall time from the create call to the last item terminal, over HTTP; median of
{args.rounds} rounds (one image, then the batch), after one warm-up job. Command: `{command}`, on {machine}.

| local stack | one image | batch of {args.size} | ratio |
|---|---:|---:|---:|
{chr(10).join(rows)}

The local stack now runs as many worker invocations at once as the template's `WorkerMaxConcurrency` (the worker's
SQS event source `ScalingConfig.MaximumConcurrency`, default 20), as Lambda would, so the {args.size} items run side
by side; with the old fixed 4 workers they ran in two waves.""",
    )


if __name__ == "__main__":
    main()
