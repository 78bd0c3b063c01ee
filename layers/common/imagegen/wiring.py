"""Adapters and services built once per container from the function's settings; tests call reset().

Every import beyond the settings is made inside the factory that needs it: each function pays at cold start only
for the modules its own path uses (the authorizer loads neither httpx nor the provider chain).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

# Every function talks to AWS: boto3 is loaded at init, where Lambda expects it, not on the first request.
import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

    from imagegen.adapters.batch_store import BatchStore
    from imagegen.adapters.breaker_store import DynamoBreakerStore
    from imagegen.adapters.delivery_store import DeliveryRecords
    from imagegen.adapters.deployment_keys import SecretDeploymentKeys
    from imagegen.adapters.image_store import ImageStore
    from imagegen.adapters.job_store import JobStore
    from imagegen.adapters.key_store import KeyStore
    from imagegen.adapters.outbox_store import DynamoOutboxStore
    from imagegen.adapters.queue import SqsQueue
    from imagegen.adapters.tokens import TokenStore
    from imagegen.authorizer_settings import AuthorizerSettings
    from imagegen.breaker import Breakers
    from imagegen.catalogs import RouteMaps
    from imagegen.generation import Generator
    from imagegen.grounding import WebSearch
    from imagegen.jobs.batches import BatchService
    from imagegen.jobs.outbox import Outbox
    from imagegen.jobs.quota import QuotaRefunds, Quotas
    from imagegen.jobs.service import JobService
    from imagegen.jobs.video_chain import VideoChains
    from imagegen.jobs.work import Worker
    from imagegen.keys.chain_keys import ChainKeys
    from imagegen.keys.credit import Recheck
    from imagegen.keys.health import HealthService, KeyRechecks
    from imagegen.keys.resolver import KeyResolver
    from imagegen.keys.status import ChainStatus
    from imagegen.keys.types import DeploymentKeys
    from imagegen.keys.user_keys import UserKeyService
    from imagegen.media.fetch import SafeFetcher
    from imagegen.media.proxy import MediaProxy
    from imagegen.models import ImageRequest, Job, VideoJob, VideoRequest
    from imagegen.scheduled import ScheduledRun
    from imagegen.settings import (
        ApiSettings,
        AwsSettings,
        FetchSettings,
        FunctionSettings,
        JobSettings,
        KeySettings,
        ScheduledSettings,
        WebhookSettings,
        WorkerSettings,
    )
    from imagegen.webhooks.deliveries import WebhookDeliveries
    from imagegen.webhooks.delivery import WebhookDelivery
    from imagegen.webhooks.secrets import WebhookSecrets

F = TypeVar("F", bound=Callable[..., Any])
_CACHES: list[Any] = []


def cached(factory: F) -> F:
    """functools.cache, and remembered by reset(): a new cached factory cannot be forgotten there."""
    wrapped = cache(factory)
    _CACHES.append(wrapped)
    return wrapped  # type: ignore[return-value]


def reset() -> None:
    """Forget every cached setting and client (the environment changed: tests, the local stack)."""
    for wrapped in _CACHES:
        wrapped.cache_clear()


# --- AWS clients ---------------------------------------------------------------------------------------------------


# Explicit timeouts and bounded retries: a slow AWS call must not eat the whole Lambda timeout.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


@cached
def _client(service: str, region: str, endpoint: str | None) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)  # type: ignore[call-overload]


def dynamodb(settings: AwsSettings | AuthorizerSettings) -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb", settings.aws_region, settings.aws_endpoint_url)
    return client


def _s3(settings: AwsSettings) -> S3Client:
    client: S3Client = _client("s3", settings.aws_region, settings.aws_endpoint_url)
    return client


def _sqs(settings: AwsSettings) -> SQSClient:
    client: SQSClient = _client("sqs", settings.aws_region, settings.aws_endpoint_url)
    return client


def _kms(settings: AwsSettings) -> KMSClient:
    client: KMSClient = _client("kms", settings.aws_region, settings.aws_endpoint_url)
    return client


# --- settings, one model per function ------------------------------------------------------------------------------


@cached
def api_settings() -> ApiSettings:
    from imagegen.settings import ApiSettings

    return ApiSettings.from_env(os.environ)


@cached
def worker_settings() -> WorkerSettings:
    from imagegen.settings import WorkerSettings

    return WorkerSettings.from_env(os.environ)


@cached
def scheduled_settings() -> ScheduledSettings:
    from imagegen.settings import ScheduledSettings

    return ScheduledSettings.from_env(os.environ)


# --- keys ----------------------------------------------------------------------------------------------------------


@cached
def _keycheck_client(timeout_seconds: float) -> Any:
    from imagegen.keys.check import new_client

    return new_client(timeout_seconds)


@cached
def _secret_keys(name: str, max_age: int, region: str, endpoint: str | None) -> SecretDeploymentKeys:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from imagegen.adapters.deployment_keys import SecretDeploymentKeys

    # Cached per container: the Powertools provider's own cache (max_age) must outlive one invocation.
    client = _client("secretsmanager", region, endpoint)
    return SecretDeploymentKeys(name, SecretsProvider(boto3_client=client), max_age=max_age)


def deployment_keys(settings: KeySettings) -> DeploymentKeys:
    """One Secrets Manager secret when PROVIDER_KEYS_SECRET is set; else the environment (local, tests)."""
    from imagegen.adapters.deployment_keys import EnvDeploymentKeys

    if settings.provider_keys_secret:
        region, endpoint = settings.aws_region, settings.aws_endpoint_url
        return _secret_keys(settings.provider_keys_secret, settings.provider_keys_max_age_seconds, region, endpoint)
    return EnvDeploymentKeys(settings.providers)


def key_store(settings: KeySettings) -> KeyStore:
    from imagegen.adapters.key_store import KeyStore

    return KeyStore(settings.table_name, dynamodb(settings), _kms(settings), settings.keys_kms_key_id)


def key_resolver(settings: KeySettings) -> KeyResolver:
    """A fresh resolver: it caches decrypted user keys, so build one per invocation (or per job run)."""
    from imagegen.keys.resolver import KeyResolver

    store = key_store(settings)
    return KeyResolver(store, deployment_keys(settings), store)


def chain_keys(settings: KeySettings, recheck: Recheck | None = None) -> ChainKeys:
    """The chain's key port; the worker calls its begin_invocation() once per invocation. Refusals for credit are
    counted in the table; `recheck` asks for a key check when they mark a key."""
    from imagegen.adapters.credit_evidence import DynamoCreditEvidence
    from imagegen.keys.chain_keys import ChainKeys

    credit = DynamoCreditEvidence(settings.table_name, dynamodb(settings))
    return ChainKeys(lambda: key_resolver(settings), credit=credit, recheck=recheck)


def health_service(settings: KeySettings, *, clock: Callable[[], datetime] | None = None) -> HealthService:
    from imagegen.adapters.metrics import EmfMetrics
    from imagegen.keys.check import KeyChecker
    from imagegen.keys.health import HealthService
    from imagegen.models import utcnow

    store = key_store(settings)
    return HealthService(
        KeyChecker(_keycheck_client(settings.keycheck_timeout_seconds), settings.providers),
        store,
        store,
        EmfMetrics(),
        interval_seconds=settings.keycheck_interval_seconds,
        provider_intervals=settings.keycheck_intervals(),
        clock=clock or utcnow,
    )


@cached
def user_key_service() -> UserKeyService:
    from imagegen.keys.user_keys import UserKeyService

    settings = api_settings()
    return UserKeyService(key_store(settings), health_service(settings))


def breaker_store(settings: KeySettings) -> DynamoBreakerStore:
    """The breaker items as the chain writes them and GET /v1/providers reads them."""
    from imagegen.adapters.breaker_store import DynamoBreakerStore

    return DynamoBreakerStore(settings.table_name, dynamodb(settings))


def breakers(settings: KeySettings) -> Breakers:
    """The breakers as a reader sees them, with the chain's policy (one reading of a record for every reader)."""
    from imagegen.breaker import Breakers
    from imagegen.chain.shared import breaker_policy

    return Breakers(breaker_store(settings), breaker_policy(settings.providers))


