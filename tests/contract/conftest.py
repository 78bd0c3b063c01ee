"""Fixtures for the contract tests: each provider double on loopback, with the keys of tests/doubles/keys.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.doubles.fal import FalDouble
from tests.doubles.hf_router import HfRouterDouble
from tests.doubles.keys import FAL_KEY, HF_TOKEN, REPLICATE_TOKEN, SF_KEY
from tests.doubles.replicate import ReplicateDouble
from tests.doubles.siliconflow import SiliconFlowDouble
from tests.doubles.storage import StorageDouble

# horde-sdk's models forbid unknown fields only when this is set as horde_sdk is imported (its own test mode);
# the contract tests want that strictness. Nothing else in the suite imports horde_sdk.
os.environ.setdefault("TESTS_ONGOING", "1")


@pytest.fixture
def storage() -> Iterator[StorageDouble]:
    with StorageDouble() as double:
        yield double


@pytest.fixture
def hf_router(storage: StorageDouble) -> Iterator[HfRouterDouble]:
    with HfRouterDouble(storage, tokens={HF_TOKEN}) as double:
        yield double


@pytest.fixture
def fal(storage: StorageDouble) -> Iterator[FalDouble]:
    with FalDouble(storage, keys={FAL_KEY}) as double:
        yield double


@pytest.fixture
def replicate_double(storage: StorageDouble) -> Iterator[ReplicateDouble]:
    with ReplicateDouble(storage, api_tokens={REPLICATE_TOKEN}) as double:
        yield double


@pytest.fixture
def siliconflow(storage: StorageDouble) -> Iterator[SiliconFlowDouble]:
    with SiliconFlowDouble(storage, api_key=SF_KEY) as double:
        yield double
