"""The Authorizer's settings, read once at cold start without pydantic.

The authorizer runs on every request API Gateway has not cached, and pydantic costs it about 55 ms of every cold
start (the other functions need pydantic anyway). Its three settings are checked here by hand, as strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class AuthorizerSettings:
    table_name: str
    aws_region: str = "us-east-1"
    # Set only locally (the embedded emulator) and in tests; in AWS, boto3 finds the real endpoints.
    aws_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthorizerSettings:
        table = environ.get("TABLE_NAME", "").strip()
        if not table:
            raise ValueError("TABLE_NAME: required, the table that holds the API tokens")
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(table_name=table, aws_region=region, aws_endpoint_url=environ.get("AWS_ENDPOINT_URL") or None)
