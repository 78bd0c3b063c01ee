"""Webhook signing secrets and signatures (Standard Webhooks): one secret per user, rotated with a grace period."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from imagegen.clock import utcnow

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker of a secret, not a secret
SECRET_BYTES = 32  # the spec asks for 24-64 random bytes
# After a rotation the old secret still signs (a second signature in the header) for a day, so receivers can switch.
ROTATION_GRACE = timedelta(hours=24)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part after `whsec_`."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as error:
        raise ValueError("a webhook secret is base64 after whsec_") from error


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(signing_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per secret (the current one first), as the spec does for rotation."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in signing_secrets)


@dataclass(frozen=True)
class WebhookSecret:
    current: str
    created_at: datetime
    previous: str | None = None
    previous_until: datetime | None = None

    def __repr__(self) -> str:  # never print a secret
        return f"WebhookSecret(created_at={self.created_at!r}, previous_until={self.previous_until!r})"

    def signing_secrets(self, now: datetime) -> list[str]:
        if self.previous and self.previous_until and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]


class SecretStore(Protocol):
    def get(self, user_id: str) -> WebhookSecret | None: ...

    def create(self, user_id: str, secret: WebhookSecret) -> WebhookSecret:
        """Store `secret` unless the user has one already; either way, the one that is stored."""
        ...

    def rotate(self, user_id: str, new: str, now: datetime, previous_until: datetime) -> WebhookSecret: ...


class SecretView(BaseModel):
    """What GET /v1/webhooks/secret shows: the caller's own secret (it is theirs to verify with)."""

    # Built on the first secret request, not at the API's cold start.
    model_config = ConfigDict(defer_build=True)

    secret: str
    created_at: datetime
    previous_valid_until: datetime | None = None


class WebhookSecrets:
    def __init__(self, store: SecretStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    def current(self, user_id: str) -> WebhookSecret:
        """The user's secret, created on first use (by a GET or by the first delivery, whichever comes first)."""
        found = self._store.get(user_id)
        if found is not None:
            return found
        return self._store.create(user_id, WebhookSecret(current=new_secret(), created_at=self._clock()))

    def rotate(self, user_id: str) -> WebhookSecret:
        now = self._clock()
        self.current(user_id)
        return self._store.rotate(user_id, new_secret(), now, now + ROTATION_GRACE)

    @staticmethod
    def view(secret: WebhookSecret, now: datetime | None = None) -> SecretView:
        moment = now or utcnow()
        valid = secret.previous_until if secret.previous_until and secret.previous_until > moment else None
        return SecretView(secret=secret.current, created_at=secret.created_at, previous_valid_until=valid)
