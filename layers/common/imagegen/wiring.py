"""Adapters and services built once per container from the function's settings; tests call reset()."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import cache, partial
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from imagegen.adapters.batch_store import BatchStore
from imagegen.adapters.image_store import ImageStore
from imagegen.adapters.job_queue import JobQueue
from imagegen.adapters.job_store import JobStore
from imagegen.adapters.media_cache import MediaCache
from imagegen.adapters.quota_store import DynamoQuotaStore
from imagegen.adapters.tavily_search import TavilySearch
from imagegen.adapters.tokens import TokenStore
from imagegen.adapters.webhook_secrets import WebhookSecretStore
from imagegen.adapters.webhook_url import url_check
from imagegen.batches import BatchService, BatchTracker
from imagegen.generation import Generator
from imagegen.grounding import WebSearch, ground
from imagegen.jobs import JobService, TerminalListener
from imagegen.media import MediaProxy
from imagegen.models import utcnow
from imagegen.quota import DailyQuota, QuotaRefunds
from imagegen.settings import (
    ApiSettings,
    AuthorizerSettings,
    FetchSettings,
    FunctionSettings,
    JobSettings,
    KeySettings,
    MediaProxySettings,
    ScheduledSettings,
    WebhookSettings,
    WorkerSettings,
)
from imagegen.webhooks import RETRY_DELAYS, WebhookDelivery, WebhookNotifier, WebhookSecrets
from imagegen.work import Worker, WorkerConfig

if TYPE_CHECKING:
    import httpx
    from aws_lambda_powertools import Metrics
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient

    from imagegen.adapters.deployment_keys import SecretDeploymentKeys
    from imagegen.adapters.key_store import KeyStore
    from imagegen.chain_keys import ChainKeys
    from imagegen.chain_status import ChainStatus
    from imagegen.fetch import SafeFetcher
    from imagegen.key_health import HealthService
    from imagegen.keys import DeploymentKeys, KeyResolver
    from imagegen.scheduled import ScheduledRun
    from imagegen.user_keys import UserKeyService

# Explicit timeouts and bounded retries: a slow AWS call must not eat the whole Lambda timeout.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


def dynamodb(settings: FunctionSettings) -> DynamoDBClient:
    return _dynamodb(settings.aws_region, settings.aws_endpoint_url)


@cache
def _dynamodb(region: str, endpoint: str | None) -> DynamoDBClient:
    return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _s3(region: str, endpoint: str | None) -> S3Client:
    return boto3.client("s3", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _sqs(region: str, endpoint: str | None) -> SQSClient:
    return boto3.client("sqs", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _kms(region: str, endpoint: str | None) -> KMSClient:
    return boto3.client("kms", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _secretsmanager(region: str, endpoint: str | None) -> SecretsManagerClient:
    return boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _keycheck_client(timeout_seconds: float) -> httpx.Client:
    from imagegen.keycheck import new_client

    return new_client(timeout_seconds)


@cache
def _secret_keys(name: str, max_age: int, region: str, endpoint: str | None) -> SecretDeploymentKeys:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from imagegen.adapters.deployment_keys import SecretDeploymentKeys

    # Cached per container: the Powertools provider's own cache (max_age) must outlive one invocation.
    return SecretDeploymentKeys(name, SecretsProvider(boto3_client=_secretsmanager(region, endpoint)), max_age=max_age)


def deployment_keys(settings: KeySettings) -> DeploymentKeys:
    """One Secrets Manager secret when PROVIDER_KEYS_SECRET is set; else the environment (local, tests)."""
    from imagegen.adapters.deployment_keys import EnvDeploymentKeys

    if settings.provider_keys_secret:
        return _secret_keys(
            settings.provider_keys_secret,
            settings.provider_keys_max_age_seconds,
            settings.aws_region,
            settings.aws_endpoint_url,
        )
    return EnvDeploymentKeys(settings)


# Key, health and schedule modules are imported where they are used: the Authorizer, Worker and MediaProxy cold
# starts should not pay for them.


def key_store(settings: KeySettings) -> KeyStore:
    from imagegen.adapters.key_store import KeyStore

    region, endpoint = settings.aws_region, settings.aws_endpoint_url
    return KeyStore(settings.table_name, _dynamodb(region, endpoint), _kms(region, endpoint), settings.keys_kms_key_id)


def key_resolver(settings: KeySettings) -> KeyResolver:
    """A fresh resolver: it caches decrypted user keys, so build one per invocation (or per job run)."""
    from imagegen.keys import KeyResolver

    store = key_store(settings)
    return KeyResolver(store, deployment_keys(settings), store)


def chain_keys(settings: KeySettings) -> ChainKeys:
    """The chain's key ports: pass the result as both key_resolver= and key_health= of providers.wiring.build_chain,
    and call its begin_invocation() once per worker invocation."""
    # Imported here: the chain (and httpx with it) is the worker's business, not every function's cold start.
    from imagegen.chain_keys import ChainKeys

    return ChainKeys(lambda: key_resolver(settings))


def health_service(settings: KeySettings, *, clock: Callable[[], datetime] = utcnow) -> HealthService:
    # Imported here: httpx is for the functions that check keys (Api, Scheduled), not every cold start.
    from imagegen.adapters.metrics import EmfMetrics
    from imagegen.key_health import HealthService
    from imagegen.keycheck import KeyChecker, KeyCheckUrls

    store = key_store(settings)
    urls = KeyCheckUrls(
        siliconflow=settings.siliconflow_base_url,
        huggingface=settings.hf_endpoint,
        horde=settings.horde_base_url,
        pollinations=settings.pollinations_gen_url,
        tavily=settings.tavily_base_url,
    )
    return HealthService(
        KeyChecker(_keycheck_client(settings.keycheck_timeout_seconds), urls),
        store,
        store,
        EmfMetrics(),
        interval_seconds=settings.keycheck_interval_seconds,
        hf_interval_seconds=settings.hf_whoami_interval_seconds,
        clock=clock,
    )


def _daily_quota(settings: ApiSettings) -> DailyQuota:
    return DailyQuota(DynamoQuotaStore(settings.table_name, dynamodb(settings)), settings.daily_image_quota)


def quota_refunds(settings: FunctionSettings) -> QuotaRefunds:
    return QuotaRefunds(DynamoQuotaStore(settings.table_name, dynamodb(settings)))


def _job_adapters(settings: JobSettings) -> tuple[JobStore, JobQueue, ImageStore]:
    region, endpoint = settings.aws_region, settings.aws_endpoint_url
    return (
        JobStore(settings.table_name, _dynamodb(region, endpoint), ttl_seconds=settings.job_ttl_days * 86400),
        JobQueue(settings.queue_url, _sqs(region, endpoint)),
        ImageStore(settings.bucket_name, _s3(region, endpoint)),
    )


@cache
def api_settings() -> ApiSettings:
    return ApiSettings.from_env(os.environ)


def _batch_store(settings: JobSettings | ScheduledSettings) -> BatchStore:
    client = _dynamodb(settings.aws_region, settings.aws_endpoint_url)
    return BatchStore(settings.table_name, client, ttl_seconds=settings.job_ttl_days * 86400)


def _webhook_queue(settings: WebhookSettings) -> JobQueue | None:
    if not settings.webhook_queue_url:
        return None
    return JobQueue(settings.webhook_queue_url, _sqs(settings.aws_region, settings.aws_endpoint_url))


def _terminal_listeners(
    settings: ApiSettings | WorkerSettings | ScheduledSettings, store: JobStore
) -> list[TerminalListener]:
    """What happens when a job ends, in the API (cancel), the worker and the sweeper alike: a failed or canceled
    job gives its quota unit back, its batch learns of it, and its webhook (and the batch's, for a batch's last
    item) is queued."""
    queue = _webhook_queue(settings)
    notifier = WebhookNotifier(queue) if queue is not None else None
    tracker = BatchTracker(_batch_store(settings), store, notifier.batch_ended if notifier else None)
    refunds = quota_refunds(settings)
    return [refunds, tracker, notifier] if notifier else [refunds, tracker]


@cache
def job_service() -> JobService:
    settings = api_settings()
    store, queue, images = _job_adapters(settings)
    return JobService(
        store,
        queue,
        images,
        content_url_seconds=settings.content_url_seconds,
        on_terminal=_terminal_listeners(settings, store),
        url_check=url_check(settings.media_allow_private_networks),
        quota=_daily_quota(settings),
    )


@cache
def webhook_secrets() -> WebhookSecrets:
    settings = api_settings()
    return WebhookSecrets(WebhookSecretStore(settings.table_name, dynamodb(settings)))


@cache
def webhook_delivery() -> WebhookDelivery:
    settings = WebhookSettings.from_env(os.environ)
    queue = _webhook_queue(settings)
    if queue is None:
        raise RuntimeError("WEBHOOK_QUEUE_URL is required by the webhook function")
    delays = (
        tuple(int(part) for part in settings.webhook_retry_delays.split(","))
        if settings.webhook_retry_delays
        else RETRY_DELAYS
    )
    # Imported here: httpx is only needed by the webhook function, and every import is cold-start time elsewhere.
    from imagegen.adapters.webhook_http import WebhookHttpSender

    return WebhookDelivery(
        WebhookSecrets(WebhookSecretStore(settings.table_name, dynamodb(settings))),
        WebhookHttpSender(allow_private=settings.media_allow_private_networks),
        queue,
        delays=delays,
    )


@cache
def batch_service() -> BatchService:
    settings = api_settings()
    store, queue, _ = _job_adapters(settings)
    return BatchService(store, _batch_store(settings), queue, job_service(), quota=_daily_quota(settings))


@cache
def user_key_service() -> UserKeyService:
    from imagegen.user_keys import UserKeyService

    settings = api_settings()
    return UserKeyService(key_store(settings), health_service(settings))


@cache
def chain_status() -> ChainStatus:
    from imagegen.adapters.breakers import DynamoBreakers
    from imagegen.chain_status import ChainStatus

    settings = api_settings()
    return ChainStatus(
        lambda: key_resolver(settings),
        DynamoBreakers(settings.table_name, dynamodb(settings), cooldown_seconds=settings.imagegen_breaker_cooldown_s),
        settings.provider_order,
    )


@cache
def token_store() -> TokenStore:
    settings = AuthorizerSettings.from_env(os.environ)
    return TokenStore(settings.table_name, dynamodb(settings))


def _fetcher(settings: FetchSettings) -> SafeFetcher:
    # Imported here: only the worker and the MediaProxy function fetch outside URLs (httpx is cold-start time).
    from imagegen.fetch import FetchPolicy, SafeFetcher

    policy = FetchPolicy.from_settings(
        settings.media_allowed_hosts,
        settings.media_allow_private_networks,
        settings.media_max_bytes,
        connect_timeout=settings.media_connect_timeout_seconds,
        read_timeout=settings.media_read_timeout_seconds,
        total_timeout=settings.media_total_timeout_seconds,
    )
    return SafeFetcher(policy)


@cache
def metrics() -> Metrics:
    """One EMF metrics set per container; the worker handler flushes it after each invocation."""
    from aws_lambda_powertools import Metrics

    return Metrics()


def generator(settings: WorkerSettings) -> Generator:
    from imagegen.providers.wiring import build_chain

    keys = worker_keys()
    return build_chain(
        os.environ,
        fetcher=_fetcher(settings),
        table_name=settings.table_name,
        dynamodb_client=_dynamodb(settings.aws_region, settings.aws_endpoint_url),
        metrics=metrics(),
        key_resolver=keys,
        key_health=keys,
    )


@cache
def worker_keys() -> ChainKeys:
    """The worker's key ports for the chain; the worker handler begins an invocation on it each time."""
    return chain_keys(WorkerSettings.from_env(os.environ))


