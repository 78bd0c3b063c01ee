"""A total deadline for an httpx client: every socket operation (connect, TLS, writing the request, each read of
the headers and body) may use only what is left of it.

httpx's timeouts are per operation: a server that sends one header byte every few seconds never trips a read
timeout, and would hold a fetch for as long as it likes. Here each operation's timeout is the smaller of its own
and the time left, and an operation that starts after the deadline fails at once with httpcore's own timeout
error, which httpx reports as its usual TimeoutException.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


def _left(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise error("the total deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own synchronous sockets, each operation bounded by what is left until `deadline` (monotonic)."""

    def __init__(self, deadline: float, inner: httpcore.NetworkBackend | None = None) -> None:
        self._deadline = deadline
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.connect_tcp(host, port, left, local_address, socket_options), self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used here")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_client(ssl_context: ssl.SSLContext, deadline: float) -> httpx.Client:
    """An httpx client whose every request ends by `deadline` (time.monotonic()); no proxy from the environment (it
    would undo address pinning), no ~/.netrc credentials, no redirects followed."""
    transport = httpx.HTTPTransport(verify=ssl_context, trust_env=False)
    # httpx's transport takes no network backend; its connection pool (httpcore's) does. httpx is pinned below 0.29,
    # and tests/integration/test_deadlines.py fails if this ever stops taking effect.
    transport._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=DeadlineBackend(deadline))
    return httpx.Client(transport=transport, trust_env=False, follow_redirects=False)
