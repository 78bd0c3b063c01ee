"""The MediaProxy handler in-process on API Gateway events, against the storage double and a real moto S3 server."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from imagegen import wiring
from imagegen.adapters.media_cache import MediaCache
from imagegen.errors import LinkExpired, UpstreamError
from imagegen.media import CachedMedia, MediaProxy, cache_key
from imagegen.media.fetch import FetchPolicy, SafeFetcher

from tests.conftest import ROOT, FakeLambdaContext, load_function
from tests.doubles.storage import Kind, StorageDouble, generated_sha256

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.fixtures"]

EVENTS = ROOT / "events"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
MiB = 1024 * 1024


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    base64: bool

    @property
    def error(self) -> dict[str, Any]:
        return dict(json.loads(self.body)["error"])


class Proxy:
    """Invokes functions/media_proxy/app.py the way API Gateway would, with the environment the test sets."""

    def __init__(self, module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
        self._module = module
        self._monkeypatch = monkeypatch

    def configure(self, **env: str) -> None:
        for name, value in env.items():
            self._monkeypatch.setenv(name, value)
        wiring.reset()  # settings are read once per container: this is a new container

    def get(self, url: str | None, *, event_file: str = "media_proxy_get.json") -> Answer:
        event = json.loads((EVENTS / event_file).read_text())
        if url is not None:
            event["queryStringParameters"] = {"url": url}
            event["multiValueQueryStringParameters"] = {"url": [url]}
        result = self._module.lambda_handler(event, FakeLambdaContext("MediaProxyFunction"))
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers[key.lower()] = values[-1]
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        return Answer(result["statusCode"], headers, body, bool(result.get("isBase64Encoded")))


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch, media_bucket: str) -> Proxy:
    for name in ("MEDIA_ALLOWED_HOSTS", "MEDIA_MAX_BYTES", "MEDIA_INLINE_MAX_BYTES", "MEDIA_READ_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    handler = Proxy(load_function("media_proxy"), monkeypatch)
    handler.configure(MEDIA_ALLOW_PRIVATE_NETWORKS="true", POWERTOOLS_SERVICE_NAME="imagegen-media-proxy")
    return handler


def s3_is_empty(s3: S3Client, bucket: str) -> bool:
    objects = s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return objects == 0 and not uploads


# --- signed links fetched as given ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["azure", "s3", "oss"])
def test_given_a_signed_link_when_proxied_then_body_inline_and_upstream_saw_no_auth_and_the_exact_query(
    proxy: Proxy, storage: StorageDouble, kind: Kind
) -> None:
    # Given a signed link to a small image whose name carries escaped slashes, and a caller whose event has
    # Authorization and Cookie headers
    storage.put("outputs%2F2026%2Fcat.png", PNG, content_type="image/png")
    url = storage.mint_url(kind, "outputs%2F2026%2Fcat.png")
    # When it is proxied
    answer = proxy.get(url)
    # Then the image comes back inline, base64 for API Gateway
    assert (answer.status, answer.headers["content-type"], answer.body, answer.base64) == (200, "image/png", PNG, True)
    # And the storage saw one request: the path and query byte for byte, and no caller header nor any auth
    (request,) = storage.requests
    assert request.raw_target == url.removeprefix(storage.base_url)
    assert request.status == 200
    assert set(request.headers) == {"host", "accept", "accept-encoding", "connection", "user-agent"}


def test_given_a_sas_link_when_requested_with_a_bearer_key_then_the_double_refuses_like_azure(
    storage: StorageDouble,
) -> None:
    # Given a valid SAS link (the double is as strict as Azure, which is what makes the previous test meaningful)
    storage.put("cat.png", PNG)
    url = storage.mint_url("azure", "cat.png")
    # When it is requested with a provider key attached
    refused = httpx.get(url, headers={"Authorization": "Bearer sk-provider-key"})
    served = httpx.get(url)
    # Then Azure's answer: 403 AuthenticationFailed, Bearer not supported; without the header it is served
    assert refused.status_code == 403
    assert refused.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert (
        "<AuthenticationErrorDetail>Authentication scheme Bearer is not supported in this version."
        "</AuthenticationErrorDetail>" in refused.text
    )
    assert (served.status_code, served.content) == (200, PNG)


def test_given_a_tampered_sas_link_when_proxied_then_502_with_the_storage_status_and_code(
    proxy: Proxy, storage: StorageDouble
) -> None:
    storage.put("cat.png", PNG)
    url = storage.mint_url("azure", "cat.png").replace("sp=r", "sp=rw")
    answer = proxy.get(url)
    assert answer.status == 502
    assert answer.error["code"] == "upstream_error"
    assert answer.error["details"] == {
        "host": "127.0.0.1",
        "upstream_status": 403,
        "upstream_code": "AuthenticationFailed",
    }


# --- expiry --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["azure", "s3", "oss"])
def test_given_an_expired_signed_link_when_proxied_then_410_regenerate_and_no_upstream_call(
    proxy: Proxy, storage: StorageDouble, kind: Kind
) -> None:
    storage.put("cat.png", PNG)
    url = storage.mint_url(kind, "cat.png", ttl_seconds=60, issued_seconds_ago=3600)
    answer = proxy.get(url)
    assert answer.status == 410
    assert (answer.error["code"], answer.error["hint"]) == ("expired", "regenerate the image")
    assert storage.request_count == 0


@pytest.mark.parametrize("kind", ["azure", "s3", "oss"])
def test_given_the_storage_says_the_signature_is_out_of_its_time_frame_when_proxied_then_410(
    proxy: Proxy, storage: StorageDouble, kind: Kind
) -> None:
    # Given a link that looks valid here but that the storage's clock has already passed
    storage.put("cat.png", PNG)
    url = storage.mint_url(kind, "cat.png", ttl_seconds=600)
    storage.advance_clock(3600)
    # When it is proxied
    answer = proxy.get(url)
    # Then the storage's 403 becomes the same 410
    assert answer.status == 410
    assert answer.error == {
        "code": "expired",
        "message": "the signed link has expired (the storage says so)",
        "hint": "regenerate the image",
        "details": {"host": "127.0.0.1", "upstream_status": 403},
    }
    assert [r.status for r in storage.requests] == [403]


# --- refusals ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
    ],
)
def test_given_an_allowed_link_redirecting_to_the_metadata_address_when_proxied_then_400_and_not_followed(
    proxy: Proxy, storage: StorageDouble, location: str
) -> None:
    storage.put_redirect("cat.png", location)
    answer = proxy.get(storage.url("cat.png"))
    assert answer.status == 400
    assert answer.error["code"] == "url_not_allowed"
    assert "a cloud metadata address" in answer.error["message"]
    assert storage.request_count == 1


def test_given_a_chain_of_four_redirects_when_proxied_then_502_too_many_redirects(
    proxy: Proxy, storage: StorageDouble
) -> None:
    for hop in range(4):
        storage.put_redirect(f"r{hop}.png", f"/public/r{hop + 1}.png")
    storage.put("r4.png", PNG)
    answer = proxy.get(storage.url("r0.png"))
    assert answer.status == 502
    assert answer.error["code"] == "too_many_redirects"
    assert storage.request_count == 4


def test_given_a_chain_of_three_redirects_when_proxied_then_the_image_is_served(
    proxy: Proxy, storage: StorageDouble
) -> None:
    for hop in range(3):
        storage.put_redirect(f"r{hop}.png", storage.url(f"r{hop + 1}.png"), status=301 + hop)
    storage.put("r3.png", PNG)
    answer = proxy.get(storage.url("r0.png"))
    assert (answer.status, answer.body) == (200, PNG)
    assert [r.name for r in storage.requests] == ["r0.png", "r1.png", "r2.png", "r3.png"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("https://[::ffff:169.254.169.254]/latest/meta-data/", "a cloud metadata address"),
        ("https://2852039166/latest/meta-data/", "a cloud metadata address"),
        ("https://0x7f000001/", "a loopback address"),
        ("https://0177.0.0.1/", "a loopback address"),
        ("https://localhost/cat.png", "loopback name"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme 'gopher' is not allowed"),
    ],
)
def test_given_strict_settings_when_an_ssrf_url_is_proxied_then_400_url_not_allowed(
    proxy: Proxy, url: str, reason: str
) -> None:
    proxy.configure(MEDIA_ALLOW_PRIVATE_NETWORKS="false")
    answer = proxy.get(url)
    assert answer.status == 400
    assert answer.error["code"] == "url_not_allowed"
    assert reason in answer.error["message"]


def test_given_strict_settings_when_the_double_on_loopback_is_proxied_then_400_and_no_request(
    proxy: Proxy, storage: StorageDouble
) -> None:
    proxy.configure(MEDIA_ALLOW_PRIVATE_NETWORKS="false")
    storage.put("cat.png", PNG)
    answer = proxy.get(storage.mint_url("azure", "cat.png"))
    assert answer.status == 400
    assert answer.error["message"] == "URL not allowed: plain http is not allowed; only https"
    assert storage.request_count == 0


@pytest.mark.parametrize(
    ("event_file", "status", "code"),
    [
        ("media_proxy_metadata.json", 400, "url_not_allowed"),
        ("media_proxy_expired.json", 410, "expired"),
        ("media_proxy_missing_url.json", 422, "validation_error"),
    ],
)
def test_given_a_sample_event_as_is_when_invoked_then_its_documented_answer_without_network(
    proxy: Proxy, event_file: str, status: int, code: str
) -> None:
    # Given strict settings, as deployed; When the events/ file is invoked unchanged
    proxy.configure(MEDIA_ALLOW_PRIVATE_NETWORKS="false")
    answer = proxy.get(None, event_file=event_file)
    # Then the answer each sample exists to show
    assert (answer.status, answer.error["code"]) == (status, code)


def test_given_an_event_without_url_when_invoked_then_422_naming_url(proxy: Proxy) -> None:
    answer = proxy.get(None, event_file="media_proxy_missing_url.json")
    assert answer.status == 422
    assert answer.error["code"] == "validation_error"
    assert answer.error["message"] == "url: Field required"
    assert answer.error["details"] == [{"field": "url", "message": "Field required"}]


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/xml", "image/svg+xml"])
def test_given_a_body_that_is_not_an_image_when_proxied_then_502_unsupported_media_type(
    proxy: Proxy, storage: StorageDouble, content_type: str
) -> None:
    storage.put("login.html", b"<html>sign in</html>", content_type=content_type)
    answer = proxy.get(storage.url("login.html"))
    assert answer.status == 502
    assert answer.error["code"] == "unsupported_media_type"
    assert answer.error["details"]["content_type"] == content_type.split(";")[0]


@pytest.mark.parametrize("chunked", [True, False])
def test_given_a_50_mb_body_over_the_limit_when_proxied_then_413_and_the_body_was_cut_off_not_buffered(
    proxy: Proxy, storage: StorageDouble, s3_client: S3Client, media_bucket: str, chunked: bool
) -> None:
    # Given a 6 MiB limit and a 50 MB body, with or without a declared length
    proxy.configure(MEDIA_MAX_BYTES=str(6 * MiB))
    storage.put("huge.png", size=50 * 1000 * 1000, chunked=chunked)
    # When it is proxied
    answer = proxy.get(storage.url("huge.png"))
    # Then 413, the connection was dropped long before the end, and nothing is left in S3
    assert answer.status == 413
    assert answer.error == {
        "code": "payload_too_large",
        "message": f"the media is larger than the {6 * MiB} byte limit",
        "details": {"max_bytes": 6 * MiB},
    }
    assert storage.wait_idle()
    (request,) = storage.requests
    assert request.client_aborted
    assert request.body_bytes_sent < 25 * MiB
    assert s3_is_empty(s3_client, media_bucket)


# --- large bodies through S3 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False])
def test_given_a_body_above_the_inline_limit_when_proxied_then_302_to_an_s3_copy_and_later_served_from_s3(
    proxy: Proxy, storage: StorageDouble, s3_client: S3Client, media_bucket: str, chunked: bool
) -> None:
    # Given a 12 MiB image behind a signed link
    size = 12 * MiB
    storage.put("big.png", size=size, chunked=chunked, content_type="image/png")
    url = storage.mint_url("azure", "big.png")
    # When it is proxied
    first = proxy.get(url)
    # Then a 302 to a presigned URL of the copy, which serves exactly the upstream bytes
    assert first.status == 302
    assert first.headers["cache-control"] == "no-store"
    copy_response = httpx.get(first.headers["location"])
    assert copy_response.status_code == 200
    assert copy_response.headers["content-type"] == "image/png"
    assert hashlib.sha256(copy_response.content).hexdigest() == generated_sha256(size)
    assert s3_client.head_object(Bucket=media_bucket, Key=cache_key(url))["ContentLength"] == size
    # And a second request for the same link is answered from S3 without calling the storage again
    second = proxy.get(url)
    assert second.status == 302
    assert storage.request_count == 1


def test_given_a_copied_link_that_has_since_expired_when_proxied_again_then_still_served_from_s3(
    storage: StorageDouble, s3_client: S3Client, media_bucket: str
) -> None:
    # Given a large image copied to S3 while its link was valid
    storage.put("big.png", size=6 * MiB)
    url = storage.mint_url("s3", "big.png", ttl_seconds=1800)
    local = FetchPolicy(allow_private_networks=True)
    cache = MediaCache(media_bucket, s3_client)
    first = MediaProxy(SafeFetcher(local), cache).get(url)
    # When it is asked for two hours later, after the link died
    later = SafeFetcher(local, clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    again = MediaProxy(later, cache).get(url)
    # Then it is served from the copy, with no upstream call
    assert isinstance(first, CachedMedia) and not first.from_cache
    assert isinstance(again, CachedMedia) and again.from_cache
    assert storage.request_count == 1
    # While a link that was never copied answers 410 as before
    storage.put("other.png", size=6 * MiB)
    with pytest.raises(LinkExpired):
        MediaProxy(later, cache).get(storage.mint_url("s3", "other.png", ttl_seconds=1800))
    assert storage.request_count == 1


def test_given_a_body_exactly_at_the_inline_limit_when_proxied_then_inline(
    proxy: Proxy, storage: StorageDouble, s3_client: S3Client, media_bucket: str
) -> None:
    proxy.configure(MEDIA_INLINE_MAX_BYTES=str(1 * MiB))
    storage.put("edge.png", size=1 * MiB, chunked=True)
    answer = proxy.get(storage.url("edge.png"))
    assert (answer.status, len(answer.body)) == (200, 1 * MiB)
    assert s3_is_empty(s3_client, media_bucket)


# --- upstream failures ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500, 503])
def test_given_the_upstream_fails_when_proxied_then_502_with_the_upstream_status(
    proxy: Proxy, storage: StorageDouble, status: int
) -> None:
    storage.put("cat.png", b"<Error><Code>InternalError</Code></Error>", status=status, content_type="application/xml")
    answer = proxy.get(storage.url("cat.png"))
    assert answer.status == 502
    assert answer.error["code"] == "upstream_error"
    assert answer.error["details"] == {"host": "127.0.0.1", "upstream_status": status, "upstream_code": "InternalError"}


def test_given_the_upstream_does_not_answer_in_time_when_proxied_then_504(proxy: Proxy, storage: StorageDouble) -> None:
    proxy.configure(MEDIA_READ_TIMEOUT_SECONDS="0.3")
    storage.put("slow.png", PNG, delay_seconds=1.5)
    answer = proxy.get(storage.url("slow.png"))
    assert answer.status == 504
    assert answer.error["code"] == "upstream_timeout"


def test_given_nothing_listens_on_the_port_when_proxied_then_502(proxy: Proxy, storage: StorageDouble) -> None:
    url = storage.url("cat.png")
    storage.stop()
    answer = proxy.get(url)
    assert answer.status == 502
    assert answer.error["details"] == {"host": "127.0.0.1", "reason": "ConnectError"}


# --- pinning: the connection goes to the checked address, TLS checks the name ---------------------------------------

TLS_NAME = "devstoreaccount1.blob.core.windows.net"


@pytest.fixture
def tls_storage() -> Iterator[Callable[[], StorageDouble]]:
    doubles: list[StorageDouble] = []

    def start() -> StorageDouble:
        doubles.append(StorageDouble(tls_hostnames=(TLS_NAME,)).start())
        return doubles[-1]

    yield start
    for double in doubles:
        double.stop()


def test_given_a_name_resolved_once_when_fetched_over_tls_then_connection_pinned_with_name_sni_host_and_cert(
    tls_storage: Callable[[], StorageDouble],
) -> None:
    # Given an allowed name that resolves to the double (a resolver that would rebind on a second lookup)
    storage = tls_storage()
    storage.put("cat.png", PNG)
    lookups: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["169.254.169.254"]

    fetcher = SafeFetcher(
        FetchPolicy(allow_private_networks=True), resolver=rebinding, ssl_context=storage.client_ssl_context
    )
    # When a signed https link on that name is fetched
    fetched = fetcher.fetch_bytes(storage.mint_url("azure", "cat.png", host=TLS_NAME))
    # Then one lookup, and the request reached the checked address with the name in SNI and Host
    assert fetched.data == PNG
    assert lookups == [TLS_NAME]
    (request,) = storage.requests
    assert (request.sni, request.headers["host"]) == (TLS_NAME, f"{TLS_NAME}:{storage.port}")


def test_given_a_name_the_certificate_does_not_cover_when_fetched_over_tls_then_502_and_no_request(
    tls_storage: Callable[[], StorageDouble],
) -> None:
    storage = tls_storage()
    storage.put("cat.png", PNG)
    fetcher = SafeFetcher(
        FetchPolicy(allow_private_networks=True),
        resolver=lambda host, port: ["127.0.0.1"],
        ssl_context=storage.client_ssl_context,
    )
    with pytest.raises(UpstreamError) as caught:
        fetcher.fetch_bytes(storage.mint_url("azure", "cat.png", host="other.blob.core.windows.net"))
    assert (caught.value.status, caught.value.details) == (
        502,
        {"host": "other.blob.core.windows.net", "reason": "ConnectError"},
    )
    assert storage.request_count == 0


def test_given_the_media_bucket_is_missing_when_a_large_body_is_proxied_then_503_and_the_upstream_was_read_once(
    proxy: Proxy, storage: StorageDouble
) -> None:
    proxy.configure(BUCKET_NAME="imagegen-media-does-not-exist")
    storage.put("big.png", size=12 * MiB)
    answer = proxy.get(storage.url("big.png"))
    assert answer.status == 503
    assert answer.error == {"code": "service_unavailable", "message": "the media cache is unavailable"}
    assert storage.request_count == 1