def web_search(settings: WorkerSettings) -> WebSearch | None:
    """Tavily when a key is configured, else None (grounding then warns): never tavily-python's keyless mode."""
    key = settings.tavily_api_key.get_secret_value() if settings.tavily_api_key else ""
    if not key.strip():
        return None
    return TavilySearch(key.strip(), settings.tavily_base_url, timeout_seconds=settings.grounding_timeout_seconds)


@cache
def worker() -> Worker:
    settings = WorkerSettings.from_env(os.environ)
    store, queue, images = _job_adapters(settings)
    config = WorkerConfig(
        lease_seconds=settings.job_lease_seconds,
        deadline_seconds=settings.worker_deadline_seconds,
        max_receive_count=settings.job_max_receive_count,
    )
    return Worker(
        store,
        images,
        queue,
        generator(settings),
        config,
        on_terminal=_terminal_listeners(settings, store),
        grounder=partial(ground, search=web_search(settings)),
    )


@cache
def scheduled_run() -> ScheduledRun:
    from imagegen.adapters.metrics import EmfMetrics
    from imagegen.scheduled import ScheduledRun
    from imagegen.sweeper import SweepConfig, Sweeper

    settings = ScheduledSettings.from_env(os.environ)
    region, endpoint = settings.aws_region, settings.aws_endpoint_url
    store = JobStore(settings.table_name, _dynamodb(region, endpoint), ttl_seconds=settings.job_ttl_days * 86400)
    sweeper = Sweeper(
        store,
        JobQueue(settings.queue_url, _sqs(region, endpoint)),
        SweepConfig(
            max_receive_count=settings.job_max_receive_count,
            queued_requeue_seconds=settings.queued_requeue_seconds,
            max_jobs=settings.sweep_max_jobs,
            max_age_seconds=settings.job_max_age_seconds,
        ),
        on_terminal=_terminal_listeners(settings, store),
    )
    return ScheduledRun(
        sweeper,
        health_service(settings),
        deployment_keys(settings),
        key_store(settings),
        EmfMetrics(),
        max_key_checks=settings.keycheck_max_per_run,
        check_timeout_seconds=settings.keycheck_timeout_seconds,
    )


@cache
def media_proxy() -> MediaProxy:
    settings = MediaProxySettings.from_env(os.environ)
    return MediaProxy(
        _fetcher(settings),
        MediaCache(settings.bucket_name, _s3(settings.aws_region, settings.aws_endpoint_url)),
        inline_max_bytes=settings.media_inline_max_bytes,
        presign_ttl_seconds=settings.media_presign_ttl_seconds,
    )


def reset() -> None:
    """Forget every cached setting and client (the environment changed: tests, the local stack)."""
    for cached in (
        _dynamodb,
        _s3,
        _sqs,
        _kms,
        _secretsmanager,
        _keycheck_client,
        _secret_keys,
        api_settings,
        job_service,
        token_store,
        worker,
        user_key_service,
        chain_status,
        scheduled_run,
        batch_service,
        webhook_secrets,
        webhook_delivery,
        media_proxy,
        metrics,
        worker_keys,
    ):
        cached.cache_clear()
