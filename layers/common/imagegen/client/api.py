"""The public HTTP API of an imagegen stack, as the client uses it: JSON in, JSON out, errors as ApiError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from imagegen import __version__

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = f"imagegen-cli/{__version__}"


class ApiError(Exception):
    """The API answered with an error: {"error": {"code", "message", "hint"?}} (or a gateway's own shape)."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint

    @property
    def transient(self) -> bool:
        # Worth polling again: the gateway or a function hiccuped, or we were told to slow down.
        return self.status in (429, 502, 503, 504)

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            hint = error.get("hint")
            return cls(
                response.status_code,
                str(error.get("code") or "error"),
                str(error.get("message") or response.reason_phrase),
                str(hint) if hint else None,
            )
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            # API Gateway's own answers ({"message": "Forbidden"}) when a route does not exist on a stage.
            return cls(response.status_code, "gateway", body["message"])
        return cls(response.status_code, "http_error", f"HTTP {response.status_code} {response.reason_phrase}")


class NetworkError(Exception):
    """The API could not be reached or did not answer in time."""


@dataclass(frozen=True)
class Image:
    content: bytes
    content_type: str


class ApiClient:
    """One stack, one token. The token goes only to the API; presigned image URLs are fetched without it."""

    def __init__(self, url: str, token: str, *, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.url = url
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # base_url keeps a stage path (…/prod): httpx appends each request's path to it.
        self._http = httpx.Client(base_url=url + "/", headers=headers, timeout=timeout, follow_redirects=False)
        # Presigned URLs break when auth is added, and must never see our token: a separate client without it.
        self._plain = httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Images and videos: a job's routes are its kind's (vid_… ids are video jobs, at /v1/videos)

    def create_image(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._json("POST", "v1/images", json=body, headers={"Idempotency-Key": idempotency_key})

    def create_video(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._json("POST", "v1/videos", json=body, headers={"Idempotency-Key": idempotency_key})

    def get_image(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", _job_path(job_id))

    def list_images(self, limit: int) -> dict[str, Any]:
        return self._json("GET", "v1/images", params={"limit": limit})

    def list_videos(self, limit: int) -> dict[str, Any]:
        return self._json("GET", "v1/videos", params={"limit": limit})

    def cancel_image(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"{_job_path(job_id)}/cancel")

    def download(self, job_id: str) -> Image:
        """The job's image (or video), from the presigned URL its /content names."""
        # Asked as JSON ({"url", "expires_in"}); a stack that only redirects answers 302 with the URL instead.
        response = self._send("GET", f"{_job_path(job_id)}/content")
        location = response.headers.get("location") if response.is_redirect else _json_url(response)
        if not location:
            raise ApiError(response.status_code, "unexpected_answer", "the API gave no URL for the image")
        target = response.url.join(location)
        try:
            image = self._plain.get(target)
        except httpx.TransportError as exc:
            raise NetworkError(f"cannot download the image from {target.host}: {_reason(exc)}") from exc
        if not image.is_success:
            raise ApiError(
                image.status_code, "download_failed", f"the image's storage answered HTTP {image.status_code}"
            )
        return Image(image.content, image.headers.get("content-type", "application/octet-stream").split(";")[0])

    # Batches

    def create_batch(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._json("POST", "v1/batches", json=body, headers={"Idempotency-Key": idempotency_key})

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"v1/batches/{_segment(batch_id)}")

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("POST", f"v1/batches/{_segment(batch_id)}/cancel")

    # Keys and providers

    def put_key(self, provider: str, api_key: str) -> dict[str, Any]:
        return self._json("PUT", f"v1/keys/{_segment(provider)}", json={"api_key": api_key})

    def list_keys(self) -> dict[str, Any]:
        return self._json("GET", "v1/keys")

    def delete_key(self, provider: str) -> None:
        self._send("DELETE", f"v1/keys/{_segment(provider)}")

    def providers(self) -> dict[str, Any]:
        return self._json("GET", "v1/providers")

    # Plumbing

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "not_json", "the API answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(response.status_code, "not_json", "the API answered JSON that is not an object")
        return body

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise NetworkError(f"{self.url} did not answer in time ({exc.__class__.__name__})") from exc
        except httpx.TransportError as exc:
            raise NetworkError(f"cannot reach {self.url}: {_reason(exc)}") from exc
        if response.is_error:
            raise ApiError.of(response)
        return response


def _json_url(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    url = body.get("url") if isinstance(body, dict) else None
    return url if isinstance(url, str) else None


def _job_path(job_id: str) -> str:
    kind = "videos" if job_id.startswith("vid_") else "images"
    return f"v1/{kind}/{_segment(job_id)}"


def _segment(value: str) -> str:
    # Ids and provider names come from the command line: a slash or `..` must not change which route is called.
    return quote(value, safe="")


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    if "]" in text:  # "[Errno 111] Connection refused" → "Connection refused"
        text = text.split("]", 1)[1].strip()
    return (text or exc.__class__.__name__)[:200]
