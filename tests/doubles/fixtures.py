"""Shared pytest fixtures for the doubles: the storage double, an in-process moto server for S3, a Lambda context.

Register with `pytest_plugins = ["tests.doubles.fixtures"]` in a test module (or in tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from tests.doubles.lambda_context import FakeLambdaContext
from tests.doubles.storage import StorageDouble

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AWS_REGION = "us-east-1"
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@pytest.fixture
def storage() -> Iterator[StorageDouble]:
    """A fresh storage double on 127.0.0.1 (plain HTTP, random port)."""
    with StorageDouble() as double:
        yield double


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The endpoint URL of a real moto server on loopback, for boto3 clients (endpoint_url=...)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """Credentials, region and AWS_ENDPOINT_URL pointing at moto, so no client can reach a real account."""
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def s3_client(aws_env: str) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=aws_env,
        region_name=AWS_REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture
def bucket(s3_client: S3Client) -> str:
    """A new, empty bucket per test: no test sees another's objects."""
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext(aws_request_id=str(uuid.uuid4()))
