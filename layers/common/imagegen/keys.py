"""Provider keys: formats, health, users' own keys, and the resolver the chain asks for a key per provider."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, get_args

from pydantic import BaseModel, SecretStr

from imagegen.errors import NotFound, ValidationFailed

KeyProvider = Literal["siliconflow", "huggingface", "horde", "pollinations", "tavily"]
KEY_PROVIDERS: tuple[KeyProvider, ...] = get_args(KeyProvider)
HealthStatus = Literal["ok", "invalid", "out_of_credit", "unreachable"]
KeySource = Literal["user", "deployment", "keyless"]

# The chain skips a key in these states; `unreachable` says nothing about the key, so it is still tried.
UNUSABLE: frozenset[str] = frozenset({"invalid", "out_of_credit"})
HORDE_ANONYMOUS_KEY = "0000000000"
# Providers that work without any key: Horde's anonymous user, Pollinations' legacy host, the offline placeholder.
KEYLESS_PROVIDERS: frozenset[str] = frozenset({"horde", "pollinations", "placeholder"})
# The names a deployment key goes by: environment variable locally, key of the JSON map in the secret.
DEPLOYMENT_KEY_NAMES: dict[str, str] = {
    "siliconflow": "SILICONFLOW_API_KEY",
    "huggingface": "HF_TOKEN",
    "horde": "HORDE_API_KEY",
    "pollinations": "POLLINATIONS_API_KEY",
    "tavily": "TAVILY_API_KEY",
}

_KEY_CHARS = r"[A-Za-z0-9_-]"
# (pattern, what a client is told was expected) per provider.
_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "siliconflow": (
        re.compile(rf"^sk-{_KEY_CHARS}{{8,200}}$"),
        "a SiliconFlow API key: sk- followed by 8-200 letters, digits, _ or -",
    ),
    "huggingface": (
        re.compile(rf"^hf_{_KEY_CHARS}{{8,200}}$"),
        "a Hugging Face token: hf_ followed by 8-200 letters, digits, _ or -",
    ),
    "horde": (
        re.compile(rf"^{_KEY_CHARS}{{10,64}}$"),
        "an AI Horde API key: 10-64 characters of A-Z a-z 0-9 _ - (not the anonymous 0000000000)",
    ),
    "pollinations": (
        re.compile(rf"^(sk|pk)_{_KEY_CHARS}{{8,200}}$"),
        "a Pollinations key: sk_ (secret) or pk_ (publishable) followed by 8-200 letters, digits, _ or -",
    ),
    "tavily": (
        re.compile(rf"^tvly-{_KEY_CHARS}{{8,200}}$"),
        "a Tavily API key: tvly- followed by 8-200 letters, digits, _ or -",
    ),
}


def key_provider(name: str) -> KeyProvider:
    """The provider named in a path; anything else is a 404, like any unknown resource."""
    for provider in KEY_PROVIDERS:
        if provider == name:
            return provider
    raise NotFound(
        f"no key provider named {name[:64]!r}",
        hint=f"providers that take keys: {', '.join(KEY_PROVIDERS)}",
    )


def check_key_format(provider: KeyProvider, api_key: str) -> None:
    """422 naming `api_key` and what was expected; the key itself is never echoed."""
    pattern, expected = _FORMATS[provider]
    if pattern.fullmatch(api_key) and not (provider == "horde" and api_key == HORDE_ANONYMOUS_KEY):
        return
    message = f"expected {expected}"
    raise ValidationFailed(f"api_key: {message}", details=[{"field": "api_key", "message": message}])


def last4(api_key: str) -> str:
    return api_key[-4:]


class KeyHealth(BaseModel):
    """What the last check of one key found."""

    status: HealthStatus
    detail: str | None = None
    # When the status was learned.
    checked_at: datetime
    # When a check was last tried, even one that learned nothing (a 429): paces rate-limited checks.
    attempted_at: datetime | None = None

    @property
    def usable(self) -> bool:
        return self.status not in UNUSABLE


@dataclass(frozen=True)
class ResolvedKey:
    """The key the chain should use for one provider, where it came from, and its last known health.

    `source` None: no key and the provider needs one. `key` None with source "keyless": call without a key
    (Horde's anonymous key, Pollinations' legacy host). `health` None: never checked (try it).
    """

    source: KeySource | None
    key: SecretStr | None
    health: KeyHealth | None

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
    provider: KeyProvider
    last4: str
    created_at: datetime
    updated_at: datetime
    # Changes with every PUT, so a check of a replaced key never overwrites the new key's health.
    version: str
    health: KeyHealth | None


class UserKeyStore(Protocol):
    def get(self, user_id: str, provider: str) -> UserKey | None: ...

    def decrypt(self, user_id: str, provider: str) -> tuple[UserKey, SecretStr] | None: ...

    def record_health(self, user_id: str, provider: str, version: str, health: KeyHealth) -> bool: ...


class DeploymentKeys(Protocol):
    def get(self, provider: str) -> SecretStr | None: ...


class DeploymentHealthStore(Protocol):
    def deployment_health(self, provider: str, key: SecretStr) -> KeyHealth | None:
        """The last health recorded for this very key (a rotated key has none yet)."""
        ...

    def record_deployment_health(self, provider: str, key: SecretStr, health: KeyHealth) -> None: ...


class KeyResolver:
    """user key → deployment key → keyless. The first source that has a key decides: a broken user key is
    reported for skipping rather than silently replaced by the deployment's (whose credits it would spend).

    Decrypted keys are cached on the instance only: build one per invocation (or call `clear()`).
    """

    def __init__(
        self, user_keys: UserKeyStore, deployment_keys: DeploymentKeys, deployment_health: DeploymentHealthStore
    ) -> None:
        self._user_keys = user_keys
        self._deployment_keys = deployment_keys
        self._deployment_health = deployment_health
        self._resolved: dict[tuple[str, str], tuple[ResolvedKey, str | None]] = {}

    def resolve(self, user_id: str, provider: str) -> ResolvedKey:
        cached = self._resolved.get((user_id, provider))
        if cached is not None:
            return cached[0]
        found = self._user_keys.decrypt(user_id, provider) if provider in KEY_PROVIDERS else None
        if found is not None:
            stored, secret = found
            resolved, version = ResolvedKey("user", secret, stored.health), stored.version
        else:
            resolved, version = self._without_user_key(provider), None
        self._resolved[(user_id, provider)] = (resolved, version)
        return resolved

    def describe(self, user_id: str, provider: str) -> ResolvedKey:
        """As `resolve`, but never decrypts: `key` is None. For showing the chain, not for calling it."""
        stored = self._user_keys.get(user_id, provider) if provider in KEY_PROVIDERS else None
        if stored is not None:
            return ResolvedKey("user", None, stored.health)
        resolved = self._without_user_key(provider)
        return ResolvedKey(resolved.source, None, resolved.health)

    def mark(self, user_id: str, provider: str, status: HealthStatus, detail: str, *, at: datetime) -> None:
        """Record what a real call learned about the key `resolve` gave (a 401 → invalid, a 402 → out_of_credit),
        so later runs skip it until the schedule or a new PUT finds it healthy again."""
        resolved = self.resolve(user_id, provider)
        version = self._resolved[(user_id, provider)][1]
        health = KeyHealth(status=status, detail=detail, checked_at=at, attempted_at=at)
        if resolved.source == "user" and version is not None:
            self._user_keys.record_health(user_id, provider, version, health)
        elif resolved.source == "deployment" and resolved.key is not None:
            self._deployment_health.record_deployment_health(provider, resolved.key, health)
        else:
            return
        self._resolved[(user_id, provider)] = (ResolvedKey(resolved.source, resolved.key, health), version)

    def clear(self) -> None:
        self._resolved.clear()

    def _without_user_key(self, provider: str) -> ResolvedKey:
        key = self._deployment_keys.get(provider) if provider in KEY_PROVIDERS else None
        if key is not None:
            return ResolvedKey("deployment", key, self._deployment_health.deployment_health(provider, key))
        if provider in KEYLESS_PROVIDERS:
            return ResolvedKey("keyless", None, None)
        return ResolvedKey(None, None, None)
