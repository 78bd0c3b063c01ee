"""Creates in the emulator the tables, buckets, queues, secrets and keys a template declares."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from imagegen.local.cfn import Context, Physical, Resolver, TemplateError, references, scalar_string
from imagegen.local.logs import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True)
class Clients:
    """boto3 clients bound to the emulator."""

    endpoint: str
    region: str

    def client(self, service: str) -> Any:
        # Untyped on purpose: callers pick the service at run time, which the stubs' overloads cannot express.
        factory: Any = boto3.client
        return factory(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the emulator's fake credentials
        )


@dataclass(frozen=True)
class Settings:
    """Local deviations from the template, each one documented in docs/local-stack.md."""

    visibility_timeout: int | None = None


Creator = Callable[[str, dict[str, Any], Context, Clients, Settings], Physical]


def _name(context: Context, logical_id: str) -> str:
    # CloudFormation would add a random suffix; a stable name keeps the local stack predictable.
    return f"{context.stack_name}-{logical_id}"


def _arn(context: Context, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{context.region}:{context.account_id}:{resource}"


def _create_table(logical_id: str, props: dict[str, Any], context: Context, clients: Clients, _: Settings) -> Physical:
    name = props.get("TableName") or _name(context, logical_id)
    billing = props.get("BillingMode", "PROVISIONED")
    throughput = props.get("ProvisionedThroughput") or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}

    def capacity(spec: Mapping[str, Any]) -> dict[str, int]:
        return {key: int(value) for key, value in spec.items()}

    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": billing,
    }
    if billing != "PAY_PER_REQUEST":
        request["ProvisionedThroughput"] = capacity(throughput)
    indexes = []
    for index in props.get("GlobalSecondaryIndexes") or []:
        entry = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        if billing != "PAY_PER_REQUEST":
            entry["ProvisionedThroughput"] = capacity(index.get("ProvisionedThroughput") or throughput)
        indexes.append(entry)
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    if props.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in props["LocalSecondaryIndexes"]
        ]
    stream = props.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    dynamodb = clients.client("dynamodb")
    description = dynamodb.create_table(**request)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and scalar_string(ttl.get("Enabled", False)) == "true":
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    attrs = {"Arn": description["TableArn"]}
    if description.get("LatestStreamArn"):
        attrs["StreamArn"] = description["LatestStreamArn"]
    return Physical(ref=name, attrs=attrs)


def _create_simple_table(
    logical_id: str, props: dict[str, Any], context: Context, clients: Clients, settings: Settings
) -> Physical:
    key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
    kind = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
    table = {
        "TableName": props.get("TableName"),
        "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": kind}],
        "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    return _create_table(logical_id, {k: v for k, v in table.items() if v is not None}, context, clients, settings)


def _bucket_name(context: Context, logical_id: str) -> str:
    name = re.sub(r"[^a-z0-9.-]", "-", _name(context, logical_id).lower()).strip("-.")
    if len(name) > 63:
        # Keep it unique when it has to be cut: bucket names are at most 63 characters.
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-.')}-{digest}"
    return name


def _create_bucket(logical_id: str, props: dict[str, Any], context: Context, clients: Clients, _: Settings) -> Physical:
    name = props.get("BucketName") or _bucket_name(context, logical_id)
    request: dict[str, Any] = {"Bucket": name}
    if context.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": context.region}
    clients.client("s3").create_bucket(**request)
    return Physical(
        ref=name,
        attrs={
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{context.region}.amazonaws.com",
        },
    )


# Queue properties that change behaviour; the encryption ones do not, locally.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


def _create_queue(
    logical_id: str, props: dict[str, Any], context: Context, clients: Clients, settings: Settings
) -> Physical:
    fifo = scalar_string(props.get("FifoQueue", False)) == "true"
    name = props.get("QueueName") or _name(context, logical_id) + (".fifo" if fifo else "")
    attributes = {key: scalar_string(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    if settings.visibility_timeout is not None:
        attributes["VisibilityTimeout"] = str(settings.visibility_timeout)
    for key in ("RedrivePolicy", "RedriveAllowPolicy"):
        if key in props:
            policy = dict(props[key])
            if "maxReceiveCount" in policy:
                policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
            attributes[key] = json.dumps(policy)
    sqs = clients.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Physical(ref=url, attrs={"Arn": arn, "QueueName": name, "QueueUrl": url})


def _generate_secret(spec: Mapping[str, Any]) -> str:
    alphabet = string.ascii_letters + string.digits
    if scalar_string(spec.get("ExcludePunctuation", False)) != "true":
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    excluded = str(spec.get("ExcludeCharacters", ""))
    alphabet = "".join(char for char in alphabet if char not in excluded)
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec and "GenerateStringKey" in spec:
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = value
        return json.dumps(document)
    return value


def _create_secret(logical_id: str, props: dict[str, Any], context: Context, clients: Clients, _: Settings) -> Physical:
    name = props.get("Name") or _name(context, logical_id)
    if "SecretString" in props:
        value = props["SecretString"]
    else:
        value = _generate_secret(props.get("GenerateSecretString") or {})
    arn = clients.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
    return Physical(ref=arn, attrs={"Id": arn})


def _create_key(logical_id: str, props: dict[str, Any], context: Context, clients: Clients, _: Settings) -> Physical:
    request = {key: props[key] for key in ("Description", "KeyUsage", "KeySpec") if key in props}
    metadata = clients.client("kms").create_key(**request)["KeyMetadata"]
    return Physical(ref=metadata["KeyId"], attrs={"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]})


def _create_alias(logical_id: str, props: dict[str, Any], context: Context, clients: Clients, _: Settings) -> Physical:
    clients.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
    return Physical(ref=props["AliasName"])


CREATORS: dict[str, Creator] = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::Serverless::SimpleTable": _create_simple_table,
    "AWS::S3::Bucket": _create_bucket,
    "AWS::SQS::Queue": _create_queue,
    "AWS::SecretsManager::Secret": _create_secret,
    "AWS::KMS::Key": _create_key,
    "AWS::KMS::Alias": _create_alias,
}


def _placeholder(logical_id: str, kind: str, context: Context) -> Physical:
    """Names for resources that are not emulated, so that a Ref or Arn to them still resolves."""
    name = _name(context, logical_id)
    if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        return Physical(ref=name, attrs={"Arn": _arn(context, "lambda", f"function:{name}")})
    if kind in ("AWS::Serverless::Api", "AWS::ApiGateway::RestApi"):
        api_id = hashlib.sha256(name.encode()).hexdigest()[:10]
        return Physical(ref=api_id, attrs={"RootResourceId": api_id[:6]})
    if kind in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
        return Physical(ref=_arn(context, "lambda", f"layer:{name}:1"))
    if kind == "AWS::Logs::LogGroup":
        return Physical(ref=f"/local/{name}", attrs={"Arn": _arn(context, "logs", f"log-group:/local/{name}:*")})
    if kind == "AWS::IAM::Role":
        return Physical(ref=name, attrs={"Arn": f"arn:aws:iam::{context.account_id}:role/{name}", "RoleId": name})
    return Physical(ref=name)


def active_resources(template: Mapping[str, Any], context: Context) -> dict[str, dict[str, Any]]:
    """The template's resources whose Condition (if any) holds."""
    resolver = Resolver(context)
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource or resolver.condition({"Condition": resource["Condition"]})
    }


