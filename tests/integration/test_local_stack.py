"""The local stack: resources from a template, API Gateway's routing and authorizer, the SQS loop, schedules."""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from imagegen.local import LocalStack, LocalStackError

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.local_stack"]

# A small template that uses each feature the local stack emulates, with handlers that report what they got.
TINY_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  MaxReceiveCount:
    Type: Number
    Default: 2
  Greeting:
    Type: String
    Default: hello
Conditions:
  WithKey: !Equals [!Ref Greeting, hello]
  WithoutKey: !Not [!Condition WithKey]
Globals:
  Function:
    Runtime: python3.13
    Handler: app.lambda_handler
    Timeout: 5
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        GREETING: !Ref Greeting
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: S}
        - {AttributeName: gsi1pk, AttributeType: S}
        - {AttributeName: gsi1sk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
        - {AttributeName: sk, KeyType: RANGE}
      GlobalSecondaryIndexes:
        - IndexName: gsi1
          KeySchema:
            - {AttributeName: gsi1pk, KeyType: HASH}
            - {AttributeName: gsi1sk, KeyType: RANGE}
          Projection: {ProjectionType: ALL}
      TimeToLiveSpecification: {AttributeName: expires_at, Enabled: true}
  Bucket:
    Type: AWS::S3::Bucket
  DeadLetters:
    Type: AWS::SQS::Queue
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DeadLetters.Arn
        maxReceiveCount: !Ref MaxReceiveCount
  Secret:
    Type: AWS::SecretsManager::Secret
    Properties:
      Name: !Sub "${AWS::StackName}/keys"
      SecretString: '{"EXAMPLE_KEY": "v"}'
  Key:
    Type: AWS::KMS::Key
    Condition: WithKey
    Properties:
      Description: tiny key
  UnusedKey:
    Type: AWS::KMS::Key
    Condition: WithoutKey
  Logs:
    Type: AWS::Logs::LogGroup
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: api
      Auth:
        DefaultAuthorizer: Tokens
        Authorizers:
          Tokens:
            FunctionArn: !GetAtt AuthFunction.Arn
            FunctionPayloadType: REQUEST
            Identity:
              Headers: [Authorization]
              ReauthorizeEvery: 300
      GatewayResponses:
        UNAUTHORIZED:
          StatusCode: 401
          ResponseParameters:
            Headers:
              WWW-Authenticate: "'Bearer'"
          ResponseTemplates:
            application/json: '{"error":{"code":"unauthorized","message":"no"}}'
        ACCESS_DENIED:
          StatusCode: 403
          ResponseTemplates:
            application/json: '{"error":{"code":"forbidden","message":"denied"}}'
        MISSING_AUTHENTICATION_TOKEN:
          StatusCode: 404
          ResponseTemplates:
            application/json: '{"error":{"code":"not_found","message":"No such route."}}'
        DEFAULT_5XX:
          ResponseTemplates:
            application/json: '{"error":{"code":"internal_error","message":$context.error.messageString}}'
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo
      Environment:
        Variables:
          QUEUE_URL: !Ref Queue
          BUCKET: !Ref Bucket
          SECRET: !Ref Secret
          KEY_ARN: !GetAtt Key.Arn
          LOGS: !Ref Logs
      Events:
        Health:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /v1/health, Method: GET, Auth: {Authorizer: NONE}}
        Item:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: "/v1/items/{id}", Method: GET}
        Proxy:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: "/v1/{proxy+}", Method: ANY}
  AuthFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: auth
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
  TickFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: tick
      Events:
        Every:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
