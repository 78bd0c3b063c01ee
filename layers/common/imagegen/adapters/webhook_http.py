"""Webhook POSTs to a receiver: to the checked address itself (pinned), explicit timeouts, no redirects followed."""

from __future__ import annotations

import ssl
import time

import certifi
import httpx

from imagegen.adapters.webhook_url import HostUnresolvable, Resolver, check_target, system_resolver
from imagegen.media.deadline import deadline_client
from imagegen.webhooks.delivery import Answer, DeliveryFailed


class WebhookHttpSender:
    """POSTs to the checked address itself, so a DNS answer that changes after the check cannot redirect it."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: httpx.Timeout | None = None,
        total_seconds: float = 20.0,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        # Standard Webhooks suggests 15-30 s for a receiver to answer; connecting gets far less.
        self._timeout = timeout or httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
        # One attempt's whole budget (connect, TLS, sending, the answer's headers): a receiver that drips its answer
        # cannot hold the function longer, whatever the per-operation timeouts allow.
        self._total = total_seconds
        self._ssl = ssl.create_default_context(cafile=certifi.where())

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            target = check_target(url, allow_private=self._allow_private, resolver=self._resolver)
        except HostUnresolvable:
            raise DeliveryFailed("the receiver's host does not resolve") from None
        extensions: dict[str, object] = {"target": target.target.encode("ascii")}
        if target.literal is None:
            extensions["sni_hostname"] = target.host
        last: str = "no address"
        deadline = time.monotonic() + self._total
        for address in target.addresses:
            # No proxy from the environment (it would undo the pinning); no redirects are followed.
            with deadline_client(self._ssl, deadline) as client:
                request = client.build_request(
                    "POST",
                    httpx.URL(scheme=target.scheme, host=address, port=target.port, path="/"),
                    content=body,
                    headers={**headers, "host": target.host_header},
                    timeout=self._timeout,
                    extensions=extensions,
                )
                try:
                    # Streamed and closed unread: only the status matters, and a receiver's body could be huge.
                    response = client.send(request, stream=True)
                    response.close()
                except httpx.ConnectError:
                    last = f"could not connect to {target.host}"
                    continue  # the next checked address, if any
                except httpx.TimeoutException:
                    raise DeliveryFailed(f"{target.host} did not answer in time") from None
                except httpx.HTTPError as error:
                    raise DeliveryFailed(f"{target.host}: {type(error).__name__}") from None
                return Answer(
                    status=response.status_code, retry_after=_retry_after(response.headers.get("retry-after"))
                )
        raise DeliveryFailed(last)


def _retry_after(value: str | None) -> int | None:
    # Only the seconds form; an HTTP date is rare from webhook receivers and the schedule's delay still applies.
    return int(value) if value and value.strip().isdigit() else None
