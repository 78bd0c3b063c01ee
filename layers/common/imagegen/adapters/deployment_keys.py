"""The deployment's provider keys: one Secrets Manager secret (a JSON map) read through Powertools, or the env."""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from pydantic import SecretStr

from imagegen.errors import ServiceUnavailable
from imagegen.keys.formats import usable_deployment_key
from imagegen.providers import DEPLOYMENT_KEY_NAMES
from imagegen.providers.settings import ProvidersSettings

logger = logging.getLogger(__name__)


def _usable(provider: str, value: Any) -> SecretStr | None:
    key = usable_deployment_key(provider, value)
    return SecretStr(key) if key is not None else None


class SecretDeploymentKeys:
    """Keys from one secret, e.g. {"siliconflow": "sk-...", "huggingface": "hf_..."}.

    Each map key may be the provider name or the environment variable name (SILICONFLOW_API_KEY, HF_TOKEN, ...).
    Powertools caches the secret for `max_age` seconds, so a rotated secret is picked up without a deploy.
    """

    def __init__(self, secret_name: str, provider: SecretsProvider, *, max_age: int) -> None:
        self._name = secret_name
        self._provider = provider
        self._max_age = max_age

    def get(self, provider: str) -> SecretStr | None:
        keys = self._load()
        value = keys.get(provider, keys.get(DEPLOYMENT_KEY_NAMES.get(provider, "")))
        return _usable(provider, value)

    def _load(self) -> dict[str, Any]:
        try:
            value = self._provider.get(self._name, max_age=self._max_age, transform="json")
        except GetParameterError as error:
            # The Powertools message wraps the AWS error (no secret value in it), but only its class is logged.
            logger.error("could not read the provider keys secret: %s", type(error.__context__ or error).__name__)
            raise ServiceUnavailable(
                "provider keys are unavailable right now (the secret store did not answer)",
                hint="try again in a minute",
            ) from None
        except TransformParameterError:
            logger.error("the provider keys secret is not a JSON object")
            raise ServiceUnavailable(
                "provider keys are misconfigured on this deployment", hint="the operator fixes the keys secret"
            ) from None
        if not isinstance(value, dict):
            logger.error("the provider keys secret is not a JSON object")
            raise ServiceUnavailable(
                "provider keys are misconfigured on this deployment", hint="the operator fixes the keys secret"
            )
        return value


class EnvDeploymentKeys:
    """Keys from the providers' settings (SILICONFLOW_API_KEY, HF_TOKEN, ...): locally and in tests."""

    def __init__(self, settings: ProvidersSettings) -> None:
        self._settings = settings

    def get(self, provider: str) -> SecretStr | None:
        if provider not in DEPLOYMENT_KEY_NAMES:
            return None
        value = self._settings.for_provider(provider).api_key
        return _usable(provider, value.get_secret_value()) if value is not None else None
