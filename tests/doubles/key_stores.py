"""In-memory key stores, so the chain's unit tests resolve keys through the production path (KeyResolver over
deployment keys from the settings, wrapped in ChainKeys) without DynamoDB or KMS."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from imagegen.adapters.deployment_keys import EnvDeploymentKeys
from imagegen.keys.chain_keys import ChainKeys
from imagegen.keys.resolver import KeyResolver
from imagegen.keys.types import KeyHealth, UserKey
from imagegen.providers.settings import ProvidersSettings
from pydantic import SecretStr


class MemoryKeyStore:
    """Users' keys and every key's health, as the KeyStore adapter keeps them (user keys by version)."""

    def __init__(self) -> None:
        self.user_keys: dict[tuple[str, str], tuple[UserKey, SecretStr]] = {}
        self.deployment: dict[tuple[str, str], KeyHealth] = {}

    def put_user_key(self, user_id: str, provider: str, key: str, health: KeyHealth | None = None) -> UserKey:
        now = datetime.now(UTC)
        stored = UserKey(user_id, provider, key[-4:], now, now, uuid.uuid4().hex, health)
        self.user_keys[(user_id, provider)] = (stored, SecretStr(key))
        return stored

    def get(self, user_id: str, provider: str) -> UserKey | None:
        found = self.user_keys.get((user_id, provider))
        return found[0] if found else None

    def decrypt(self, user_id: str, provider: str) -> tuple[UserKey, SecretStr] | None:
        return self.user_keys.get((user_id, provider))

    def record_health(self, user_id: str, provider: str, version: str, health: KeyHealth) -> bool:
        found = self.user_keys.get((user_id, provider))
        if found is None or found[0].version != version:
            return False
        self.user_keys[(user_id, provider)] = (replace(found[0], health=health), found[1])
        return True

    def record_model_gone(self, user_id: str, provider: str, version: str, model: str, at: datetime) -> bool:
        found = self.user_keys.get((user_id, provider))
        if found is None or found[0].version != version:
            return False
        health = found[0].health.with_gone(model) if found[0].health else KeyHealth.answered(at, (model,))
        self.user_keys[(user_id, provider)] = (replace(found[0], health=health), found[1])
        return True

    def deployment_health(self, provider: str, key: SecretStr) -> KeyHealth | None:
        return self.deployment.get((provider, key.get_secret_value()))

    def record_deployment_health(self, provider: str, key: SecretStr, health: KeyHealth) -> None:
        self.deployment[(provider, key.get_secret_value())] = health

    def record_deployment_model_gone(self, provider: str, key: SecretStr, model: str, at: datetime) -> None:
        known = self.deployment.get((provider, key.get_secret_value()))
        health = known.with_gone(model) if known else KeyHealth.answered(at, (model,))
        self.deployment[(provider, key.get_secret_value())] = health


def chain_keys(settings: ProvidersSettings, store: MemoryKeyStore | None = None) -> ChainKeys:
    """The worker's key port (wiring.chain_keys) over in-memory stores: deployment keys come from `settings`."""
    kept = store or MemoryKeyStore()
    return ChainKeys(lambda: KeyResolver(kept, EnvDeploymentKeys(settings), kept))