def create_resources(
    template: Mapping[str, Any], context: Context, clients: Clients, settings: Settings
) -> dict[str, str]:
    """Creates every emulated resource in dependency order; fills context.resources; returns logical id -> type."""
    resources = active_resources(template, context)
    emulated = {logical_id for logical_id, resource in resources.items() if resource["Type"] in CREATORS}
    for logical_id, resource in resources.items():
        if logical_id not in emulated:
            context.resources[logical_id] = _placeholder(logical_id, resource["Type"], context)
            log.debug("not emulated locally: %s (%s)", logical_id, resource["Type"])

    resolver = Resolver(context)
    done: set[str] = set()
    while len(done) < len(emulated):
        ready = [
            logical_id
            for logical_id in sorted(emulated - done)
            if set(references(resources[logical_id].get("Properties", {}))) & emulated <= done
            and set(_depends_on(resources[logical_id])) & emulated <= done
        ]
        if not ready:
            raise TemplateError(f"circular references between {', '.join(sorted(emulated - done))}")
        for logical_id in ready:
            resource = resources[logical_id]
            props = resolver.resolve(resource.get("Properties") or {})
            try:
                context.resources[logical_id] = CREATORS[resource["Type"]](
                    logical_id, props, context, clients, settings
                )
            except (KeyError, ValueError) as exc:
                raise TemplateError(f"cannot create {logical_id} ({resource['Type']}) locally: {exc!r}") from exc
            done.add(logical_id)
    return {logical_id: resource["Type"] for logical_id, resource in resources.items()}


def _depends_on(resource: Mapping[str, Any]) -> list[str]:
    value = resource.get("DependsOn") or []
    return [value] if isinstance(value, str) else list(value)