@cached
def chain_status() -> ChainStatus:
    from imagegen.adapters.latency_store import DynamoLatencyStore
    from imagegen.adapters.route_maps import DynamoRouteMapStore
    from imagegen.chain.latency import LatencyBook
    from imagegen.chain.shared import latency_policy
    from imagegen.keys.status import ChainStatus, RouteView
    from imagegen.providers import REGISTRY

    settings = api_settings()
    order = list(settings.providers.chain.default_chain)
    readers = breakers(settings)
    latency = LatencyBook(
        DynamoLatencyStore(settings.table_name, dynamodb(settings)), latency_policy(settings.providers)
    )
    store = DynamoRouteMapStore(settings.table_name, dynamodb(settings))
    routes = RouteView(settings.providers, store, readers, REGISTRY, latency=latency)
    return ChainStatus(
        lambda: key_resolver(settings),
        readers,
        order,
        video_order=settings.video_chain(),
        routes=routes,
        latency=latency,
        settings=settings.providers,
    )


# --- jobs ----------------------------------------------------------------------------------------------------------


def _job_store(settings: JobSettings | ScheduledSettings) -> JobStore:
    from imagegen.adapters.job_store import JobStore

    return JobStore(settings.table_name, dynamodb(settings), ttl_seconds=settings.job_ttl_days * 86400)


