"""The one definition of each key concept: where a key came from, what its last check found, what a check says."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr

KeySource = Literal["user", "deployment", "keyless"]
HealthStatus = Literal["ok", "invalid", "out_of_credit", "unreachable"]

# The chain skips a key in these states; `unreachable` says nothing about the key, so it is still tried.
UNUSABLE: frozenset[str] = frozenset({"invalid", "out_of_credit"})


class KeyHealth(BaseModel):
    """What the last check of one key found."""

    # Built when a key's health is first read or written, not at the API's cold start.
    model_config = ConfigDict(defer_build=True)

    status: HealthStatus
    detail: str | None = None
    # When the status was learned.
    checked_at: datetime
    # When a check was last tried, even one that learned nothing (a 429): paces rate-limited checks.
    attempted_at: datetime | None = None
    # The models the provider listed for this key at the last check (None: no listing; every model is tried), and
    # those it said since do not exist: both skipped by the chain until the next listing.
    models: tuple[str, ...] | None = None
    gone: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.status not in UNUSABLE

    def with_gone(self, model: str) -> KeyHealth:
        """This health with one more gone model; a key never checked is known to work now (it answered a call)."""
        return self.model_copy(update={"gone": tuple(dict.fromkeys((*self.gone, model)))})

    @classmethod
    def answered(cls, at: datetime, gone: tuple[str, ...] = ()) -> KeyHealth:
        """The health of a key not checked yet that a provider just answered (so it works), with gone models."""
        return cls(status="ok", detail=ANSWERED, checked_at=at, gone=gone)


# The detail of a health learned from a generation call, not from a check.
ANSWERED = "the key works (a generation call was answered); not checked yet"


def key_fingerprint(key: SecretStr) -> str:
    """Tells one key from another (a rotated deployment key, whose breaker is a new one); not reversible to the key."""
    return hashlib.sha256(key.get_secret_value().encode()).hexdigest()[:16]


def key_scope(
    source: KeySource | None, *, user_id: str = "", version: str | None = None, key: SecretStr | None = None
) -> str | None:
    """Whose key this is, for breakers and rate limits: one user's key (by user and key version, so a replaced key
    starts afresh), the deployment's (by fingerprint, never the key), or keyless (the provider alone)."""
    if source == "user" and version is not None:
        return f"user:{user_id}:{version}"
    if source == "deployment" and key is not None:
        return f"deployment:{key_fingerprint(key)}"
    return source


@dataclass(frozen=True)
class ResolvedKey:
    """The key the chain should use for one provider, where it came from, and its last known health.

    `source` None: no key and the provider needs one. `key` None with source "keyless": call without a key
    (Horde's anonymous key, Pollinations' legacy host). `health` None: never checked (try it). `scope`: whose key it
    is (key_scope); the breakers and rate limits that govern calls with it are this scope's.
    """

    source: KeySource | None
    key: SecretStr | None = None
    health: KeyHealth | None = None
    scope: str | None = None

    @property
    def breaker_scope(self) -> str:
        return self.scope or str(self.source)

    @property
    def usable(self) -> bool:
        return self.source is not None and (self.health is None or self.health.usable)

    @property
    def skip_reason(self) -> str | None:
        """Why the chain must skip this provider (secret-free), or None when it may try it."""
        if self.source is None:
            return "no key configured"
        if self.health is not None and not self.health.usable:
            detail = f" ({self.health.detail})" if self.health.detail else ""
            return f"{self.source} key {self.health.status}{detail}"
        return None


@dataclass(frozen=True)
class UserKey:
    """A user's own key as stored, without the secret."""

    user_id: str
    provider: str
    last4: str
    created_at: datetime
    updated_at: datetime
    # Changes with every PUT, so a check of a replaced key never overwrites the new key's health.
    version: str
    health: KeyHealth | None


@dataclass(frozen=True)
class CheckResult:
    """One key check's answer. `status` None: the check learned nothing (rate limited): keep what was known."""

    status: HealthStatus | None
    detail: str
    # The models the key may use now, where the provider lists them (ModelListing); None: no listing.
    models: tuple[str, ...] | None = None

    @classmethod
    def unexpected(cls, status_code: int) -> CheckResult:
        return cls("unreachable", f"unexpected answer: HTTP {status_code}")


class UserKeyStore(Protocol):
    def get(self, user_id: str, provider: str) -> UserKey | None: ...

    def decrypt(self, user_id: str, provider: str) -> tuple[UserKey, SecretStr] | None: ...

    def record_health(self, user_id: str, provider: str, version: str, health: KeyHealth) -> bool: ...

    def record_model_gone(self, user_id: str, provider: str, version: str, model: str, at: datetime) -> bool:
        """Add `model` to the key's gone models (until its next listing); False if the key was replaced since."""
        ...


class DeploymentKeys(Protocol):
    def get(self, provider: str) -> SecretStr | None: ...


class DeploymentHealthStore(Protocol):
    def deployment_health(self, provider: str, key: SecretStr) -> KeyHealth | None:
        """The last health recorded for this very key (a rotated key has none yet)."""
        ...

    def record_deployment_health(self, provider: str, key: SecretStr, health: KeyHealth) -> None: ...

    def record_deployment_model_gone(self, provider: str, key: SecretStr, model: str, at: datetime) -> None:
        """Add `model` to this deployment key's gone models (until its next listing)."""
        ...
