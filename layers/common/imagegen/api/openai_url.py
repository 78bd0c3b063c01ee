"""The OpenAi function: POST /v1/images/generations on a Lambda function URL, which can wait for minutes.

A function URL has no authorizer in front of it: the function checks the same bearer tokens the API's authorizer
does (the same token store), and caches what it resolved as API Gateway caches the authorizer's answer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools.event_handler import Response
from pydantic import Field

from imagegen import wiring
from imagegen.api.openai import PATH, error_response, generations, method_not_allowed, unauthorized
from imagegen.auth import bearer_token
from imagegen.openai_images import OpenAiError
from imagegen.settings import FunctionSettings

logger = logging.getLogger(__name__)


class OpenAiUrlSettings(FunctionSettings):
    # How long one request waits for its images: a 60 s generation, plus queueing and a cold worker, plus margin.
    # Below the function's Timeout (template.yaml), so the client gets our 504 with the job ids, never Lambda's.
    openai_wait_seconds: int = Field(120, ge=1, le=880)
    # A `url` answer works without our token for at least this long.
    openai_url_expires_seconds: int = Field(3600, ge=3600, le=43_200)
    # Like the API's authorizer (ReauthorizeEvery: 300): a revoked token keeps working this long in a warm container.
    openai_token_cache_seconds: int = Field(300, ge=0, le=3600)


class Tokens(Protocol):
    def resolve(self, token: str) -> str | None: ...


class TokenCache:
    """Resolved tokens per container, kept by SHA-256 (never the token), for `ttl` seconds; refusals are not kept."""

    MAX_ENTRIES = 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def user(self, tokens: Tokens, scope: str, token: str, ttl: float) -> str | None:
        key = (scope, hashlib.sha256(token.encode()).hexdigest())
        now = self._clock()
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
        user = tokens.resolve(token)
        if user is not None and ttl > 0:
            with self._lock:
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = (user, now + ttl)
        return user


def settings() -> OpenAiUrlSettings:
    return OpenAiUrlSettings.from_env(os.environ)


_tokens = TokenCache()


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """Answers a function URL event (payload format 2.0). Not a Powertools resolver: those keep the current event on
    their class, which a generation that waits for minutes must not share with other invocations in one process (the
    local stack runs every function in one)."""
    try:
        response = _route(event)
    except Exception:
        logger.exception("unhandled error")
        response = error_response(OpenAiError(500, "something went wrong on our side", type_="server_error"))
    headers = {name: str(value) for name, value in response.headers.items()}
    body = response.body if isinstance(response.body, str) else ""
    return {"statusCode": response.status_code, "headers": headers, "body": body, "isBase64Encoded": False}


def _route(event: dict[str, Any]) -> Response[Any]:
    http = (event.get("requestContext") or {}).get("http") or {}
    method, path = str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path") or "")
    if path != PATH:
        return error_response(OpenAiError(404, f"no route {method} {path}: this URL serves POST {PATH}"))
    if method != "POST":
        return method_not_allowed()
    headers = event.get("headers") or {}
    config = settings()
    token = bearer_token(headers)
    # The table name scopes the cache: one process may serve more than one stack (the local stack in tests).
    ttl = config.openai_token_cache_seconds
    user = _tokens.user(wiring.token_store(), config.table_name, token, ttl) if token else None
    if user is None:
        return unauthorized()
    return generations(
        user,
        event,
        headers,
        wait_seconds=config.openai_wait_seconds,
        url_seconds=config.openai_url_expires_seconds,
    )