"""

HANDLERS = {
    "echo": """
        import base64, json, os, time

        def lambda_handler(event, context):
            if event["path"].endswith("/slow"):
                time.sleep(0.5)
            if event["path"].endswith("/boom"):
                raise RuntimeError("boom")
            if event["path"].endswith("/malformed"):
                return {"statusCode": 200, "body": {"not": "a string"}}
            if event["path"].endswith("/png"):
                return {"statusCode": 200, "headers": {"Content-Type": "image/png"},
                        "body": base64.b64encode(b"\\x89PNG-bytes").decode(), "isBase64Encoded": True}
            return {
                "statusCode": 200,
                "headers": {"Content-Type": "application/json", "X-Single": "one", "Set-Cookie": "ignored=1"},
                "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
                "body": json.dumps({
                    "event": event,
                    "greeting": os.environ["GREETING"],
                    "function_name": context.function_name,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                }),
            }
    """,
    "auth": """
        import os
        import boto3
        from imagegen.adapters.tokens import TokenStore

        store = TokenStore(os.environ["TABLE_NAME"], boto3.client("dynamodb"))

        def lambda_handler(event, context):
            header = {k.lower(): v for k, v in (event["headers"] or {}).items()}.get("authorization", "")
            user = store.resolve(header.removeprefix("Bearer "))
            if user is None:
                raise Exception("Unauthorized")
            arn, _, rest = event["methodArn"].partition("/")
            stage = rest.split("/")[0]
            return {
                "principalId": user,
                "policyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": "Deny" if user == "mallory" else "Allow",
                    "Resource": f"{arn}/{stage}/*/*",
                }]},
                "context": {"user_id": user, "admin": False, "n": 3},
            }
    """,
    "worker": """
        import json, os
        import boto3

        dynamodb = boto3.client("dynamodb")

        def lambda_handler(event, context):
            failures = []
            for record in event["Records"]:
                body = json.loads(record["body"])
                dynamodb.put_item(TableName=os.environ["TABLE_NAME"], Item={
                    "pk": {"S": "DELIVERY#" + body["id"]},
                    "sk": {"S": record["attributes"]["ApproximateReceiveCount"]},
                    "record": {"S": json.dumps(record)},
                })
                if body["outcome"] == "raise":
                    raise RuntimeError("the whole batch fails")
                if body["outcome"] == "fail":
                    failures.append({"itemIdentifier": record["messageId"]})
            return {"batchItemFailures": failures}
    """,
    "tick": """
        import json, os
        import boto3

        dynamodb = boto3.client("dynamodb")

        def lambda_handler(event, context):
            dynamodb.put_item(TableName=os.environ["TABLE_NAME"], Item={
                "pk": {"S": "TICK"}, "sk": {"S": event["id"]}, "event": {"S": json.dumps(event)},
            })
    """,
}


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TINY_TEMPLATE)
    for name, source in HANDLERS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(textwrap.dedent(source))
    return tmp_path


@pytest.fixture
def tiny(local_stack_factory: Callable[..., LocalStack], tiny_root: Path) -> Callable[..., LocalStack]:
    """Starts the tiny template; the SQS pollers and schedules only when a test asks (they slow stop() down)."""

    def start(*, workers: bool = False, **overrides: str) -> LocalStack:
        env = {
            "IMAGEGEN_LOCAL_TOKENS": "alice:tok-alice,mallory:tok-mallory",
            "IMAGEGEN_LOCAL_VISIBILITY_TIMEOUT": "1",
            **overrides,
        }
        return local_stack_factory(
            tiny_root,
            env_overrides=env,
            run_workers=workers,
            run_schedules="IMAGEGEN_LOCAL_SCHEDULE_SECONDS" in env,
        )

    return start


class Answer:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http(
    method: str, url: str, *, token: str | None = None, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return Answer(response.status, list(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, list(error.headers.items()), error.read())


def wait_for(condition: Callable[[], Any], *, timeout: float = 15, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


# Resources and environment


def test_given_the_repository_template_when_started_then_its_resources_exist_in_the_emulator(local_stack_factory):
    stack = local_stack_factory(serve_http=False, run_workers=False, run_schedules=False, issue_tokens=False)

    table = stack.client("dynamodb").describe_table(TableName=stack.physical_id("Table"))["Table"]
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [("pk", "HASH"), ("sk", "RANGE")]
    assert [(i["IndexName"], i["Projection"]["ProjectionType"]) for i in table["GlobalSecondaryIndexes"]] == [
        ("gsi1", "ALL")
    ]
    ttl = stack.client("dynamodb").describe_time_to_live(TableName=stack.physical_id("Table"))
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    stack.client("s3").head_bucket(Bucket=stack.physical_id("ImagesBucket"))
    sqs = stack.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack.physical_id("JobsQueue"), AttributeNames=["All"])
    dlq_arn = sqs.get_queue_attributes(QueueUrl=stack.physical_id("JobsDeadLetterQueue"), AttributeNames=["QueueArn"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "720"
    assert json.loads(attributes["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
        "maxReceiveCount": 4,
    }
    secret = stack.client("secretsmanager").get_secret_value(SecretId=stack.physical_id("ProviderKeysSecret"))
    assert (secret["Name"], secret["SecretString"]) == (f"{stack.stack_name}/provider-keys", "{}")


def test_given_the_repository_template_when_started_then_function_environments_are_in_the_process(
    local_stack_factory, monkeypatch
):
    monkeypatch.setenv("MEDIA_ALLOWED_HOSTS", "example.org")  # the developer's own setting
    monkeypatch.delenv("IMAGEGEN_PROVIDERS", raising=False)

    stack = local_stack_factory(serve_http=False, run_workers=False, run_schedules=False, issue_tokens=False)

    assert {name: os.environ[name] for name in stack.env} == stack.env
    assert stack.env["TABLE_NAME"] == stack.physical_id("Table")
    assert stack.env["BUCKET_NAME"] == stack.physical_id("ImagesBucket")
    assert stack.env["QUEUE_URL"] == stack.physical_id("JobsQueue")
    # A local default: deployment keys come from the environment, not from the emulated secret (which holds "{}").
    assert stack.env["PROVIDER_KEYS_SECRET"] == ""
    assert stack.env["JOB_MAX_RECEIVE_COUNT"] == "4"
    assert stack.env["JOB_LEASE_SECONDS"] == "150"
    assert stack.env["POWERTOOLS_SERVICE_NAME"] == "imagegen"
    assert stack.env["IMAGEGEN_PROVIDERS"] == "placeholder"  # the local default, over the template's chain
    assert stack.env["MEDIA_ALLOW_PRIVATE_NETWORKS"] == "true"
    assert stack.env["MEDIA_ALLOWED_HOSTS"] == "example.org"  # the developer's environment wins
    assert os.environ["AWS_ENDPOINT_URL"] == stack.aws_endpoint


def test_given_a_provider_key_in_the_environment_when_the_stack_runs_then_it_is_the_deployment_key(
    local_stack_factory,
):
    # Given SILICONFLOW_API_KEY set for the stack, as `SILICONFLOW_API_KEY=sk-... make run` sets it
    stack = local_stack_factory(
        run_workers=False,
        run_schedules=False,
        env_overrides={
            "IMAGEGEN_LOCAL_TOKENS": "alice:tok-alice",
            "IMAGEGEN_PROVIDERS": "siliconflow",
            "SILICONFLOW_API_KEY": "sk-LocalStackDeploymentKey0001",
        },
    )

    # When alice asks which providers her jobs would use
    answer = http("GET", f"{stack.url}/v1/providers", token="tok-alice")

    # Then SiliconFlow would be tried with that key as the deployment's (README: locally, deployment keys come
    # from the environment), not skipped for want of a key in the emulated, empty provider-keys secret
    assert answer.status == 200
    [item] = answer.json()["items"]
    assert (item["provider"], item["key_source"], item["would_try"]) == ("siliconflow", "deployment", True)
    assert stack.env["PROVIDER_KEYS_SECRET"] == ""


def test_given_a_running_stack_when_stopped_then_environment_threads_and_modules_are_restored(tiny):
    before_env = dict(os.environ)
    stack = tiny(workers=True, IMAGEGEN_LOCAL_SCHEDULE_SECONDS="60")
    url = stack.url
    assert http("GET", f"{url}/v1/health").status == 200

    stack.stop()

    assert dict(os.environ) == before_env
    assert [t.name for t in threading.enumerate() if t.name.startswith(("sqs-", "schedule-", "imagegen-local"))] == []
    assert [name for name in sys.modules if name.startswith("_imagegen_local_")] == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=1):
        pass


def test_given_a_tiny_template_when_started_then_conditions_refs_and_sub_resolve(tiny):
    stack = tiny()

    assert stack.env["QUEUE_URL"] == stack.physical_id("Queue")
    assert stack.env["BUCKET"] == stack.physical_id("Bucket")
    assert stack.env["SECRET"].startswith(
        f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{stack.stack_name}/keys"
    )
    assert stack.env["KEY_ARN"] == stack.resources["Key"].attrs["Arn"]
    keys = stack.client("kms").list_keys()["Keys"]
    assert stack.physical_id("Key") in [key["KeyId"] for key in keys]
    assert "UnusedKey" not in stack.resources  # its condition is false
    assert stack.resource_types["Logs"] == "AWS::Logs::LogGroup"  # declared, not emulated, still resolvable
    assert stack.env["LOGS"] == f"/local/{stack.stack_name}-Logs"


def test_given_two_functions_setting_one_name_differently_when_started_then_it_is_an_error(
    local_stack_factory, tiny_root
):
    template = tiny_root / "template.yaml"
    template.write_text(
        template.read_text().replace(
            "      CodeUri: tick\n",
            "      CodeUri: tick\n      Environment:\n        Variables:\n          GREETING: hi\n",
        )
    )
    before_env = dict(os.environ)

    with pytest.raises(LocalStackError, match="set GREETING to different values"):
        local_stack_factory(tiny_root, issue_tokens=False)

    assert dict(os.environ) == before_env


# Gateway


def test_given_a_public_route_when_called_without_a_token_then_the_function_gets_a_rest_proxy_event(tiny):
    stack = tiny()

    answer = http("GET", f"{stack.url}/v1/health?a=1&a=2&b=", headers={"X-Twice": "x"})

    assert answer.status == 200
    echo = answer.json()
    event = echo["event"]
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/v1/health", "/v1/health", "GET")
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["pathParameters"] is None
    assert event["headers"]["X-Twice"] == "x"
    assert event["multiValueHeaders"]["X-Twice"] == ["x"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["stage"], context["resourcePath"], context["httpMethod"]) == ("api", "/v1/health", "GET")
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert "authorizer" not in context
    assert echo["greeting"] == "hello"
    assert echo["function_name"] == f"{stack.stack_name}-EchoFunction"
    assert 0 < echo["remaining_ms"] <= 5000
    assert stack.function("AuthFunction").invocations == 0
    assert answer.header("Set-Cookie") == ["a=1", "b=2"]  # multiValueHeaders win over headers for one name
    assert answer.header("X-Single") == ["one"]


def test_given_routes_of_different_specificity_when_called_then_the_most_specific_path_wins(tiny):
    stack = tiny()

    item = http("GET", f"{stack.url}/v1/items/42", token="tok-alice").json()["event"]
    nested = http("GET", f"{stack.url}/v1/items/42/parts/7", token="tok-alice").json()["event"]
    other = http("DELETE", f"{stack.url}/v1/things", token="tok-alice").json()["event"]
    staged = http("GET", f"{stack.url}/api/v1/items/9", token="tok-alice").json()["event"]

    assert (item["resource"], item["pathParameters"]) == ("/v1/items/{id}", {"id": "42"})
    assert (nested["resource"], nested["pathParameters"]) == ("/v1/{proxy+}", {"proxy": "items/42/parts/7"})
    assert (other["resource"], other["httpMethod"], other["pathParameters"]) == (
        "/v1/{proxy+}",
        "DELETE",
        {"proxy": "things"},
    )
    assert (staged["path"], staged["requestContext"]["path"]) == ("/v1/items/9", "/api/v1/items/9")


def test_given_no_matching_route_when_called_then_the_gateway_answers_its_own_404(tiny):
    stack = tiny()

    unknown = http("GET", f"{stack.url}/nowhere", token="tok-alice")
    wrong_method = http("POST", f"{stack.url}/v1/items/42", token="tok-alice")

    assert (unknown.status, unknown.json()) == (404, {"error": {"code": "not_found", "message": "No such route."}})
    assert wrong_method.status == 404
    assert stack.function("EchoFunction").invocations == 0


def test_given_a_missing_or_unknown_token_when_calling_a_protected_route_then_401_and_no_handler_runs(tiny):
    stack = tiny()

    missing = http("GET", f"{stack.url}/v1/items/1")
    unknown = http("GET", f"{stack.url}/v1/items/1", token="not-a-token")

    for answer in (missing, unknown):
        assert answer.status == 401
        assert answer.json() == {"error": {"code": "unauthorized", "message": "no"}}
        assert answer.header("WWW-Authenticate") == ["Bearer"]
    assert stack.function("AuthFunction").invocations == 1  # a missing header never reaches the authorizer
    assert stack.function("EchoFunction").invocations == 0


def test_given_a_valid_token_when_called_then_authorizer_context_reaches_the_handler_and_is_cached(tiny):
    stack = tiny()

    first = http("GET", f"{stack.url}/v1/items/1", token="tok-alice")
    second = http("POST", f"{stack.url}/v1/other", token="tok-alice", body=b"{}")

    assert (first.status, second.status) == (200, 200)
    authorizer = first.json()["event"]["requestContext"]["authorizer"]
    assert authorizer.pop("integrationLatency") >= 0
    assert authorizer == {"principalId": "alice", "user_id": "alice", "admin": "false", "n": "3"}
    assert second.json()["event"]["requestContext"]["authorizer"]["user_id"] == "alice"
    assert stack.function("AuthFunction").invocations == 1  # the second call used the cached policy
    assert stack.tokens == {"alice": "tok-alice", "mallory": "tok-mallory"}


def test_given_a_policy_that_denies_when_called_then_403_and_no_handler_runs(tiny):
    stack = tiny()

    answer = http("GET", f"{stack.url}/v1/items/1", token="tok-mallory")

    assert (answer.status, answer.json()) == (403, {"error": {"code": "forbidden", "message": "denied"}})
    assert stack.function("EchoFunction").invocations == 0


def test_given_a_binary_body_when_posted_then_it_arrives_base64_and_binary_answers_are_decoded(tiny):
    stack = tiny()
    payload = bytes(range(256))

    echoed = http(
        "POST", f"{stack.url}/v1/upload", token="tok-alice", body=payload, headers={"Content-Type": "image/png"}
    )
    text = http(
        "POST",
        f"{stack.url}/v1/upload",
        token="tok-alice",
        body=b'{"a": 1}',
        headers={"Content-Type": "application/json"},
    )
    image = http("GET", f"{stack.url}/v1/png", token="tok-alice")

    event = echoed.json()["event"]
    assert (event["isBase64Encoded"], base64.b64decode(event["body"])) == (True, payload)
    assert (text.json()["event"]["isBase64Encoded"], text.json()["event"]["body"]) == (False, '{"a": 1}')
    assert (image.status, image.body, image.header("Content-Type")) == (200, b"\x89PNG-bytes", ["image/png"])


def test_given_concurrent_requests_when_served_then_each_runs_in_its_own_container(tiny):
    stack = tiny()
    answers: list[Answer] = []

    def call() -> None:
        answers.append(http("GET", f"{stack.url}/v1/slow", token="tok-alice"))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    later = http("GET", f"{stack.url}/v1/items/1", token="tok-alice")

    assert [answer.status for answer in answers] == [200, 200]
    assert later.status == 200
    # As in Lambda, a busy execution environment is never shared, and an idle one is reused.
    assert stack.function("EchoFunction").containers == 2
    assert stack.function("EchoFunction").invocations == 3


def test_given_a_failing_or_malformed_function_when_called_then_502_with_the_gateway_body(tiny):
    stack = tiny()

    boom = http("GET", f"{stack.url}/v1/boom", token="tok-alice")
    malformed = http("GET", f"{stack.url}/v1/malformed", token="tok-alice")

    for answer in (boom, malformed):
        assert answer.status == 502
        assert answer.json() == {"error": {"code": "internal_error", "message": "Internal server error"}}


# SQS loop and schedule


def _deliveries(stack: LocalStack, message_id: str) -> list[dict[str, Any]]:
    items = stack.client("dynamodb").query(
        TableName=stack.physical_id("Table"),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"DELIVERY#{message_id}"}},
        ConsistentRead=True,
    )["Items"]
    return [json.loads(item["record"]["S"]) for item in items]


def test_given_a_message_the_worker_reports_failed_when_polled_then_it_returns_and_lands_in_the_dlq(tiny):
    stack = tiny(workers=True)
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.physical_id("Queue"), MessageBody=json.dumps({"id": "bad", "outcome": "fail"}))
    sqs.send_message(QueueUrl=stack.physical_id("Queue"), MessageBody=json.dumps({"id": "good", "outcome": "ok"}))

    dead = wait_for(
        lambda: sqs.receive_message(QueueUrl=stack.physical_id("DeadLetters"), WaitTimeSeconds=1).get("Messages")
    )

    assert [json.loads(message["Body"])["id"] for message in dead] == ["bad"]
    bad = _deliveries(stack, "bad")
    assert [record["attributes"]["ApproximateReceiveCount"] for record in bad] == ["1", "2"]  # maxReceiveCount 2
    assert [record["attributes"]["ApproximateReceiveCount"] for record in _deliveries(stack, "good")] == ["1"]
    record = bad[0]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        stack.resources["Queue"].attrs["Arn"],
        "us-east-1",
    )
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    remaining = sqs.get_queue_attributes(
        QueueUrl=stack.physical_id("Queue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert remaining == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_given_a_handler_that_raises_when_polled_then_the_whole_batch_is_redelivered(tiny):
    stack = tiny(workers=True)
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.physical_id("Queue"), MessageBody=json.dumps({"id": "raises", "outcome": "raise"}))

    wait_for(lambda: sqs.receive_message(QueueUrl=stack.physical_id("DeadLetters"), WaitTimeSeconds=1).get("Messages"))

    assert len(_deliveries(stack, "raises")) == 2


def test_given_a_rate_schedule_when_the_stack_runs_then_the_function_gets_scheduled_events(tiny):
    stack = tiny(IMAGEGEN_LOCAL_SCHEDULE_SECONDS="0.3")  # one schedule minute lasts 0.3 s

    items = wait_for(
        lambda: stack.client("dynamodb").query(
            TableName=stack.physical_id("Table"),
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "TICK"}},
        )["Items"]
    )

    event = json.loads(items[0]["event"]["S"])
    assert (event["detail-type"], event["source"], event["detail"]) == ("Scheduled Event", "aws.events", {})
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/TickFunctionEvery"]


def test_given_a_function_name_when_invoked_directly_then_its_result_comes_back(tiny):
    stack = tiny()

    by_id = stack.invoke("EchoFunction", {"path": "/v1/direct"})
    by_dir = stack.invoke("echo", {"path": "/v1/direct"})

    assert json.loads(by_id["body"])["event"] == {"path": "/v1/direct"}
    assert by_dir["statusCode"] == 200
    with pytest.raises(LocalStackError, match="no function 'nope'"):
        stack.invoke("nope", {})


# The repository's own stack, end to end


@pytest.fixture
def template_only_stack(local_stack_factory, monkeypatch) -> LocalStack:
    """The repository's stack configured by the template alone: the suite's own Powertools settings removed."""
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    return local_stack_factory(
        env_overrides={"IMAGEGEN_PROVIDERS": "placeholder", "IMAGEGEN_LOCAL_VISIBILITY_TIMEOUT": "3"}
    )


def test_given_the_local_stack_when_an_image_is_created_over_http_then_it_succeeds_and_downloads_as_png(
    template_only_stack,
):
    local_stack = template_only_stack
    created = http(
        "POST",
        f"{local_stack.url}/v1/images",
        token=local_stack.token,
        body=json.dumps({"prompt": "a lighthouse at dusk", "width": 128, "height": 96}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert created.status == 202
    job_id = created.json()["id"]
    assert created.header("Location") == [f"/v1/images/{job_id}"]

    def finished() -> dict[str, Any] | None:
        job = http("GET", f"{local_stack.url}/v1/images/{job_id}", token=local_stack.token).json()
        return job if job["status"] not in ("queued", "running") else None

    job = wait_for(finished, timeout=20, interval=0.2)
    redirect = http("GET", f"{local_stack.url}/v1/images/{job_id}/content", token=local_stack.token)
    [location] = redirect.header("Location")
    with urllib.request.urlopen(location, timeout=10) as response:  # the presigned URL, on the emulator
        png = response.read()

    assert (job["status"], job["provider"]) == ("succeeded", "placeholder")
    assert (job["image"]["width"], job["image"]["height"], job["image"]["bytes"]) == (128, 96, len(png))
    assert redirect.status == 302
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert local_stack.function("WorkerFunction").invocations == 1
    assert [local_stack.function(name).errors for name in ("ApiFunction", "AuthorizerFunction", "WorkerFunction")] == [
        0,
        0,
        0,
    ]
    other = http("GET", f"{local_stack.url}/v1/images/{job_id}", token="igk_not-a-token")
    assert other.status == 401


def test_given_provider_keys_in_the_environment_when_the_stack_starts_then_the_functions_use_them(
    local_stack_factory, monkeypatch
):
    from imagegen import wiring
    from imagegen.settings import KeySettings

    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-FromTheDevelopersShell01")  # as in `SILICONFLOW_API_KEY=... make run`

    stack = local_stack_factory(
        serve_http=False,
        run_workers=False,
        run_schedules=False,
        issue_tokens=False,
        env_overrides={"HF_TOKEN": "hf_FromTheTestsOverrides01"},
    )

    keys = wiring.deployment_keys(KeySettings.from_env(os.environ))
    assert stack.physical_id("ProviderKeysSecret")  # the secret is still created, as the template declares it
    assert keys.get("siliconflow").get_secret_value() == "sk-FromTheDevelopersShell01"
    assert keys.get("huggingface").get_secret_value() == "hf_FromTheTestsOverrides01"


def test_given_an_event_file_when_invoked_from_the_cli_then_the_result_json_is_printed(capsys, monkeypatch):
    from imagegen.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parents[2])

    status = main(["local", "invoke", "ApiFunction", "-e", "events/api_health.json"])

    out = capsys.readouterr().out
    assert status == 0
    result = json.loads(out)
    assert (result["statusCode"], json.loads(result["body"])["status"]) == (200, "ok")


def test_given_the_sample_events_when_invoked_on_the_local_stack_then_each_handler_accepts_its_event(
    local_stack_factory,
):
    events = Path(__file__).resolve().parents[2] / "events"
    stack = local_stack_factory(
        serve_http=False,
        run_workers=False,
        run_schedules=False,
        env_overrides={"IMAGEGEN_LOCAL_TOKENS": "alice:igk_example-token-not-real"},
    )

    api = {
        path.name: stack.invoke("ApiFunction", json.loads(path.read_text()))["statusCode"]
        for path in sorted(events.glob("api_*.json"))
    }
    policy = stack.invoke("AuthorizerFunction", json.loads((events / "authorizer_request.json").read_text()))
    batch = json.loads((events / "worker_sqs_batch.json").read_text())
    worked = stack.invoke("WorkerFunction", batch)

    assert api == {
        "api_cancel_image.json": 404,  # the sample job does not exist in a fresh stack
        "api_create_image.json": 202,
        "api_get_image.json": 404,
        "api_get_image_content.json": 404,
        "api_health.json": 200,
        "api_list_images.json": 200,
        "api_openapi.json": 200,
        "api_retry_image.json": 404,
    }
    assert (policy["principalId"], policy["context"]) == ("alice", {"user_id": "alice"})
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    ids = {record["messageId"] for record in batch["Records"]}
    assert {failure["itemIdentifier"] for failure in worked["batchItemFailures"]} <= ids


def test_given_a_running_stack_when_a_token_is_created_from_the_cli_then_the_api_accepts_it(local_stack, capsys):
    from imagegen.cli import main

    status = main(["tokens", "create", "--user", "bob"])  # TABLE_NAME and the endpoint come from the stack
    token = capsys.readouterr().out.strip()

    assert status == 0
    assert token.startswith("igk_")
    listed = http("GET", f"{local_stack.url}/v1/images", token=token)
    assert (listed.status, listed.json()) == (200, {"items": [], "next_cursor": None})
