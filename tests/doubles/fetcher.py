"""A no-auth result fetcher for tests until imagegen.fetch.SafeFetcher is on main: a plain GET, nothing added."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from imagegen.errors import ImagegenError, UpstreamError, UpstreamTimeout


class LinkExpired(ImagegenError):
    status = 410
    code = "link_expired"


@dataclass(frozen=True)
class Fetched:
    content_type: str | None
    data: bytes
    url: str


class PlainFetcher:
    def __init__(self, timeout: float = 2.0) -> None:
        # Its own client: no provider auth can ride along on a signed URL.
        self.client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)

    def fetch_bytes(self, url: str) -> Fetched:
        try:
            response = self.client.get(url)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("result download timed out") from exc
        except httpx.TransportError as exc:
            raise UpstreamError("result download failed") from exc
        if response.status_code == 403:
            raise LinkExpired("the signed link was refused or has expired")
        if response.status_code != 200:
            raise UpstreamError(f"result download answered {response.status_code}")
        return Fetched(response.headers.get("content-type"), response.content, url)

    def close(self) -> None:
        self.client.close()
