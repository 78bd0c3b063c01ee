"""Shared fixtures: moto's server on loopback, fresh AWS resources per test, handlers invoked in-process."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from imagegen import wiring
from imagegen.local.emulator import serialize_dynamodb
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    serialize_dynamodb()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing in the suite may reach real AWS, whatever the developer's shell has configured.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "imagegen-test")


@dataclass
class Aws:
    endpoint: str
    table: str
    bucket: str
    queue_url: str
    dlq_url: str

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    def receive(self, queue_url: str | None = None, *, wait: int = 0, visibility: int = 30) -> list[dict[str, Any]]:
        answer = self.client("sqs").receive_message(
            QueueUrl=queue_url or self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            VisibilityTimeout=visibility,
            MessageSystemAttributeNames=["All"],
        )
        return list(answer.get("Messages", []))


def create_resources(endpoint: str, *, max_receive_count: int = 3) -> Aws:
    suffix = uuid.uuid4().hex[:10]
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    table = f"imagegen-{suffix}"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
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
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    bucket = f"imagegen-images-{suffix}"
    s3.create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
    dlq_url = sqs.create_queue(QueueName=f"jobs-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=f"jobs-{suffix}",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
        },
    )["QueueUrl"]
    return Aws(endpoint=endpoint, table=table, bucket=bucket, queue_url=queue_url, dlq_url=dlq_url)


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """Fresh table, bucket and queues on moto's server, and the function environment pointing at them."""
    resources = create_resources(moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TABLE_NAME", resources.table)
    monkeypatch.setenv("BUCKET_NAME", resources.bucket)
    monkeypatch.setenv("QUEUE_URL", resources.queue_url)
    monkeypatch.setenv("JOB_MAX_RECEIVE_COUNT", "3")
    monkeypatch.setenv("IMAGEGEN_PROVIDERS", "placeholder")
    wiring.reset()
    yield resources
    wiring.reset()


class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context; a real one only exists inside Lambda."""

    def __init__(self, name: str, timeout_seconds: float = 120) -> None:
        import time

        self._deadline = time.monotonic() + timeout_seconds
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"
        self.aws_request_id = uuid.uuid4().hex
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))


_handlers: dict[str, ModuleType] = {}


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py, imported by path (every function's module is called app)."""
    if name not in _handlers:
        path = ROOT / "functions" / name / "app.py"
        spec = importlib.util.spec_from_file_location(f"function_{name}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _handlers[name] = module
    return _handlers[name]


def rest_event(
    method: str,
    path: str,
    *,
    user: str | None = "alice",
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    resource: str = "/v1/{proxy+}",
) -> dict[str, Any]:
    """An API Gateway REST proxy event as the gateway sends it after the authorizer allowed the call."""
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {key: [value] for key, value in all_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {key: [value] for key, value in query.items()} if query else None,
        "pathParameters": {"proxy": path.removeprefix("/v1/")} if resource.endswith("{proxy+}") else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "requestId": uuid.uuid4().hex,
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": {"user_id": user, "principalId": user} if user else None,
        },
        "body": body,
        "isBase64Encoded": False,
    }


@dataclass
class ApiAnswer:
    status: int
    headers: dict[str, str]
    body: Any


@pytest.fixture
def call_api(aws: Aws) -> Callable[..., ApiAnswer]:
    handler = load_function("api").lambda_handler

    def call(method: str, path: str, **kwargs: Any) -> ApiAnswer:
        raw = handler(rest_event(method, path, **kwargs), FakeLambdaContext("ApiFunction"))
        text = raw.get("body") or ""
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        headers = {key: value for key, value in (raw.get("headers") or {}).items()}
        for key, values in (raw.get("multiValueHeaders") or {}).items():
            headers.setdefault(key, values[-1])
        return ApiAnswer(status=raw["statusCode"], headers=headers, body=body)

    return call


def sqs_event(messages: list[dict[str, Any]], queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:jobs") -> dict:
    """An SQS event for the worker, built from messages received from the real queue."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


@pytest.fixture
def run_worker(aws: Aws) -> Callable[..., dict[str, Any]]:
    """Receive what is on the jobs queue, invoke the worker on it, delete what it did not report as failed."""
    handler = load_function("worker").lambda_handler

    def run(messages: list[dict[str, Any]] | None = None, *, delete: bool = True) -> dict[str, Any]:
        batch = messages if messages is not None else aws.receive()
        if not batch:
            return {"batchItemFailures": [], "received": 0}
        result = handler(sqs_event(batch), FakeLambdaContext("WorkerFunction"))
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        if delete:
            sqs = aws.client("sqs")
            for message in batch:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return {**result, "received": len(batch)}

    return run
