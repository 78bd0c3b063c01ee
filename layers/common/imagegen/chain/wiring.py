"""Builds the provider chain once per container: one provider-API client, the shared-state stores (breakers, rate
limits, latency sketches), keys and fetcher."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from imagegen import __version__
from imagegen.chain.core import Chain

if TYPE_CHECKING:
    from imagegen.breaker import BreakerStore
    from imagegen.chain.latency import LatencyStore
    from imagegen.chain.limits import RateStore
    from imagegen.chain.ports import KeyPort, MetricsSink, ResultFetcher, RouteCatalog
    from imagegen.providers.settings import ProvidersSettings


def provider_client(concurrency: int = 10) -> httpx.Client:
    """The one client for provider APIs. Redirects are not followed: a custom key header (Horde's `apikey`)
    would ride along to whatever host a redirect names. Each request also carries its own per-attempt timeout.
    `concurrency`: runs sharing this client at once (one per Lambda container; the local stack runs many), each
    with a call and its hedge in flight."""
    return httpx.Client(
        timeout=httpx.Timeout(60.0, connect=5.0),
        follow_redirects=False,
        headers={"user-agent": f"imagegen/{__version__}"},
        limits=httpx.Limits(max_connections=max(20, 2 * concurrency), max_keepalive_connections=10),
    )


def build_chain(
    settings: ProvidersSettings,
    *,
    keys: KeyPort,
    fetcher: ResultFetcher,
    breaker: BreakerStore,
    rates: RateStore | None = None,
    latencies: LatencyStore | None = None,
    http: httpx.Client | None = None,
    metrics: MetricsSink | None = None,
    catalog: RouteCatalog | None = None,
) -> Chain:
    return Chain(
        settings,
        http or provider_client(),
        fetcher,
        keys=keys,
        breaker=breaker,
        rates=rates,
        latencies=latencies,
        metrics=metrics,
        catalog=catalog,
    )
