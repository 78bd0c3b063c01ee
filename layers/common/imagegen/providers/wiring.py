"""Builds the provider chain once per container: one provider-API client, the breaker table, the caller's fetcher."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from imagegen import __version__
from imagegen.adapters.breaker_store import DynamoBreakerStore
from imagegen.breaker import BreakerPolicy
from imagegen.chain import Chain, KeyHealth, KeyResolver, MetricsSink, ResultFetcher
from imagegen.providers.config import ProvidersSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def provider_client() -> httpx.Client:
    """The one client for provider APIs. Redirects are not followed: a custom key header (Horde's `apikey`)
    would ride along to whatever host a redirect names. Each request also carries its own per-attempt timeout."""
    return httpx.Client(
        timeout=httpx.Timeout(60.0, connect=5.0),
        follow_redirects=False,
        headers={"user-agent": f"imagegen/{__version__}"},
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
    )


def build_chain(
    environ: Mapping[str, str],
    *,
    fetcher: ResultFetcher,
    table_name: str,
    dynamodb_client: DynamoDBClient,
    http: httpx.Client | None = None,
    metrics: MetricsSink | None = None,
    key_resolver: KeyResolver | None = None,
    key_health: KeyHealth | None = None,
) -> Chain:
    settings = ProvidersSettings.from_environ(environ)
    policy = BreakerPolicy(threshold=settings.chain.breaker_threshold, cooldown_s=settings.chain.breaker_cooldown_s)
    return Chain(
        settings,
        http or provider_client(),
        fetcher,
        breaker=DynamoBreakerStore(table_name, dynamodb_client, policy),
        metrics=metrics,
        key_resolver=key_resolver,
        key_health=key_health,
    )
