"""pytest fixtures for the provider and storage doubles, the result fetcher, tables and buckets on moto's server
(whose endpoint, `moto_endpoint`, comes from tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from imagegen import wiring
from imagegen.media.fetch import FetchPolicy, SafeFetcher

from tests.doubles.fal import FalDouble
from tests.doubles.horde import HordeDouble
from tests.doubles.huggingface import HuggingFaceDouble
from tests.doubles.keys import FAL_KEY, HF_TOKEN, HORDE_KEY, POLLINATIONS_KEY, REPLICATE_TOKEN, SF_KEY
from tests.doubles.pollinations import PollinationsDouble
from tests.doubles.replicate import ReplicateDouble
from tests.doubles.siliconflow import SiliconFlowDouble
from tests.doubles.storage import StorageDouble


@pytest.fixture
def storage() -> Iterator[StorageDouble]:
    """The signed-storage double of tests/doubles/storage.py on 127.0.0.1 (plain HTTP, random port); the provider
    doubles leave their results on it, as SiliconFlow and Horde leave theirs on OSS, Azure or R2."""
    with StorageDouble() as double:
        yield double


@pytest.fixture
def siliconflow_double(storage: StorageDouble) -> Iterator[SiliconFlowDouble]:
    with SiliconFlowDouble(storage, api_key=SF_KEY) as double:
        yield double


@pytest.fixture
def hf_double() -> Iterator[HuggingFaceDouble]:
    with HuggingFaceDouble(token=HF_TOKEN) as double:
        yield double


@pytest.fixture
def horde_double(storage: StorageDouble) -> Iterator[HordeDouble]:
    with HordeDouble(storage, api_keys={HORDE_KEY}) as double:
        yield double


@pytest.fixture
def pollinations_double() -> Iterator[PollinationsDouble]:
    with PollinationsDouble(api_key=POLLINATIONS_KEY) as double:
        yield double


@pytest.fixture
def fal_double(storage: StorageDouble) -> Iterator[FalDouble]:
    with FalDouble(storage, keys={FAL_KEY}) as double:
        yield double


@pytest.fixture
def replicate_double(storage: StorageDouble) -> Iterator[ReplicateDouble]:
    with ReplicateDouble(storage, api_tokens={REPLICATE_TOKEN}) as double:
        yield double


@pytest.fixture
def queue_doubles_environ(fal_double: FalDouble, replicate_double: ReplicateDouble) -> dict[str, str]:
    """fal and Replicate pointed at their doubles (join it to doubles_environ where a test uses them)."""
    return {
        "FAL_KEY": FAL_KEY,
        "FAL_QUEUE_URL": fal_double.queue_url,
        "FAL_API_URL": fal_double.api_url,
        "FAL_TIMEOUT_S": "1.5",
        "REPLICATE_API_TOKEN": REPLICATE_TOKEN,
        "REPLICATE_BASE_URL": replicate_double.base_url,
        "REPLICATE_TIMEOUT_S": "3",
        "REPLICATE_PREFER_WAIT_S": "1",
    }


@pytest.fixture
def doubles_environ(
    siliconflow_double: SiliconFlowDouble,
    hf_double: HuggingFaceDouble,
    horde_double: HordeDouble,
    pollinations_double: PollinationsDouble,
) -> dict[str, str]:
    """Environment pointing every provider at its double, with short timeouts so tests stay fast."""
    return {
        "SILICONFLOW_API_KEY": SF_KEY,
        "SILICONFLOW_BASE_URL": siliconflow_double.base_url,
        "SILICONFLOW_TIMEOUT_S": "1.5",
        "HF_TOKEN": HF_TOKEN,
        "HF_ROUTER_URL": hf_double.base_url,
        "HF_ENDPOINT": hf_double.url,
        "HF_TIMEOUT_S": "1.5",
        "HORDE_API_KEY": HORDE_KEY,
        "HORDE_BASE_URL": horde_double.base_url,
        "HORDE_CLIENT_AGENT": "imagegen:0.1.0:tests@example.invalid",
        "HORDE_TIMEOUT_S": "1.5",
        "POLLINATIONS_BASE_URL": pollinations_double.base_url,
        "POLLINATIONS_TIMEOUT_S": "1.5",
        "IMAGEGEN_PROVIDERS": "siliconflow,huggingface,horde,pollinations",
    }


@pytest.fixture
def provider_http() -> Iterator[httpx.Client]:
    """The provider-API client as the worker builds it: no redirects (keys must not follow one elsewhere)."""
    client = httpx.Client(timeout=httpx.Timeout(5.0), follow_redirects=False)
    yield client
    client.close()


@pytest.fixture
def safe_fetcher() -> SafeFetcher:
    """The worker's fetcher for provider result links, configured as the local stack configures it: plain http and
    loopback are admitted for the doubles, and everything else (no auth, expiry read from the link) is production's."""
    return SafeFetcher(FetchPolicy(allow_private_networks=True))


@pytest.fixture
def dynamodb_client(moto_endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def breaker_table(dynamodb_client: Any) -> str:
    """A fresh single-table (pk, sk string keys) per test, on moto's server."""
    name = f"imagegen-{uuid.uuid4().hex[:8]}"
    dynamodb_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def media_bucket(moto_endpoint: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new, empty bucket per test, and the MediaProxy function's environment pointing at it."""
    name = f"imagegen-media-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("BUCKET_NAME", name)
    wiring.reset()
    yield name
    wiring.reset()
