"""template.yaml declares what the service relies on: read as data, no AWS and no SAM CLI."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from imagegen.local.cfn import load_template

ROOT = Path(__file__).resolve().parents[2]
# The functions of the job path; checks that hold for every function (later ones too) use _functions().
FUNCTIONS = ("ApiFunction", "AuthorizerFunction", "WorkerFunction")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == kind}


def _props(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][name]["Properties"]


def _functions(template: dict[str, Any]) -> list[str]:
    return sorted(_resources(template, "AWS::Serverless::Function"))


def _default(template: dict[str, Any], parameter: str) -> int:
    return int(template["Parameters"][parameter]["Default"])


def test_given_the_globals_when_read_then_every_function_runs_python313_on_arm64_traced_with_the_layer(template):
    function_globals = template["Globals"]["Function"]

    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Layers"] == [{"Ref": "CommonLayer"}]
    assert set(FUNCTIONS) <= set(_functions(template))
    for name in _functions(template):
        overridden = {"Runtime", "Architectures", "Tracing", "Layers"} & set(_props(template, name))
        assert overridden == set(), f"{name} overrides {overridden}"


def test_given_the_layer_when_read_then_sam_builds_it_for_python313_on_arm64(template):
    layer = template["Resources"]["CommonLayer"]

    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Properties"]["ContentUri"] == "layers/common"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert (ROOT / "layers/common/requirements.txt").is_file()


def test_given_each_function_when_read_then_it_logs_to_its_own_group_with_parameterised_retention(template):
    groups = _resources(template, "AWS::Logs::LogGroup")

    targets = [_props(template, name)["LoggingConfig"]["LogGroup"] for name in _functions(template)]

    assert targets == [{"Ref": f"{name}LogGroup"} for name in _functions(template)]
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert _default(template, "LogRetentionDays") == 30


def test_given_the_environment_when_read_then_handlers_get_exactly_the_names_they_read(template):
    shared = {
        "POWERTOOLS_SERVICE_NAME": "imagegen",
        "POWERTOOLS_METRICS_NAMESPACE": "imagegen",
        "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
        "LOG_LEVEL": {"Ref": "LogLevel"},
        "TABLE_NAME": {"Ref": "Table"},
        "BUCKET_NAME": {"Ref": "ImagesBucket"},
        "QUEUE_URL": {"Ref": "JobsQueue"},
    }

    def variables(name: str) -> dict[str, Any]:
        return _props(template, name).get("Environment", {}).get("Variables", {})

    assert template["Globals"]["Function"]["Environment"]["Variables"] == shared
    assert variables("ApiFunction") == {
        "JOB_TTL_DAYS": {"Ref": "JobTtlDays"},
        "IMAGEGEN_PROVIDERS": {"Ref": "DefaultProviders"},
        "DAILY_IMAGE_QUOTA": {"Ref": "DailyImageQuota"},
        "IMAGES_PER_MINUTE": {"Ref": "ImagesPerMinutePerUser"},
        "VIDEO_QUOTA_UNITS": {"Ref": "VideoQuotaUnits"},
        "VIDEO_PROVIDERS": {"Ref": "VideoProviders"},
        "KEYS_KMS_KEY_ID": {"Ref": "KeysKey"},
        "PROVIDER_KEYS_SECRET": {"Ref": "ProviderKeysSecret"},
        "WEBHOOK_QUEUE_URL": {"Ref": "WebhooksQueue"},
    }
    assert variables("AuthorizerFunction") == {}
    assert variables("WorkerFunction") == {
        "JOB_MAX_RECEIVE_COUNT": {"Ref": "JobMaxReceiveCount"},
        "JOB_LEASE_SECONDS": {"Ref": "JobLeaseSeconds"},
        "WORKER_DEADLINE_SECONDS": {"Ref": "WorkerDeadlineSeconds"},
        "WORKER_MAX_CONCURRENCY": {"Ref": "WorkerMaxConcurrency"},
        "JOB_MAX_AGE_SECONDS": {"Ref": "JobMaxAgeSeconds"},
        "IMAGEGEN_PROVIDERS": {"Ref": "DefaultProviders"},
        "MEDIA_ALLOWED_HOSTS": {"Ref": "MediaAllowedHosts"},
        "PROVIDER_KEYS_SECRET": {"Ref": "ProviderKeysSecret"},
        "KEYS_KMS_KEY_ID": {"Ref": "KeysKey"},
        "WEBHOOK_QUEUE_URL": {"Ref": "WebhooksQueue"},
        "JOB_TTL_DAYS": {"Ref": "JobTtlDays"},
        "VIDEO_PROVIDERS": {"Ref": "VideoProviders"},
    }
    assert variables("ScheduledFunction") == {
        "JOB_TTL_DAYS": {"Ref": "JobTtlDays"},
        "JOB_MAX_RECEIVE_COUNT": {"Ref": "JobMaxReceiveCount"},
        "JOB_MAX_AGE_SECONDS": {"Ref": "JobMaxAgeSeconds"},
        "PROVIDER_KEYS_SECRET": {"Ref": "ProviderKeysSecret"},
        "KEYS_KMS_KEY_ID": {"Ref": "KeysKey"},
        "WEBHOOK_QUEUE_URL": {"Ref": "WebhooksQueue"},
    }
    # On by default (issue 12): a deployment raises them, or turns them off with 0.
    assert _default(template, "DailyImageQuota") == 200
    assert _default(template, "ImagesPerMinutePerUser") == 60
    # A video costs ten images of the daily quota unless the deployment says otherwise (issue 14)
    assert _default(template, "VideoQuotaUnits") == 10
    assert variables("MediaProxyFunction") == {"MEDIA_ALLOWED_HOSTS": {"Ref": "MediaAllowedHosts"}}
    assert variables("WebhookFunction") == {
        "WEBHOOK_QUEUE_URL": {"Ref": "WebhooksQueue"},
        "WEBHOOK_RETRY_SCHEDULE": {"Ref": "WebhookRetrySchedule"},
        "JOB_TTL_DAYS": {"Ref": "JobTtlDays"},
    }
    assert template["Parameters"]["DefaultProviders"]["Default"] == "siliconflow,huggingface,horde,pollinations"
    # Base URLs have defaults in code and are overridden from the process environment, never the template.
    assert "_BASE_URL" not in json.dumps(template)


def test_given_the_queue_when_read_then_visibility_is_at_least_six_worker_timeouts(template):
    worker_timeout = _props(template, "WorkerFunction")["Timeout"]

    assert worker_timeout == 120
    assert _props(template, "JobsQueue")["VisibilityTimeout"] >= 6 * worker_timeout


def test_given_the_dead_letter_queue_when_read_then_redrive_and_worker_share_one_max_receive_count(template):
    redrive = _props(template, "JobsQueue")["RedrivePolicy"]
    worker_env = _props(template, "WorkerFunction")["Environment"]["Variables"]

    assert redrive == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "JobMaxReceiveCount"},
    }
    assert worker_env["JOB_MAX_RECEIVE_COUNT"] == redrive["maxReceiveCount"]
    assert _default(template, "JobMaxReceiveCount") == 4
    for queue in ("JobsQueue", "JobsDeadLetterQueue"):
        assert _props(template, queue)["SqsManagedSseEnabled"] is True


def test_given_the_lease_and_deadline_when_read_then_they_fit_between_timeout_and_visibility(template):
    timeout = _props(template, "WorkerFunction")["Timeout"]
    visibility = _props(template, "JobsQueue")["VisibilityTimeout"]
    lease = template["Parameters"]["JobLeaseSeconds"]
    deadline = template["Parameters"]["WorkerDeadlineSeconds"]

    assert timeout < lease["MinValue"] <= lease["Default"] <= lease["MaxValue"] < visibility
    assert (lease["Default"], deadline["Default"]) == (150, 100)
    assert deadline["MaxValue"] < timeout


def test_given_the_worker_when_read_then_it_reports_partial_batch_failures_within_its_concurrency(template):
    events = _props(template, "WorkerFunction")["Events"]

    assert events == {
        "Jobs": {
            "Type": "SQS",
            "Properties": {
                "Queue": {"Fn::GetAtt": ["JobsQueue", "Arn"]},
                "BatchSize": 1,
                "ScalingConfig": {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}},
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        }
    }
    parameter = template["Parameters"]["WorkerMaxConcurrency"]
    # SQS event sources take 2-1000; the default is 20.
    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (20, 2, 1000)


def _stack_reference(value: Any, resources: set[str]) -> bool:
    """A Ref / GetAtt / Sub that names a resource of this stack (never a wildcard or another account's)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    [(function, argument)] = value.items()
    if function == "Ref":
        return argument in resources
    if function == "Fn::GetAtt":
        return argument[0] in resources
    if function == "Fn::Sub":
        names = re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", argument)
        return bool(names) and all(name in resources for name in names)
    return False


def test_given_the_policies_when_read_then_each_is_scoped_to_resources_of_this_stack(template):
    resources = set(template["Resources"])
    expected = {
        "ApiFunction": [
            "DynamoDBCrudPolicy",
            "Statement",
            "SQSSendMessagePolicy",
            "AWSSecretsManagerGetSecretValuePolicy",
            # Encrypt only: no API route decrypts a stored key.
            "KMSEncryptPolicy",
            "SQSSendMessagePolicy",
        ],
        "AuthorizerFunction": ["Statement"],
        "WorkerFunction": [
            "DynamoDBCrudPolicy",
            "Statement",
            "SQSSendMessagePolicy",
            "AWSSecretsManagerGetSecretValuePolicy",
            "KMSDecryptPolicy",
            "SQSSendMessagePolicy",
        ],
        "MediaProxyFunction": ["Statement"],
        "WebhookFunction": ["Statement", "SQSSendMessagePolicy"],
        "ScheduledFunction": [
            "DynamoDBCrudPolicy",
            "SQSSendMessagePolicy",
            "SQSSendMessagePolicy",
            "AWSSecretsManagerGetSecretValuePolicy",
            "KMSDecryptPolicy",
        ],
    }

    for name, kinds in expected.items():
        assert [next(iter(policy)) for policy in _props(template, name)["Policies"]] == kinds, name
    for name in _functions(template):
        for policy in _props(template, name).get("Policies", []):
            assert isinstance(policy, dict) and len(policy) == 1, f"{name}: {policy}"
            [(kind, arguments)] = policy.items()
            if kind == "Statement":
                # Inline statements: every resource is one of ours, never "*".
                for statement in arguments:
                    targets = (
                        statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                    )
                    assert all(_stack_reference(target, resources) for target in targets), f"{name}: {statement}"
            else:
                # A SAM policy template whose every argument names one resource of this stack.
                assert all(_stack_reference(value, resources) for value in arguments.values()), f"{name}: {policy}"


def test_given_the_whole_template_when_read_then_no_policy_grants_everything(template):
    text = json.dumps(template)

    assert "FullAccess" not in text
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::KMS::Key":
            continue  # a key policy's Resource "*" means this key only; the test below checks who it admits
        for statement in _statements(resource.get("Properties", {})):
            if statement.get("Effect") == "Allow":
                assert statement.get("Resource") not in ("*", ["*"]), statement


def test_given_the_keys_key_when_read_then_it_rotates_and_only_the_account_administers_it(template):
    key = _props(template, "KeysKey")

    assert key["EnableKeyRotation"] is True
    [statement] = key["KeyPolicy"]["Statement"]
    assert statement["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert template["Outputs"]["KeysKeyId"]["Value"] == {"Ref": "KeysKey"}


def test_given_the_scheduled_function_when_read_then_it_runs_every_15_minutes_within_its_timeout(template):
    props = _props(template, "ScheduledFunction")

    assert props["Events"] == {
        "Sweep": {
            "Type": "Schedule",
            "Properties": {
                "Schedule": "rate(15 minutes)",
                "Description": "Stuck-job sweeper and key-health checks.",
            },
        }
    }
    assert (props["CodeUri"], props["Handler"]) == ("functions/scheduled", "app.lambda_handler")
    # Shorter than the schedule's period, so two runs never overlap.
    assert props["Timeout"] < 15 * 60
    assert _default(template, "JobMaxAgeSeconds") == 3600


def _statements(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        found = list(value["Statement"]) if isinstance(value.get("Statement"), list) else []
        for item in value.values():
            found.extend(_statements(item))
        return found
    if isinstance(value, list):
        return [statement for item in value for statement in _statements(item)]
    return []


def test_given_the_table_when_read_then_keys_index_ttl_recovery_and_encryption_are_declared(template):
    table = _props(template, "Table")

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
        "gsi1pk": "S",
        "gsi1sk": "S",
    }
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "gsi1",
            "KeySchema": [
                {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_given_the_bucket_when_read_then_it_is_private_encrypted_expiring_and_tls_only(template):
    bucket = _props(template, "ImagesBucket")
    policy = _props(template, "ImagesBucketPolicy")

    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-images"]["ExpirationInDays"] == {"Ref": "ImageRetentionDays"}
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert _default(template, "ImageRetentionDays") == 30
    assert policy["Bucket"] == {"Ref": "ImagesBucket"}
    [statement] = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_given_the_api_when_read_then_the_request_authorizer_is_the_default_with_a_300_s_cache(template):
    api = _props(template, "Api")

    assert api["StageName"] == "api"
    assert api["TracingEnabled"] is True
    assert api["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert api["Auth"]["DefaultAuthorizer"] == "TokenAuthorizer"
    assert api["Auth"]["Authorizers"] == {
        "TokenAuthorizer": {
            "FunctionArn": {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]},
            "FunctionPayloadType": "REQUEST",
            "Identity": {"Headers": ["Authorization"], "ReauthorizeEvery": 300},
        }
    }


@pytest.mark.parametrize(
    ("response_type", "status", "code"),
    [
        ("UNAUTHORIZED", 401, "unauthorized"),
        ("ACCESS_DENIED", 403, "forbidden"),
        ("MISSING_AUTHENTICATION_TOKEN", 404, "not_found"),
        ("DEFAULT_4XX", None, "bad_request"),
        ("DEFAULT_5XX", None, "internal_error"),
    ],
)
def test_given_a_gateway_response_when_rendered_then_it_is_the_house_error_shape(template, response_type, status, code):
    response = _props(template, "Api")["GatewayResponses"][response_type]

    body = response["ResponseTemplates"]["application/json"]
    rendered = body.replace("$context.error.messageString", '"a message"').replace("$context.requestId", "r-1")

    assert response.get("StatusCode") == status
    error = json.loads(rendered)["error"]
    assert error["code"] == code
    assert set(error) <= {"code", "message", "hint"}
    assert isinstance(error["message"], str) and error["message"]


def test_given_the_api_function_when_read_then_public_routes_skip_the_authorizer_and_the_rest_need_it(template):
    events = _props(template, "ApiFunction")["Events"]

    routes = {
        (event["Properties"]["Method"], event["Properties"]["Path"]): event["Properties"].get("Auth")
        for event in events.values()
    }

    assert all(
        event["Type"] == "Api" and event["Properties"]["RestApiId"] == {"Ref": "Api"} for event in events.values()
    )
    assert routes == {
        ("ANY", "/v1/health"): {"Authorizer": "NONE"},
        ("ANY", "/openapi.json"): {"Authorizer": "NONE"},
        ("ANY", "/docs"): {"Authorizer": "NONE"},
        ("GET", "/"): {"Authorizer": "NONE"},
        ("GET", "/assets/{name}"): {"Authorizer": "NONE"},
        ("ANY", "/v1/{proxy+}"): None,
    }


def test_given_the_functions_when_read_then_handlers_and_timeouts_fit_their_triggers(template):
    assert {name: (_props(template, name)["CodeUri"], _props(template, name)["Handler"]) for name in FUNCTIONS} == {
        "ApiFunction": ("functions/api", "app.lambda_handler"),
        "AuthorizerFunction": ("functions/authorizer", "app.lambda_handler"),
        "WorkerFunction": ("functions/worker", "app.lambda_handler"),
    }
    # API Gateway gives up after 29 s; `Prefer: wait=25` must fit inside the Api function's timeout.
    assert _props(template, "ApiFunction")["Timeout"] >= 29
    for name in _functions(template):
        assert (ROOT / _props(template, name)["CodeUri"] / "app.py").is_file()


def test_given_the_secret_when_read_then_the_authorizer_never_reads_it_and_its_name_is_an_output(template):
    secret = _props(template, "ProviderKeysSecret")

    assert secret["Name"] == template["Outputs"]["ProviderKeysSecretName"]["Value"]
    readers = [name for name in _functions(template) if "ProviderKeysSecret" in json.dumps(_props(template, name))]
    # The worker calls providers with it; the Api shows /v1/providers; the schedule checks the keys.
    assert readers == ["ApiFunction", "ScheduledFunction", "WorkerFunction"]


def test_given_the_outputs_when_read_then_clients_and_tests_find_every_resource(template):
    assert set(template["Outputs"]) >= {
        "ApiUrl",
        "ImagesBucketName",
        "TableName",
        "JobsQueueUrl",
        "JobsDeadLetterQueueUrl",
        "ProviderKeysSecretName",
        "KeysKeyId",
        "WebhooksQueueUrl",
        "WebhooksDeadLetterQueueUrl",
    }
    assert re.fullmatch(r"https://\$\{Api\}\.execute-api\..*/api", template["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"])


def test_given_samconfig_when_read_then_it_deploys_stack_imagegen_with_iam_capability():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]

    assert config["default"]["global"]["parameters"]["stack_name"] == "imagegen"
    assert (deploy["capabilities"], deploy["resolve_s3"], deploy["confirm_changeset"]) == ("CAPABILITY_IAM", True, True)
    assert deploy["region"]


def _inline(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [statement for policy in _props(template, name)["Policies"] for statement in policy.get("Statement", [])]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


IMAGES_PREFIX = {"Fn::Sub": "${ImagesBucket.Arn}/images/*"}
VIDEOS_PREFIX = {"Fn::Sub": "${ImagesBucket.Arn}/videos/*"}


def test_given_the_authorizer_when_its_policy_is_read_then_it_may_only_get_token_items(template):
    # Given the authorizer's inline statements (issue 12: it could Scan and Query the whole table)
    [statement] = _inline(template, "AuthorizerFunction")

    # Then one action, GetItem, on the table, and only on items whose key starts TOKEN#
    assert _actions(statement) == ["dynamodb:GetItem"]
    assert statement["Resource"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["TOKEN#*"]}}


def test_given_the_webhook_function_when_its_policy_is_read_then_only_users_items_one_at_a_time(template):
    # Given the webhook function's inline statements (issue 12: it had full-table CRUD)
    [statement] = _inline(template, "WebhookFunction")

    # Then item actions only (secrets, delivery records, outbox items), no Query/Scan/batch, only USER# keys
    assert sorted(_actions(statement)) == [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]
    assert statement["Resource"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["USER#*"]}}
    assert "S3" not in json.dumps(_props(template, "WebhookFunction")["Policies"])


def test_given_every_function_when_its_s3_access_is_read_then_none_covers_the_whole_bucket(template):
    # Given the worker's statements (issue 12: S3CrudPolicy covered the whole bucket)
    [worker, abort] = [s for s in _inline(template, "WorkerFunction") if _actions(s)[0].startswith("s3:")]

    # Then it writes, reads and deletes under images/ and videos/ only, and lists nothing; it may abort a video's
    # multipart upload (a body the container check refused)
    assert sorted(_actions(worker)) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert worker["Resource"] == [IMAGES_PREFIX, VIDEOS_PREFIX]
    assert (_actions(abort), abort["Resource"]) == (["s3:AbortMultipartUpload"], VIDEOS_PREFIX)
    # And no function anywhere holds a bucket-wide SAM S3 policy or an object wildcard over the whole bucket
    for name in _functions(template):
        text = json.dumps(_props(template, name).get("Policies", []))
        assert "S3CrudPolicy" not in text and "S3ReadPolicy" not in text and "S3FullAccessPolicy" not in text, name
        assert "${ImagesBucket.Arn}/*" not in text, name
    [api] = [s for s in _inline(template, "ApiFunction") if _actions(s)[0].startswith("s3:")]
    assert (_actions(api), api["Resource"]) == (["s3:GetObject"], [IMAGES_PREFIX, VIDEOS_PREFIX])


def test_given_the_api_when_read_then_it_is_throttled_by_parameters_and_users_have_limits_by_default(template):
    # Given the API stage settings and the limits' parameters (issue 12: one tenant could exhaust shared resources)
    [settings] = _props(template, "Api")["MethodSettings"]

    # Then every method is throttled by the deployment's rate and burst, and each user has a daily quota and a
    # per-minute limit unless the deployment turns them off (0)
    assert settings == {
        "ResourcePath": "/*",
        "HttpMethod": "*",
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    assert (_default(template, "ApiThrottlingRateLimit"), _default(template, "ApiThrottlingBurstLimit")) == (50, 100)
    for parameter in ("DailyImageQuota", "ImagesPerMinutePerUser"):
        assert template["Parameters"][parameter]["MinValue"] == 0
    # A full batch (50 images) fits in one minute's allowance
    assert _default(template, "ImagesPerMinutePerUser") >= 50
    for name in ("ApiFunction", "OpenAiFunction"):
        env = _props(template, name)["Environment"]["Variables"]
        assert (env["DAILY_IMAGE_QUOTA"], env["IMAGES_PER_MINUTE"]) == (
            {"Ref": "DailyImageQuota"},
            {"Ref": "ImagesPerMinutePerUser"},
        )
