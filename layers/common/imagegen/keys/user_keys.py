"""Bring your own key: store (encrypted), list and delete a user's provider keys; a stored key is checked at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from pydantic import SecretStr

from imagegen.errors import NotFound
from imagegen.keys.formats import check_key_format, key_provider
from imagegen.keys.health import HealthService
from imagegen.keys.types import UserKey
from imagegen.models import utcnow


class UserKeyAdmin(Protocol):
    def put(self, user_id: str, provider: str, api_key: SecretStr, *, now: datetime) -> UserKey: ...

    def list(self, user_id: str) -> list[UserKey]: ...

    def delete(self, user_id: str, provider: str) -> bool: ...


class UserKeyService:
    def __init__(self, store: UserKeyAdmin, health: HealthService, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._health = health
        self._clock = clock

    def put(self, user_id: str, provider_name: str, api_key: SecretStr) -> UserKey:
        provider = key_provider(provider_name)
        check_key_format(provider, api_key.get_secret_value())
        stored = self._store.put(user_id, provider, api_key, now=self._clock())
        # Checked at once, so a user who just fixed a key sees (and the chain uses) the new verdict; a check that
        # cannot reach the provider records `unreachable`, which the chain still tries.
        health = self._health.check_user_key(stored, api_key)
        return replace(stored, health=health)

    def list(self, user_id: str) -> list[UserKey]:
        return self._store.list(user_id)

    def delete(self, user_id: str, provider_name: str) -> None:
        provider = key_provider(provider_name)
        if not self._store.delete(user_id, provider):
            raise NotFound(f"you have no {provider} key", hint=f"PUT /v1/keys/{provider} stores one")
