"""Routes for /v1/keys (bring your own key, write-only) and /v1/providers (the chain as the caller would get it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from imagegen import wiring
from imagegen.api.context import user_id
from imagegen.keys.status import ChainView
from imagegen.keys.types import HealthStatus, UserKey
from imagegen.models import StrictModel

router = Router()


# Built on the first /v1/keys request, not at every API cold start.
_DEFERRED = ConfigDict(defer_build=True)


class KeyPut(StrictModel):
    model_config = _DEFERRED

    # Leading and trailing whitespace (a pasted newline) is dropped; the format check does the rest.
    api_key: Annotated[SecretStr, Field(min_length=1, max_length=512)]

    @field_validator("api_key")
    @classmethod
    def _strip(cls, value: SecretStr) -> SecretStr:
        return SecretStr(value.get_secret_value().strip())


class KeyHealthView(BaseModel):
    model_config = _DEFERRED

    status: HealthStatus
    detail: str | None = None
    checked_at: datetime


class KeyView(BaseModel):
    model_config = _DEFERRED

    """A stored key as its owner sees it: never the key, only its last 4 characters."""

    provider: str
    last4: str
    health: KeyHealthView | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, key: UserKey) -> KeyView:
        health = (
            KeyHealthView(status=key.health.status, detail=key.health.detail, checked_at=key.health.checked_at)
            if key.health
            else None
        )
        return cls(
            provider=key.provider,
            last4=key.last4,
            health=health,
            created_at=key.created_at,
            updated_at=key.updated_at,
        )


class KeyPage(BaseModel):
    model_config = _DEFERRED

    items: list[KeyView]
    next_cursor: str | None = None


@router.put(
    "/v1/keys/<provider>",
    summary="Store your own key for a provider (encrypted; write-only). It is checked at once.",
    description="Any provider that takes a key (an unknown one is a 404 that names them). The key's format is checked "
    "first (422 naming api_key); the answer shows the last 4 characters and the check's verdict, never the key.",
)
def put_key(provider: str, body: KeyPut) -> KeyView:
    key = wiring.user_key_service().put(user_id(router.current_event.raw_event), provider, body.api_key)
    return KeyView.of(key)


@router.get("/v1/keys", summary="Your stored keys: provider, last 4 characters, health; never the key")
def list_keys() -> KeyPage:
    keys = wiring.user_key_service().list(user_id(router.current_event.raw_event))
    return KeyPage(items=[KeyView.of(key) for key in keys])


@router.delete(
    "/v1/keys/<provider>",
    summary="Remove your key for a provider",
    responses={204: {"description": "Removed"}},
)
def delete_key(provider: str) -> Response[None]:
    wiring.user_key_service().delete(user_id(router.current_event.raw_event), provider)
    return Response(status_code=204, body=None)


@router.get(
    "/v1/providers",
    summary="The provider chain as you would get it: key source, health, breaker state, whether it is tried",
)
def list_providers() -> ChainView:
    return wiring.chain_status().describe(user_id(router.current_event.raw_event))