def _queue(url: str, settings: AwsSettings) -> SqsQueue:
    from imagegen.adapters.queue import SqsQueue

    return SqsQueue(url, _sqs(settings))


def _image_store(settings: JobSettings) -> ImageStore:
    from imagegen.adapters.image_store import ImageStore

    return ImageStore(settings.bucket_name, _s3(settings))


def _job_adapters(settings: JobSettings) -> tuple[JobStore, SqsQueue, ImageStore]:
    return _job_store(settings), _queue(settings.queue_url, settings), _image_store(settings)


def _batch_store(settings: JobSettings | ScheduledSettings) -> BatchStore:
    from imagegen.adapters.batch_store import BatchStore

    return BatchStore(settings.table_name, dynamodb(settings), ttl_seconds=settings.job_ttl_days * 86400)


def _quotas(settings: ApiSettings) -> Quotas:
    from imagegen.jobs.quota import Quotas

    return Quotas(settings.daily_image_quota, settings.images_per_minute)


def quota_refunds(settings: FunctionSettings) -> QuotaRefunds:
    from imagegen.adapters.quota_store import DynamoQuotaStore
    from imagegen.jobs.quota import QuotaRefunds

    return QuotaRefunds(DynamoQuotaStore(settings.table_name, dynamodb(settings)))


def _webhook_queue(settings: WebhookSettings) -> SqsQueue | None:
    return _queue(settings.webhook_queue_url, settings) if settings.webhook_queue_url else None


def _ttl_seconds(settings: WebhookSettings) -> int:
    return settings.job_ttl_days * 86400


def _outbox_store(settings: FunctionSettings) -> DynamoOutboxStore:
    from imagegen.adapters.outbox_store import DynamoOutboxStore

    return DynamoOutboxStore(settings.table_name, dynamodb(settings))


def _delivery_records(settings: WebhookSettings) -> DeliveryRecords:
    from imagegen.adapters.delivery_store import DeliveryRecords

    return DeliveryRecords(settings.table_name, dynamodb(settings), outbox_ttl_seconds=_ttl_seconds(settings))


def _webhook_sends(settings: WebhookSettings) -> Outbox:
    """An outbox that queues webhook attempts (`webhook_send` items) and nothing else (yet)."""
    from datetime import timedelta

    from imagegen.jobs.outbox import STALE_AFTER, Outbox
    from imagegen.settings import ScheduledSettings
    from imagegen.webhooks.delivery import send_effect

    stale = STALE_AFTER
    if isinstance(settings, ScheduledSettings):
        stale = timedelta(seconds=settings.outbox_stale_seconds)
    outbox = Outbox(_outbox_store(settings), stale_after=stale)
    queue = _webhook_queue(settings)
    if queue is not None:
        outbox.on("webhook_send", send_effect(queue))
    return outbox


