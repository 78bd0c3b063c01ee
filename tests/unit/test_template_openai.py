"""template.yaml's OpenAI-compatible function: a function URL that can wait for a slow generation, and its output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from imagegen.api.openai_url import OpenAiUrlSettings
from imagegen.local.cfn import load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def test_given_the_openai_function_when_read_then_its_url_is_public_buffered_and_served_locally(template):
    function = template["Resources"]["OpenAiFunction"]
    props = function["Properties"]

    assert props["FunctionUrlConfig"] == {"AuthType": "NONE", "InvokeMode": "BUFFERED"}
    assert (props["CodeUri"], props["Handler"]) == ("functions/openai", "app.lambda_handler")
    assert (ROOT / "functions/openai/app.py").is_file()
    assert function["Metadata"]["LocalGateway"]["Routes"] == ["POST /v1/images/generations"]


def test_given_the_wait_when_read_then_a_60_s_generation_fits_and_our_504_comes_before_lambdas_timeout(template):
    props = template["Resources"]["OpenAiFunction"]["Properties"]
    wait = int(props["Environment"]["Variables"]["OPENAI_WAIT_SECONDS"])

    # The worker may spend its whole deadline on one job; the answer then needs a few seconds to read and encode.
    assert wait >= int(template["Parameters"]["WorkerDeadlineSeconds"]["Default"]) + 10
    assert props["Timeout"] >= wait + 20
    assert props["Timeout"] > 29  # what API Gateway could not give it
    # The function's settings model takes the value (it would stop the function at cold start otherwise).
    assert OpenAiUrlSettings(table_name="t", openai_wait_seconds=wait).openai_wait_seconds == wait


def test_given_the_environment_when_read_then_the_function_gets_the_names_its_settings_read(template):
    variables = template["Resources"]["OpenAiFunction"]["Properties"]["Environment"]["Variables"]

    assert variables == {
        "JOB_TTL_DAYS": {"Ref": "JobTtlDays"},
        "DAILY_IMAGE_QUOTA": {"Ref": "DailyImageQuota"},
        "IMAGES_PER_MINUTE": {"Ref": "ImagesPerMinutePerUser"},
        "OPENAI_WAIT_SECONDS": "120",
    }
    # The same quota as the API's: a generation through OpenAI's route costs what a job costs.
    api = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["DAILY_IMAGE_QUOTA"] == api["DAILY_IMAGE_QUOTA"]


def test_given_the_policies_when_read_then_the_function_reads_only_the_images_prefix(template):
    policies = template["Resources"]["OpenAiFunction"]["Properties"]["Policies"]

    assert [next(iter(policy)) for policy in policies] == ["DynamoDBCrudPolicy", "SQSSendMessagePolicy", "Statement"]
    [statement] = policies[2]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": {"Fn::Sub": "${ImagesBucket.Arn}/images/*"},
    }


def test_given_the_outputs_when_read_then_the_openai_base_url_is_the_function_url_with_v1(template):
    output = template["Outputs"]["OpenAiBaseUrl"]

    assert output["Value"] == {"Fn::Sub": "${OpenAiFunctionUrl.FunctionUrl}v1"}
