"""The local stack's pure rules: template reading, intrinsics, gateway matching, SQS and schedule semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
from imagegen.local.cfn import Context, Physical, Resolver, TemplateError, evaluate_conditions, load_template
from imagegen.local.gateway import Gateway, HttpRequest, _allows
from imagegen.local.pollers import failed_message_ids, rate_seconds, sqs_record
from imagegen.local.spec import ApiSpec, GatewayResponseSpec, RouteSpec, merge_globals
from imagegen.local.stack import LocalStackError, parse_tokens


def _context(**resources: Physical) -> Context:
    return Context(
        region="eu-west-1",
        stack_name="s",
        parameters={"Name": "n", "Count": "4", "List": ["a", "b"]},
        resources=dict(resources),
    )


def test_given_short_tags_when_loaded_then_they_become_long_form_intrinsics(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text(
        'AWSTemplateFormatVersion: "2010-09-09"\n'
        "Resources:\n"
        "  A:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      Ref: !Ref Name\n"
        "      Att: !GetAtt Q.Arn\n"
        "      Sub: !Sub '${Name}-x'\n"
        "      Join: !Join [',', [a, !Ref Name]]\n"
        "      If: !If [C, 1, 2]\n"
        "      Date: 2010-09-09\n"
    )

    props = load_template(path)["Resources"]["A"]["Properties"]

    assert props == {
        "Ref": {"Ref": "Name"},
        "Att": {"Fn::GetAtt": ["Q", "Arn"]},
        "Sub": {"Fn::Sub": "${Name}-x"},
        "Join": {"Fn::Join": [",", ["a", {"Ref": "Name"}]]},
        "If": {"Fn::If": ["C", 1, 2]},
        "Date": "2010-09-09",  # CloudFormation reads dates as strings
    }


def test_given_intrinsics_when_resolved_then_refs_attributes_and_pseudo_parameters_are_filled_in():
    resolver = Resolver(_context(Queue=Physical(ref="https://q", attrs={"Arn": "arn:q", "QueueName": "q"})))

    resolved = resolver.resolve(
        {
            "url": {"Ref": "Queue"},
            "arn": {"Fn::GetAtt": ["Queue", "Arn"]},
            "sub": {"Fn::Sub": "${AWS::Region}/${Queue.QueueName}/${Name}/${!Literal}"},
            "sub_vars": {"Fn::Sub": ["${x}-${Count}", {"x": {"Ref": "Name"}}]},
            "join": {"Fn::Join": ["-", {"Ref": "List"}]},
            "select": {"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]},
            "gone": {"Ref": "AWS::NoValue"},
            "list": ["keep", {"Ref": "AWS::NoValue"}],
        }
    )

    assert resolved == {
        "url": "https://q",
        "arn": "arn:q",
        "sub": "eu-west-1/q/n/${Literal}",
        "sub_vars": "n-4",
        "join": "a-b",
        "select": "b",
        "list": ["keep"],
    }


def test_given_an_unknown_reference_when_resolved_then_the_error_names_it():
    with pytest.raises(TemplateError, match="Ref Missing"):
        Resolver(_context()).resolve({"Ref": "Missing"})


def test_given_conditions_naming_each_other_when_evaluated_then_all_resolve():
    context = _context()
    template = {
        "Conditions": {
            "Both": {"Fn::And": [{"Condition": "IsN"}, {"Fn::Not": [{"Condition": "IsM"}]}]},
            "IsN": {"Fn::Equals": [{"Ref": "Name"}, "n"]},
            "IsM": {"Fn::Equals": [{"Ref": "Name"}, "m"]},
        }
    }

    assert evaluate_conditions(template, context) == {"IsN": True, "IsM": False, "Both": True}


def test_given_globals_and_function_properties_when_merged_then_sam_rules_apply():
    merged = merge_globals(
        {"Timeout": 30, "Layers": ["g"], "Environment": {"Variables": {"A": "1", "B": "1"}}},
        {"Timeout": 120, "Layers": ["f"], "Environment": {"Variables": {"B": "2"}}},
    )

    assert merged == {"Timeout": 120, "Layers": ["g", "f"], "Environment": {"Variables": {"A": "1", "B": "2"}}}


def _gateway(*routes: tuple[str, str, str]) -> tuple[Gateway, list[tuple[str, dict]]]:
    calls: list[tuple[str, dict]] = []
    api = ApiSpec(
        logical_id="Api",
        api_id="abc",
        stage="api",
        authorizers={},
        default_authorizer=None,
        gateway_responses={
            "MISSING_AUTHENTICATION_TOKEN": GatewayResponseSpec(404, {}, '{"m":$context.error.messageString}')
        },
        binary_media_types=(),
    )

    def invoke(function: str, event: dict) -> dict:
        calls.append((function, event))
        return {"statusCode": 200, "body": ""}

    gateway = Gateway(
        apis={"Api": api},
        routes=[
            RouteSpec(api="Api", path=path, method=method, function=function, authorizer=None)
            for path, method, function in routes
        ],
        invoke=invoke,
        region="us-east-1",
        account_id="123456789012",
    )
    return gateway, calls


@pytest.mark.parametrize(
    ("method", "path", "function", "resource"),
    [
        ("GET", "/v1/health", "health", "/v1/health"),
        ("GET", "/v1/images/1", "item", "/v1/images/{id}"),
        ("GET", "/v1/images/1/content", "proxy", "/v1/{proxy+}"),
        ("PUT", "/v1/keys/horde", "keys", "/v1/keys/{provider}"),
        ("PATCH", "/v1/images/1", "any-item", "/v1/images/{id}"),
    ],
)
def test_given_overlapping_routes_when_matched_then_literal_beats_parameter_beats_greedy(
    method, path, function, resource
):
    gateway, calls = _gateway(
        ("/v1/{proxy+}", "ANY", "proxy"),
        ("/v1/health", "GET", "health"),
        ("/v1/images/{id}", "GET", "item"),
        ("/v1/images/{id}", "ANY", "any-item"),
        ("/v1/keys/{provider}", "PUT", "keys"),
    )

    answer = gateway.handle(HttpRequest(method=method, target=path, headers=[], body=b""))

    assert answer.status == 200
    assert [(name, event["resource"]) for name, event in calls] == [(function, resource)]


def test_given_a_path_without_a_route_when_matched_then_the_gateway_response_template_is_rendered():
    gateway, calls = _gateway(("/v1/health", "GET", "health"))

    answer = gateway.handle(HttpRequest(method="GET", target="/v2/x", headers=[], body=b""))

    assert (answer.status, answer.body) == (404, b'{"m":"Missing Authentication Token"}')
    assert calls == []


@pytest.mark.parametrize(
    ("statements", "allowed"),
    [
        (
            [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:r:1:abc/api/*/*"}],
            True,
        ),
        (
            [{"Effect": "Allow", "Action": "execute-api:*", "Resource": ["arn:aws:execute-api:r:1:abc/api/GET/v1/*"]}],
            True,
        ),
        (
            [
                {
                    "Effect": "Allow",
                    "Action": "execute-api:Invoke",
                    "Resource": "arn:aws:execute-api:r:1:abc/api/GET/v1/other",
                }
            ],
            False,
        ),
        (
            [
                {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
                {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:r:1:abc/api/GET/*"},
            ],
            False,
        ),
        ([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}], False),
    ],
)
def test_given_an_authorizer_policy_when_evaluated_then_iam_rules_decide(statements, allowed):
    policy = {"Version": "2012-10-17", "Statement": statements}

    assert _allows(policy, "arn:aws:execute-api:r:1:abc/api/GET/v1/images") is allowed


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"id": "b"}]}, {"a", "b"}),
        ("not an object", {"a", "b"}),
    ],
)
def test_given_a_worker_result_when_read_then_lambda_partial_batch_rules_apply(result, failed):
    assert failed_message_ids(result, ["a", "b"]) == failed


def test_given_a_received_message_when_turned_into_a_record_then_it_has_lambdas_sqs_shape():
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "Policy": "not passed on"},
        "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "generate"}},
        "MD5OfMessageAttributes": "x",
    }

    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")

    assert record == {
        "messageId": "m-1",
        "receiptHandle": "rh",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "messageAttributes": {
            "kind": {"stringValue": "generate", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
        },
        "md5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "md5OfMessageAttributes": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        ("cron(0 * * * ? *)", None),
    ],
)
def test_given_a_schedule_expression_when_parsed_then_rates_have_a_period(expression, seconds):
    assert rate_seconds(expression) == seconds


def test_given_local_tokens_when_parsed_then_pairs_map_users_to_tokens():
    assert parse_tokens("alice:tokA, bob:tokB") == {"alice": "tokA", "bob": "tokB"}
    assert parse_tokens("") == {}
    with pytest.raises(LocalStackError, match="user:token pairs"):
        parse_tokens("alice")