def _outbox(settings: ApiSettings | WorkerSettings | ScheduledSettings, store: JobStore) -> Outbox:
    """What happens when a job ends, in the API (cancel), the worker and the sweeper alike: a failed or canceled
    job gives its quota unit back, its batch learns of it, and its webhook (and the batch's, for a batch's last
    item) is recorded and queued. Each is an effect of the `job_ended` outbox item written with the job's end."""
    from imagegen.jobs.batches import BatchTracker
    from imagegen.jobs.ending import JobEffect, JobEnded
    from imagegen.webhooks.events import WebhookEvents

    outbox = _webhook_sends(settings)
    events = None
    if settings.webhook_queue_url:
        events = WebhookEvents(_delivery_records(settings), outbox, ttl_seconds=_ttl_seconds(settings))
    effects: list[JobEffect] = [quota_refunds(settings), BatchTracker(_batch_store(settings), store, events)]
    if events is not None:
        effects.append(events.job_ended)
    outbox.on("job_ended", JobEnded(store, effects))
    return outbox


@cached
def job_service() -> JobService[ImageRequest, Job]:
    from imagegen.adapters.webhook_url import url_check
    from imagegen.jobs.service import JobService

    settings = api_settings()
    store, queue, images = _job_adapters(settings)
    return JobService(
        store,
        queue,
        images,
        content_url_seconds=settings.content_url_seconds,
        outbox=_outbox(settings, store),
        url_check=url_check(settings.media_allow_private_networks),
        quota=_quotas(settings),
    )


@cached
def video_service() -> JobService[VideoRequest, VideoJob]:
    """Video jobs: the image jobs' service with video ids, shapes and quota units (VIDEO_QUOTA_UNITS)."""
    from imagegen.adapters.webhook_url import url_check
    from imagegen.jobs.service import VIDEO_JOBS, JobService

    settings = api_settings()
    store, queue, images = _job_adapters(settings)
    return JobService(
        store,
        queue,
        images,
        content_url_seconds=settings.content_url_seconds,
        outbox=_outbox(settings, store),
        url_check=url_check(settings.media_allow_private_networks),
        quota=_quotas(settings),
        kind=VIDEO_JOBS,
        quota_units=settings.video_quota_units,
    )


@cached
def batch_service() -> BatchService:
    from imagegen.jobs.batches import BatchService

    settings = api_settings()
    store, queue, _ = _job_adapters(settings)
    return BatchService(store, _batch_store(settings), queue, job_service(), quota=_quotas(settings))


# --- webhooks ------------------------------------------------------------------------------------------------------


def _webhook_secrets(settings: FunctionSettings) -> WebhookSecrets:
    from imagegen.adapters.webhook_secrets import WebhookSecretStore
    from imagegen.webhooks.secrets import WebhookSecrets

    return WebhookSecrets(WebhookSecretStore(settings.table_name, dynamodb(settings)))


@cached
def webhook_secrets() -> WebhookSecrets:
    return _webhook_secrets(api_settings())


@cached
def webhook_deliveries() -> WebhookDeliveries:
    """The API's delivery routes: list, redeliver."""
    from imagegen.webhooks.deliveries import WebhookDeliveries

    settings = api_settings()
    return WebhookDeliveries(_delivery_records(settings), _webhook_sends(settings))


@cached
def webhook_delivery() -> WebhookDelivery:
    from imagegen.adapters.webhook_http import WebhookHttpSender
    from imagegen.settings import WebhookSettings
    from imagegen.webhooks.deliveries import RETRY_SCHEDULE, parse_schedule
    from imagegen.webhooks.delivery import WebhookDelivery

    settings = WebhookSettings.from_env(os.environ)
    queue = _webhook_queue(settings)
    if queue is None:
        raise RuntimeError("WEBHOOK_QUEUE_URL is required by the webhook function")
    schedule = parse_schedule(settings.webhook_retry_schedule) if settings.webhook_retry_schedule else RETRY_SCHEDULE
    return WebhookDelivery(
        _webhook_secrets(settings),
        WebhookHttpSender(allow_private=settings.media_allow_private_networks),
        queue,
        _delivery_records(settings),
        _webhook_sends(settings),
        schedule=schedule,
    )


# --- the worker ----------------------------------------------------------------------------------------------------


def _fetcher(settings: FetchSettings) -> SafeFetcher:
    from imagegen.media.fetch import FetchPolicy, SafeFetcher

    policy = FetchPolicy.from_settings(
        settings.media_allowed_hosts,
        settings.media_allow_private_networks,
        settings.media_max_bytes,
        connect_timeout=settings.media_connect_timeout_seconds,
        read_timeout=settings.media_read_timeout_seconds,
        total_timeout=settings.media_total_timeout_seconds,
    )
    return SafeFetcher(policy)


