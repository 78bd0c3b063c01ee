"""Fixtures for the storage double and a media bucket on moto's server (`moto_endpoint` from tests/conftest.py).

Register with `pytest_plugins = ["tests.doubles.fixtures"]` in a test module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from imagegen import wiring

from tests.doubles.storage import StorageDouble

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"


@pytest.fixture
def storage() -> Iterator[StorageDouble]:
    """A fresh storage double on 127.0.0.1 (plain HTTP, random port)."""
    with StorageDouble() as double:
        yield double


@pytest.fixture
def s3_client(moto_endpoint: str) -> S3Client:
    return boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def media_bucket(moto_endpoint: str, s3_client: S3Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new, empty bucket per test, and the MediaProxy function's environment pointing at it."""
    name = f"imagegen-media-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("BUCKET_NAME", name)
    wiring.reset()
    yield name
    wiring.reset()
