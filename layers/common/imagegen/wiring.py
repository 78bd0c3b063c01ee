"""Adapters and services built once per container from the function's settings; tests call reset()."""

from __future__ import annotations

import os
from functools import cache, partial
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from imagegen.adapters.batch_store import BatchStore
from imagegen.adapters.image_store import ImageStore
from imagegen.adapters.job_queue import JobQueue
from imagegen.adapters.job_store import JobStore
from imagegen.adapters.media_cache import MediaCache
from imagegen.adapters.tavily_search import TavilySearch
from imagegen.adapters.tokens import TokenStore
from imagegen.adapters.webhook_secrets import WebhookSecretStore
from imagegen.adapters.webhook_url import url_check
from imagegen.batches import BatchService, BatchTracker
from imagegen.generation import Generator
from imagegen.grounding import WebSearch, ground
from imagegen.jobs import JobService, TerminalListener
from imagegen.media import MediaProxy
from imagegen.settings import (
    ApiSettings,
    AuthorizerSettings,
    FetchSettings,
    FunctionSettings,
    JobSettings,
    MediaProxySettings,
    WebhookSettings,
    WorkerSettings,
)
from imagegen.webhooks import RETRY_DELAYS, WebhookDelivery, WebhookNotifier, WebhookSecrets
from imagegen.work import Worker, WorkerConfig

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

    from imagegen.fetch import SafeFetcher

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


def _batch_store(settings: JobSettings) -> BatchStore:
    client = _dynamodb(settings.aws_region, settings.aws_endpoint_url)
    return BatchStore(settings.table_name, client, ttl_seconds=settings.job_ttl_days * 86400)


def _webhook_queue(settings: WebhookSettings) -> JobQueue | None:
    if not settings.webhook_queue_url:
        return None
    return JobQueue(settings.webhook_queue_url, _sqs(settings.aws_region, settings.aws_endpoint_url))


def _terminal_listeners(settings: ApiSettings | WorkerSettings, store: JobStore) -> list[TerminalListener]:
    """What happens when a job ends, in the API (cancel) and in the worker alike: its batch learns of it, and
    its webhook (and the batch's, for a batch's last item) is queued."""
    queue = _webhook_queue(settings)
    notifier = WebhookNotifier(queue) if queue is not None else None
    tracker = BatchTracker(_batch_store(settings), store, notifier.batch_ended if notifier else None)
    return [tracker, notifier] if notifier else [tracker]


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
    return BatchService(store, _batch_store(settings), queue, job_service())


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

    return build_chain(
        os.environ,
        fetcher=_fetcher(settings),
        table_name=settings.table_name,
        dynamodb_client=_dynamodb(settings.aws_region, settings.aws_endpoint_url),
        metrics=metrics(),
    )


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
        api_settings,
        job_service,
        batch_service,
        webhook_secrets,
        webhook_delivery,
        token_store,
        worker,
        media_proxy,
        metrics,
    ):
        cached.cache_clear()