@cached
def metrics() -> Metrics:
    """One EMF metrics set per container; the worker handler flushes it after each invocation."""
    from aws_lambda_powertools import Metrics

    return Metrics()


@cached
def worker_keys() -> ChainKeys:
    """The worker's key port for the chain; the worker handler begins an invocation on it each time. A key that
    calls mark out of credit is checked again by a delayed `keycheck` message to the worker itself."""
    from imagegen.messages import KeyCheckMessage

    settings = worker_settings()
    queue = _queue(settings.queue_url, settings)

    def recheck(user_id: str, provider: str, source: str, delay: int) -> None:
        if source not in ("user", "deployment"):
            return
        try:
            queue.send(KeyCheckMessage(user_id=user_id, provider=provider, source=source), delay_seconds=delay)
        except Exception:
            logging.getLogger(__name__).exception("could not ask for a key re-check")

    return chain_keys(settings, recheck)


def route_maps(settings: KeySettings, http: Any) -> RouteMaps:
    """Routing providers' catalogs (Hugging Face's provider mappings) in the table, fetched with the deployment's
    key (never a user's: the catalog is shared) over `http`."""
    from imagegen.adapters.route_maps import DynamoRouteMapStore
    from imagegen.catalogs import RouteMaps
    from imagegen.providers import REGISTRY

    store = DynamoRouteMapStore(settings.table_name, dynamodb(settings))
    return RouteMaps(store, settings.providers, http, registry=REGISTRY, token=deployment_keys(settings).get)


@cached
def _provider_http(concurrency: int) -> Any:
    """The one client for provider APIs in this container: image and video chains share its connections, sized for
    `concurrency` runs at once (WORKER_MAX_CONCURRENCY)."""
    from imagegen.chain.wiring import provider_client

    return provider_client(concurrency)


def generator(settings: WorkerSettings) -> Generator:
    from imagegen.adapters.latency_store import DynamoLatencyStore
    from imagegen.adapters.rate_store import DynamoRateStore
    from imagegen.chain.wiring import build_chain

    http = _provider_http(settings.worker_max_concurrency)
    return build_chain(
        settings.providers,
        keys=worker_keys(),
        fetcher=_fetcher(settings),
        breaker=breaker_store(settings),
        rates=DynamoRateStore(settings.table_name, dynamodb(settings)),
        latencies=DynamoLatencyStore(settings.table_name, dynamodb(settings)),
        metrics=metrics(),
        http=http,
        catalog=route_maps(settings, http),
    )


def _video_fetcher(settings: WorkerSettings) -> Callable[[float], SafeFetcher]:
    """Safe fetchers for video results: the media rules (hosts, no auth) with video limits, each fetch ending within
    the seconds its run has left."""
    import ssl
    from dataclasses import replace

    import certifi

    from imagegen.media.fetch import FetchPolicy, SafeFetcher

    policy = FetchPolicy.from_settings(
        settings.media_allowed_hosts,
        settings.media_allow_private_networks,
        settings.video_max_bytes,
        connect_timeout=settings.media_connect_timeout_seconds,
        read_timeout=settings.media_read_timeout_seconds,
        total_timeout=settings.video_fetch_timeout_seconds,
    )
    # One TLS context for every fetch, made by the first one: loading the CA bundle costs more than a small
    # request, and a worker that never stores a video never pays it (nor at its cold start).
    context = cache(lambda: ssl.create_default_context(cafile=certifi.where()))
    return lambda seconds: SafeFetcher(
        replace(policy, total_timeout=min(policy.total_timeout, seconds)), ssl_context=context()
    )


def video_generator(settings: WorkerSettings) -> VideoChains:
    """The video chains on the worker's provider client, keys and breakers; results into the jobs bucket."""
    from imagegen.adapters.latency_store import DynamoLatencyStore
    from imagegen.adapters.media_cache import MediaCache
    from imagegen.adapters.rate_store import DynamoRateStore
    from imagegen.jobs.video_chain import build_video_chains
    from imagegen.media.video_results import VideoResults
    from imagegen.providers import REGISTRY

    return build_video_chains(
        settings.providers,
        REGISTRY,
        settings.video_chain(),
        http=_provider_http(settings.worker_max_concurrency),
        fetcher=_fetcher(settings),
        keys=worker_keys(),
        breaker=breaker_store(settings),
        results=VideoResults(MediaCache(settings.bucket_name, _s3(settings)), _video_fetcher(settings)),
        metrics=metrics(),
        rates=DynamoRateStore(settings.table_name, dynamodb(settings)),
        latencies=DynamoLatencyStore(settings.table_name, dynamodb(settings)),
    )


