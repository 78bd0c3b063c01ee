"""Job latency end to end on the local stack next to the bare AWS calls one job needs, on the same emulator."""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section
from imagegen.local.stack import LocalStack
from imagegen.media.offline import render_placeholder

ROOT = Path(__file__).resolve().parent.parent
JOBS = 30
SIZE = 256
TARGET = 1.3


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def end_to_end(stack: LocalStack) -> list[float]:
    """POST with `Prefer: wait=25`: the answer comes when the job is terminal, so one request times one job."""
    samples = []
    for n in range(JOBS):
        body = json.dumps({"prompt": f"overhead bench {n}", "width": SIZE, "height": SIZE}).encode()
        request = urllib.request.Request(
            f"{stack.url}/v1/images",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json", "Prefer": "wait=25"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            job = json.loads(response.read())
        samples.append(time.perf_counter() - started)
        if job["status"] != "succeeded":
            raise SystemExit(f"job {job['id']} ended {job['status']}: the benchmark measures successful jobs")
    return samples


def bare_calls(stack: LocalStack) -> list[float]:
    """The AWS calls one job needs, made directly with boto3, plus drawing the image (the provider's work)."""
    ddb, sqs, s3 = stack.client("dynamodb"), stack.client("sqs"), stack.client("s3")
    table, queue, bucket = stack.physical_id("Table"), stack.physical_id("JobsQueue"), stack.physical_id("ImagesBucket")
    samples = []
    for n in range(JOBS):
        key = {"pk": {"S": "USER#bench"}, "sk": {"S": f"JOB#{uuid.uuid4().hex}"}}
        started = time.perf_counter()
        # create: the job (and its idempotency marker) in one transaction, then one message
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**key, "status": {"S": "queued"}}}},
                {"Put": {"TableName": table, "Item": {**key, "sk": {"S": f"IDEMPOTENCY#{n}"}}}},
            ]
        )
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"bench": n}))
        # work: receive, claim, draw, store, settle, delete
        message = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"][0]
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #s = :r",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":r": {"S": "running"}},
        )
        image = render_placeholder(f"overhead bench {n}", SIZE, SIZE)
        s3.put_object(Bucket=bucket, Key=f"bench/{n}.png", Body=io.BytesIO(image), ContentType="image/png")
        ddb.put_item(TableName=table, Item={**key, "status": {"S": "succeeded"}})
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        # read: the client's one read of the finished job
        ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    env = {"IMAGEGEN_PROVIDERS": "placeholder", "LOG_LEVEL": "WARNING", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    with LocalStack(ROOT, port=0, env_overrides=env, run_schedules=False) as stack:
        end_to_end(stack)  # warm: every function's container is loaded once, as after a cold start
        e2e = end_to_end(stack)
    # A second stack (its own names: moto keeps state per process) with no pollers, so nothing takes our messages.
    with LocalStack(
        ROOT,
        port=0,
        stack_name="imagegen-bare",
        env_overrides=env,
        run_schedules=False,
        run_workers=False,
        serve_http=False,
    ) as bare:
        bare_calls(bare)
        floor = bare_calls(bare)
    rows = [
        ("end to end (HTTP → authorizer → Api → SQS → worker → S3 → DynamoDB)", e2e),
        ("bare AWS calls + drawing", floor),
    ]
    lines = [
        "## Job overhead on the local stack",
        "",
        f"{JOBS} sequential jobs, placeholder provider, {SIZE}×{SIZE} PNG, one `POST /v1/images` with "
        "`Prefer: wait=25` per job (the answer comes when the job has ended). Baseline: the same AWS calls one job "
        "needs (transaction, send, receive, claim, put image, settle, delete, read) made directly with boto3 against "
        f"the same emulator, plus drawing the image. Target ≤ {TARGET}×.",
        "",
        "| path | p50 (ms) | p95 (ms) |",
        "|---|---:|---:|",
    ]
    for name, samples in rows:
        p50, p95 = statistics.median(samples), percentile(samples, 95)
        print(f"{name}: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
        lines.append(f"| {name} | {p50 * 1000:.1f} | {p95 * 1000:.1f} |")
    ratio50 = statistics.median(e2e) / statistics.median(floor)
    ratio95 = percentile(e2e, 95) / percentile(floor, 95)
    print(f"ratio: p50 {ratio50:.2f}x, p95 {ratio95:.2f}x (target <= {TARGET}x)")
    lines += ["", f"Ratio: **p50 {ratio50:.2f}×, p95 {ratio95:.2f}×**."]
    write_section("overhead", "\n".join(lines))


if __name__ == "__main__":
    main()
