"""An 8-item batch against one job, with a provider of fixed latency: wall time to the last item ÷ one job's."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import write_section
from imagegen import wiring
from imagegen.generation import ChainOutcome, RunContext
from imagegen.jobs.batch_models import BatchCreate
from imagegen.models import ImageRequest

from tests.doubles.generators import PlaceholderGenerator

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ITEMS = 8
TARGET = 1.3


class FixedLatency(PlaceholderGenerator):
    """The placeholder provider behind a fixed latency: a stand-in for a provider that takes L seconds."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        time.sleep(self.seconds)
        return super().start(request, ctx)


def _resources(endpoint: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    table = f"bench-{suffix}"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    bucket = f"bench-{suffix}"
    boto3.client("s3", region_name=REGION, endpoint_url=endpoint).create_bucket(Bucket=bucket)
    queue = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint).create_queue(
        QueueName=f"bench-{suffix}", Attributes={"VisibilityTimeout": "60"}
    )["QueueUrl"]
    return {"TABLE_NAME": table, "BUCKET_NAME": bucket, "QUEUE_URL": queue}


def _worker_module(index: int) -> ModuleType:
    """A fresh copy of functions/worker/app.py: one per simulated Lambda execution environment."""
    spec = importlib.util.spec_from_file_location(f"bench_worker_{index}", ROOT / "functions" / "worker" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Context:
    function_name = "WorkerFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:WorkerFunction"
    log_group_name = "/aws/lambda/WorkerFunction"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def _poller(module: ModuleType, queue_url: str, sqs: Any, batch_size: int, stop: threading.Event) -> None:
    """What Lambda's SQS event source does for one execution environment: receive, invoke, delete the successes."""
    while not stop.is_set():
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=batch_size, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]
        )
        messages = answer.get("Messages", [])
        if not messages:
            continue
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }
        result = module.lambda_handler(event, Context())
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def _wait(predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the work did not finish in time")
        time.sleep(0.02)


def measure(latency: float, batch_size: int, environments: int) -> tuple[float, float]:
    """(one job's wall time, the 8-item batch's wall time to its last terminal item), same stack, same run."""
    wiring.reset()
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    stop = threading.Event()
    modules = [_worker_module(i) for i in range(environments)]
    threads = [
        threading.Thread(target=_poller, args=(m, os.environ["QUEUE_URL"], sqs, batch_size, stop), daemon=True)
        for m in modules
    ]
    for thread in threads:
        thread.start()
    try:
        jobs, batches = wiring.job_service(), wiring.batch_service()
        started = time.monotonic()
        job, _ = jobs.create("bench", ImageRequest(prompt="one", width=64, height=64))
        _wait(lambda: jobs.get("bench", job.id).terminal)
        single = time.monotonic() - started

        body = BatchCreate(defaults={"width": 64, "height": 64}, items=[{"prompt": f"page {n}"} for n in range(ITEMS)])
        started = time.monotonic()
        batch, _ = batches.create("bench", body)
        _wait(lambda: batches.get("bench", batch.id).status != "running")
        whole = time.monotonic() - started
        assert batches.get("bench", batch.id).status == "succeeded"
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return single, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=2.0, help="the provider's fixed latency L, seconds")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--environments", type=int, default=ITEMS, help="concurrent worker environments")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would drown the figures
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.update(_resources(os.environ["AWS_ENDPOINT_URL"]))
    generator = FixedLatency(args.latency)
    wiring.generator = lambda settings: generator  # type: ignore[assignment]
    rows = []
    try:
        for batch_size in (1, 5):
            samples = [measure(args.latency, batch_size, args.environments) for _ in range(args.runs)]
            ratio = statistics.median(whole / single for single, whole in samples)
            single = statistics.median(s for s, _ in samples)
            whole = statistics.median(w for _, w in samples)
            rows.append((batch_size, single, whole, ratio))
            print(f"SQS BatchSize {batch_size}: one job {single:.2f} s, batch {whole:.2f} s, ratio {ratio:.2f}x")
    finally:
        server.stop()

    headline = rows[0][3]
    verdict = "meets" if headline <= TARGET else "misses"
    print(json.dumps({"ratio": round(headline, 3), "target": TARGET}))
    if args.no_write:
        return
    table = "\n".join(
        f"| {size} | {single:.2f} s | {whole:.2f} s | **{ratio:.2f}×** |" for size, single, whole, ratio in rows
    )
    write_section(
        "batch",
        f"""## Batch: {ITEMS} items in parallel vs one job

A provider of fixed latency L = {args.latency:g} s (the placeholder behind a sleep); the real worker handler
(`functions/worker/app.py`) in {args.environments} concurrent execution environments pulling moto's SQS queue as
Lambda's event source would; jobs and batch through the real services on moto's DynamoDB. Wall time from the create
call to the last terminal item, divided by one single job's wall time in the same run (median of {args.runs}).

| worker SQS BatchSize | one job | {ITEMS}-item batch | ratio |
|---|---|---|---|
{table}

Target ≤ {TARGET}× (one after another would be {ITEMS}×): BatchSize 1 {verdict} it. With BatchSize 5 one
environment can be handed five items and runs them one after another, so a batch's items should reach the
worker one per invocation (BatchSize 1) — cheap next to an image's seconds of generation.""",
    )


if __name__ == "__main__":
    main()