def web_search(settings: WorkerSettings) -> WebSearch | None:
    """Tavily when a key is configured, else None (grounding then warns): never tavily-python's keyless mode."""
    from imagegen.adapters.tavily_search import TavilySearch
    from imagegen.providers import tavily as tavily_spec

    tavily = settings.providers.for_provider(tavily_spec.NAME)
    key = tavily.api_key.get_secret_value().strip() if tavily.api_key else ""
    if not key:
        return None
    return TavilySearch(key, tavily.base_url, timeout_seconds=settings.grounding_timeout_seconds)


@cached
def worker() -> Worker:
    from functools import partial

    from imagegen.grounding import ground
    from imagegen.jobs.work import Worker, WorkerConfig

    settings = worker_settings()
    store, queue, images = _job_adapters(settings)
    config = WorkerConfig(
        lease_seconds=settings.job_lease_seconds,
        deadline_seconds=settings.worker_deadline_seconds,
        max_receive_count=settings.job_max_receive_count,
        max_age_seconds=settings.job_max_age_seconds,
    )
    return Worker(
        store,
        images,
        queue,
        generator(settings),
        config,
        outbox=_outbox(settings, store),
        grounder=partial(ground, search=web_search(settings)),
        rechecks=lambda message: key_rechecks()(message),
        videos=video_generator(settings),
    )


@cached
def key_rechecks() -> KeyRechecks:
    """Built on the first `keycheck` message only: most worker containers never check a key."""
    from imagegen.keys.health import KeyRechecks

    settings = worker_settings()
    store = key_store(settings)
    return KeyRechecks(health_service(settings), store, deployment_keys(settings))


# --- the other functions -------------------------------------------------------------------------------------------


@cached
def token_store() -> TokenStore:
    from imagegen.adapters.tokens import TokenStore
    from imagegen.authorizer_settings import AuthorizerSettings

    settings = AuthorizerSettings.from_env(os.environ)
    return TokenStore(settings.table_name, dynamodb(settings))


@cached
def scheduled_run() -> ScheduledRun:
    from imagegen.adapters.active_jobs import ActiveJobs
    from imagegen.adapters.metrics import EmfMetrics
    from imagegen.jobs.sweeper import SweepConfig, Sweeper
    from imagegen.scheduled import ScheduledRun

    settings = scheduled_settings()
    store = _job_store(settings)
    sweeper = Sweeper(
        ActiveJobs(settings.table_name, dynamodb(settings), ttl_seconds=_ttl_seconds(settings)),
        _queue(settings.queue_url, settings),
        SweepConfig(
            max_receive_count=settings.job_max_receive_count,
            queued_requeue_seconds=settings.queued_requeue_seconds,
            max_jobs=settings.sweep_max_jobs,
            max_age_seconds=settings.job_max_age_seconds,
        ),
        outbox=_outbox(settings, store),
    )
    return ScheduledRun(
        sweeper,
        health_service(settings),
        deployment_keys(settings),
        key_store(settings),
        EmfMetrics(),
        max_key_checks=settings.keycheck_max_per_run,
        check_timeout_seconds=settings.keycheck_timeout_seconds,
        catalogs=route_maps(settings, _keycheck_client(settings.keycheck_timeout_seconds)),
    )


@cached
def media_proxy() -> MediaProxy:
    from imagegen.adapters.media_cache import MediaCache
    from imagegen.media.proxy import MediaProxy
    from imagegen.settings import MediaProxySettings

    settings = MediaProxySettings.from_env(os.environ)
    return MediaProxy(
        _fetcher(settings),
        MediaCache(settings.bucket_name, _s3(settings)),
        inline_max_bytes=settings.media_inline_max_bytes,
        presign_ttl_seconds=settings.media_presign_ttl_seconds,
    )
