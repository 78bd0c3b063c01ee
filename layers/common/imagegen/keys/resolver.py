"""Which key the chain uses for a provider: the user's own, else the deployment's, else keyless where it works."""

from __future__ import annotations

from datetime import datetime

from imagegen import providers
from imagegen.keys.types import (
    DeploymentHealthStore,
    DeploymentKeys,
    HealthStatus,
    KeyHealth,
    ResolvedKey,
    UserKeyStore,
    key_scope,
)


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
        found = self._user_keys.decrypt(user_id, provider) if provider in providers.KEY_PROVIDERS else None
        if found is not None:
            stored, secret = found
            scope = key_scope("user", user_id=user_id, version=stored.version)
            resolved, version = ResolvedKey("user", secret, stored.health, scope), stored.version
        else:
            resolved, version = self._without_user_key(provider), None
        self._resolved[(user_id, provider)] = (resolved, version)
        return resolved

    def describe(self, user_id: str, provider: str) -> ResolvedKey:
        """As `resolve`, but never decrypts: `key` is None. For showing the chain, not for calling it."""
        stored = self._user_keys.get(user_id, provider) if provider in providers.KEY_PROVIDERS else None
        if stored is not None:
            return ResolvedKey("user", None, stored.health, key_scope("user", user_id=user_id, version=stored.version))
        resolved = self._without_user_key(provider)
        return ResolvedKey(resolved.source, None, resolved.health, resolved.scope)

    def mark(self, user_id: str, provider: str, status: HealthStatus, detail: str, *, at: datetime) -> None:
        """Record what a real call learned about the key `resolve` gave (a 401 → invalid, a 402 → out_of_credit),
        so later runs skip it until the schedule or a new PUT finds it healthy again."""
        resolved = self.resolve(user_id, provider)
        version = self._resolved[(user_id, provider)][1]
        known = resolved.health
        health = KeyHealth(
            status=status,
            detail=detail,
            checked_at=at,
            attempted_at=at,
            # What the last listing said still holds: a verdict on the key is no new listing.
            models=known.models if known else None,
            gone=known.gone if known else (),
        )
        if resolved.source == "user" and version is not None:
            self._user_keys.record_health(user_id, provider, version, health)
        elif resolved.source == "deployment" and resolved.key is not None:
            self._deployment_health.record_deployment_health(provider, resolved.key, health)
        else:
            return
        self._resolved[(user_id, provider)] = (
            ResolvedKey(resolved.source, resolved.key, health, resolved.scope),
            version,
        )

    def mark_gone(self, user_id: str, provider: str, model: str, *, at: datetime) -> None:
        """Record that the provider said `model` does not exist for the key `resolve` gave: later runs skip it until
        the key's next model listing."""
        resolved = self.resolve(user_id, provider)
        version = self._resolved[(user_id, provider)][1]
        if resolved.source == "user" and version is not None:
            self._user_keys.record_model_gone(user_id, provider, version, model, at)
        elif resolved.source == "deployment" and resolved.key is not None:
            self._deployment_health.record_deployment_model_gone(provider, resolved.key, model, at)
        else:
            return
        health = resolved.health.with_gone(model) if resolved.health else KeyHealth.answered(at, (model,))
        self._resolved[(user_id, provider)] = (
            ResolvedKey(resolved.source, resolved.key, health, resolved.scope),
            version,
        )

    def clear(self) -> None:
        self._resolved.clear()

    def _without_user_key(self, provider: str) -> ResolvedKey:
        key = self._deployment_keys.get(provider) if provider in providers.KEY_PROVIDERS else None
        if key is not None:
            health = self._deployment_health.deployment_health(provider, key)
            return ResolvedKey("deployment", key, health, key_scope("deployment", key=key))
        if provider in providers.KEYLESS_PROVIDERS:
            return ResolvedKey("keyless", None, None, "keyless")
        return ResolvedKey(None, None, None)
