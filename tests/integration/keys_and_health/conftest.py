"""Fixtures for keys, health, quotas and the sweeper: a KMS key on moto's server and the key-check double."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from imagegen import wiring
from imagegen.providers import DEPLOYMENT_KEY_NAMES

from tests.conftest import Aws
from tests.doubles.keycheck import KeyCheckDouble

# Every provider's deployment-key variable, from the registry: none may leak in from the shell.
DEPLOYMENT_KEY_ENV = tuple(DEPLOYMENT_KEY_NAMES.values())


@dataclass
class KeysEnv:
    aws: Aws
    kms_key_id: str
    double: KeyCheckDouble
    monkeypatch: pytest.MonkeyPatch

    def set(self, **env: str) -> None:
        """Change the functions' environment and rebuild what wiring cached from it."""
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        wiring.reset()

    def key_item(self, user: str, provider: str) -> dict[str, Any] | None:
        item = (
            self.aws.client("dynamodb")
            .get_item(TableName=self.aws.table, Key={"pk": {"S": f"USER#{user}"}, "sk": {"S": f"KEY#{provider}"}})
            .get("Item")
        )
        return item


@pytest.fixture
def keycheck() -> Iterator[KeyCheckDouble]:
    with KeyCheckDouble() as double:
        yield double


@pytest.fixture
def keys_env(aws: Aws, keycheck: KeyCheckDouble, monkeypatch: pytest.MonkeyPatch) -> KeysEnv:
    """The `aws` resources plus a KMS key, the key-check double's URLs, and no deployment keys at all."""
    kms_key_id = aws.client("kms").create_key(Description="imagegen user keys")["KeyMetadata"]["KeyId"]
    for name in (*DEPLOYMENT_KEY_ENV, "PROVIDER_KEYS_SECRET", "DAILY_IMAGE_QUOTA"):
        monkeypatch.delenv(name, raising=False)
    env = KeysEnv(aws, kms_key_id, keycheck, monkeypatch)
    env.set(KEYS_KMS_KEY_ID=kms_key_id, KEYCHECK_TIMEOUT_SECONDS="0.5", **keycheck.env)
    return env
