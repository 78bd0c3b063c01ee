"""Unit tests of the safe fetcher: URL and address checks, expiry, key scoping, response handling; no network."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from imagegen.errors import (
    LinkExpired,
    PayloadTooLarge,
    TooManyRedirects,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamTimeout,
    UrlNotAllowed,
)
from imagegen.media.fetch import (
    DEFAULT_ALLOWED_HOST_SUFFIXES,
    FetchPolicy,
    SafeFetcher,
    auth_headers_for,
    check_not_expired,
    check_url,
    link_expiry,
    parse_url,
    says_signature_expired,
)

STRICT = FetchPolicy()
LOCAL = FetchPolicy(allow_private_networks=True)
BLOB = "https://acct.blob.core.windows.net/media/cat.png"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolver must not be called for {host}")


def resolving_to(*addresses: str) -> Callable[[str, int], Sequence[str]]:
    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


# --- refusals that need no DNS -----------------------------------------------------------------------------------

SSRF_URLS = [
    ("https://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
    ("https://[::ffff:169.254.169.254]/latest/meta-data/", "a cloud metadata address (it embeds 169.254.169.254)"),
    ("https://[::ffff:a9fe:a9fe]/", "a cloud metadata address (it embeds 169.254.169.254)"),
    ("https://2852039166/latest/meta-data/", "a cloud metadata address"),
    ("https://0xa9fea9fe/", "a cloud metadata address"),
    ("https://169.254.43518/", "a cloud metadata address"),
    ("https://[fd00:ec2::254]/", "a cloud metadata address"),
    ("https://100.100.100.200/", "a cloud metadata address"),
    ("https://0x7f000001/", "a loopback address"),
    ("https://0177.0.0.1/", "a loopback address"),
    ("https://127.1/", "a loopback address"),
    ("https://127.0.0.1:9001/2018-06-01/runtime/invocation/next", "a loopback address"),
    ("https://[::1]/", "a loopback address"),
    ("https://[::127.0.0.1]/", "a loopback address (it embeds 127.0.0.1)"),
    ("https://0/", "an unspecified address"),
    ("https://0.0.0.0/", "an unspecified address"),
    ("https://[::]/", "an unspecified address"),
    ("https://10.0.0.1/", "a private address"),
    ("https://172.16.5.4/", "a private address"),
    ("https://192.168.1.1/", "a private address"),
    ("https://100.64.0.1/", "a private address"),
    ("https://[fc00::1]/", "a private address"),
    ("https://169.254.1.1/", "a link-local address"),
    ("https://[fe80::1]/", "a link-local address"),
    ("https://224.0.0.1/", "a multicast address"),
    ("https://[ff02::1]/", "a multicast address"),
    ("https://240.0.0.1/", "a reserved address"),
    ("https://[64:ff9b::a9fe:a9fe]/", "a cloud metadata address (it embeds 169.254.169.254)"),
    ("https://[2002:a9fe:a9fe::1]/", "a cloud metadata address (it embeds 169.254.169.254)"),
    ("https://[2002:0a00:0001::1]/", "a private address (it embeds 10.0.0.1)"),
    ("https://localhost/", "host localhost is a loopback name"),
    ("https://metadata.localhost/", "host metadata.localhost is a loopback name"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme 'gopher' is not allowed"),
    ("ftp://acct.blob.core.windows.net/cat.png", "scheme 'ftp' is not allowed"),
    ("dict://127.0.0.1:11211/stat", "scheme 'dict' is not allowed"),
    ("//acct.blob.core.windows.net/cat.png", "scheme '(none)' is not allowed"),
    ("http://acct.blob.core.windows.net/cat.png", "plain http is not allowed"),
    ("https://user:pw@acct.blob.core.windows.net/cat.png", "credentials (userinfo) in the URL are not allowed"),
    ("https://acct.blob.core.windows.net@169.254.169.254/", "credentials (userinfo) in the URL are not allowed"),
    ("https://acct.blob.core.windows.net\\@evil.example/", "must not contain a backslash"),
    ("https://evil.example/cat.png", "host evil.example is not on the allowed host list"),
    ("https://evilblob.core.windows.net/cat.png", "not on the allowed host list"),
    ("https://blob.core.windows.net.evil.example/cat.png", "not on the allowed host list"),
    ("https://8.8.8.8/cat.png", "host 8.8.8.8 is not on the allowed host list"),
    ("https://acct.blob.core.windows.net/a cat.png", "printable ASCII without spaces"),
    ("https://acct.blob.core.windows.net/\r\nX-Injected: 1", "printable ASCII without spaces"),
    ("https://acct.blob.core.windows.net/ĉat.png", "printable ASCII without spaces"),
    ("https://999.1.1.1/", "malformed numeric host"),
    ("https://1.2.3.4.5/", "malformed numeric host"),
    ("https://08.0.0.1/", "malformed numeric host"),
    ("https://[::ffff:169.254.169.254%25eth0]/", "IPv6 zone identifiers are not allowed"),
    ("https://acct.blob.core.windows.net:0/", "port 0 is not allowed"),
    ("https://acct.blob.core.windows.net:99999/", "malformed (host or port)"),
    ("https:///cat.png", "URL has no host"),
    ("https://a..blob.core.windows.net/", "malformed host name"),
]


@pytest.mark.parametrize(("url", "reason"), SSRF_URLS)
def test_given_an_ssrf_url_when_checked_then_it_is_refused_with_its_reason_before_any_dns(
    url: str, reason: str
) -> None:
    # Given a strict policy and a resolver that must not be reached
    # When the URL is checked
    with pytest.raises(UrlNotAllowed) as caught:
        check_url(url, STRICT, resolver=no_dns)
    # Then it is refused as url_not_allowed (400) and the message names why
    assert (caught.value.status, caught.value.code) == (400, "url_not_allowed")
    assert reason in caught.value.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/", "a cloud metadata address (it embeds 169.254.169.254)"),
        ("http://[fd00:ec2::254]/", "a cloud metadata address"),
        ("http://0.0.0.0:8080/", "an unspecified address"),
        ("http://169.254.1.1/", "a link-local address"),
        ("gopher://127.0.0.1:6379/", "scheme 'gopher' is not allowed"),
        ("http://evil.example/", "not on the allowed host list"),
    ],
)
def test_given_private_networks_admitted_when_url_targets_metadata_or_other_scheme_then_still_refused(
    url: str, reason: str
) -> None:
    # Given the local-doubles policy (http, loopback and private admitted)
    # When a metadata, link-local or non-http URL is checked
    with pytest.raises(UrlNotAllowed) as caught:
        check_url(url, LOCAL, resolver=no_dns)
    # Then it is refused all the same
    assert reason in caught.value.message


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8080/azure/cat.png", "127.0.0.1"),
        ("http://10.1.2.3/cat.png", "10.1.2.3"),
        ("http://[::1]:9000/cat.png", "::1"),
    ],
)
def test_given_private_networks_admitted_when_url_is_a_loopback_or_private_literal_then_it_passes(
    url: str, address: str
) -> None:
    # Given the local-doubles policy; When a loopback or private literal is checked
    checked = check_url(url, LOCAL, resolver=no_dns)
    # Then it passes without DNS, pinned to that literal
    assert checked.addresses == (address,)


def test_given_private_networks_admitted_when_url_names_localhost_then_it_resolves_and_passes() -> None:
    checked = check_url("http://localhost:8080/cat.png", LOCAL, resolver=resolving_to("127.0.0.1"))
    assert (checked.host, checked.addresses) == ("localhost", ("127.0.0.1",))


# --- DNS ---------------------------------------------------------------------------------------------------------


def test_given_an_allowed_name_resolving_to_10_0_0_1_when_checked_then_refused() -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        check_url(BLOB, STRICT, resolver=resolving_to("10.0.0.1"))
    assert caught.value.message == (
        "URL not allowed: host acct.blob.core.windows.net resolves to 10.0.0.1, a private address"
    )
    assert caught.value.details == {"host": "acct.blob.core.windows.net"}


def test_given_a_name_with_one_public_and_one_metadata_address_when_checked_then_refused() -> None:
    # All resolved addresses must pass: a connection could otherwise land on the bad one.
    with pytest.raises(UrlNotAllowed) as caught:
        check_url(BLOB, STRICT, resolver=resolving_to("20.60.1.1", "::ffff:169.254.169.254"))
    assert "resolves to ::ffff:a9fe:a9fe, a cloud metadata address (it embeds 169.254.169.254)" in caught.value.message


def test_given_a_name_with_public_addresses_when_checked_then_pinned_to_them_ipv4_first() -> None:
    checked = check_url(BLOB, STRICT, resolver=resolving_to("2603:1030::5", "20.60.1.1", "20.60.1.1"))
    assert checked.addresses == ("20.60.1.1", "2603:1030::5")
    assert (checked.scheme, checked.host, checked.port, checked.target) == (
        "https",
        "acct.blob.core.windows.net",
        443,
        "/media/cat.png",
    )


def test_given_a_name_that_does_not_resolve_when_checked_then_upstream_error_502() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UpstreamError) as caught:
        check_url(BLOB, STRICT, resolver=fail)
    assert caught.value.status == 502
    assert caught.value.details == {"host": "acct.blob.core.windows.net", "reason": "dns"}


# --- allowlist and URL shape -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://acct.blob.core.windows.net/c/cat.png",
        "https://ACCT.Blob.Core.Windows.NET/c/cat.png",
        "https://acct.blob.core.windows.net./c/cat.png",
        "https://blob.core.windows.net/c/cat.png",
        "https://sc-maas.oss-cn-shanghai.aliyuncs.com/outputs%2Fx.png",
        "https://a223539ccf6caa2d76459c9727d276e6.r2.cloudflarestorage.com/stable-horde/x.webp",
        "https://cdn.siliconflow.com/x.png",
        "https://image.pollinations.ai/prompt/cat",
        "https://cdn-lfs.hf.co/x.png",
        "https://v3.fal.media/files/x.png",
    ],
)
def test_given_default_policy_when_provider_delivery_host_is_checked_then_allowed(url: str) -> None:
    assert parse_url(url, STRICT).url == url


def test_given_default_policy_then_amazonaws_is_not_allowed_wholesale() -> None:
    # Every EC2/ELB hostname sits under amazonaws.com: allowing it would admit servers anyone runs.
    assert not any(s.endswith("amazonaws.com") for s in DEFAULT_ALLOWED_HOST_SUFFIXES)
    with pytest.raises(UrlNotAllowed):
        parse_url("https://ec2-3-80-1-1.compute-1.amazonaws.com/x.png", STRICT)


def test_given_a_hosts_csv_when_policy_built_then_it_replaces_the_defaults() -> None:
    policy = FetchPolicy.from_settings(" *.example.com, cdn.example.org. ,", False, 1024)
    assert policy.allowed_host_suffixes == ("example.com", "cdn.example.org")
    assert policy.max_bytes == 1024
    assert policy.host_allowed("a.b.example.com")
    assert policy.host_allowed("cdn.example.org")
    assert not policy.host_allowed("x.cdn.example.org.evil")
    assert not policy.host_allowed("acct.blob.core.windows.net")


@pytest.mark.parametrize("csv", [None, "", " , "])
def test_given_no_hosts_csv_when_policy_built_then_defaults_apply(csv: str | None) -> None:
    policy = FetchPolicy.from_settings(csv, False, 1024)
    assert policy.allowed_host_suffixes == tuple(s.lstrip(".") for s in DEFAULT_ALLOWED_HOST_SUFFIXES)


def test_given_a_url_in_the_hosts_csv_when_policy_built_then_value_error() -> None:
    with pytest.raises(ValueError, match="not URLs"):
        FetchPolicy.from_settings("https://cdn.example.com/", False, 1024)


def test_given_an_escaped_signed_url_when_parsed_then_path_and_query_are_kept_byte_for_byte() -> None:
    url = (
        "https://sc-maas.oss-cn-shanghai.aliyuncs.com:8443/outputs%2F20250919%2Fa%20b.png"
        "?Expires=1758280965&OSSAccessKeyId=LTAI&Signature=ab%2Bc%2F%3D&x=%7e'~#fragment"
    )
    parsed = parse_url(url, STRICT)
    assert parsed.target == (
        "/outputs%2F20250919%2Fa%20b.png?Expires=1758280965&OSSAccessKeyId=LTAI&Signature=ab%2Bc%2F%3D&x=%7e'~"
    )
    assert parsed.host_header == "sc-maas.oss-cn-shanghai.aliyuncs.com:8443"
    assert parsed.display == "https://sc-maas.oss-cn-shanghai.aliyuncs.com:8443/outputs%2F20250919%2Fa%20b.png"


def test_given_a_url_with_only_a_query_when_parsed_then_target_starts_with_a_slash() -> None:
    assert parse_url("https://x.hf.co?sig=1", STRICT).target == "/?sig=1"


# --- expiry ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expires_at", "source"),
    [
        (BLOB + "?sv=2024-11-04&se=2026-01-01T11%3A00%3A00Z&sr=b&sp=r&sig=abc%3D", datetime(2026, 1, 1, 11), "se"),
        (BLOB + "?sv=2024-11-04&se=2026-01-01&sr=b&sp=r&sig=abc", datetime(2026, 1, 1), "se"),
        (BLOB + "?se=2026-01-01T11%3A30Z&sig=abc", datetime(2026, 1, 1, 11, 30), "se"),
        (BLOB + "?se=2026-01-01T11:00:00.1234567Z&sig=a", datetime(2026, 1, 1, 11, 0, 0, 123456), "se"),
        (
            "https://x.r2.cloudflarestorage.com/b/k.webp?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb"
            "&X-Amz-Date=20260101T110000Z&X-Amz-Expires=1800&X-Amz-SignedHeaders=host&X-Amz-Signature=ff",
            datetime(2026, 1, 1, 11, 30),
            "X-Amz-Expires",
        ),
        (
            "https://x.r2.cloudflarestorage.com/b/k.webp?x-amz-date=20260101T110000Z&x-amz-expires=60",
            datetime(2026, 1, 1, 11, 1),
            "X-Amz-Expires",
        ),
        (
            "https://sc-maas.oss-cn-shanghai.aliyuncs.com/o.png?Expires=1767265200&OSSAccessKeyId=LTAI&Signature=s%3D",
            datetime(2026, 1, 1, 11),
            "Expires",
        ),
        (
            "https://d111.cloudfront.example/o.png?Expires=1767265200&Signature=abc~&Key-Pair-Id=K2",
            datetime(2026, 1, 1, 11),
            "Expires",
        ),
    ],
)
def test_given_a_signed_url_when_expiry_read_then_the_instant_and_its_source(
    url: str, expires_at: datetime, source: str
) -> None:
    expiry = link_expiry(url)
    assert expiry is not None
    assert (expiry.expires_at, expiry.source) == (expires_at.replace(tzinfo=UTC), source)


@pytest.mark.parametrize(
    "url",
    [
        BLOB,
        BLOB + "?se=2020-01-01",  # an `se` without sv/sig is someone else's parameter
        BLOB + "?Expires=1&foo=bar",  # Expires without a signature beside it
        BLOB + "?sv=2024-11-04&se=yesterday&sig=a",  # unreadable: left to the storage's own 403
        BLOB + "?Expires=99999999999999999999&Signature=a",
        BLOB + "?X-Amz-Date=nope&X-Amz-Expires=60",
    ],
)
def test_given_a_url_without_a_readable_expiry_when_read_then_none(url: str) -> None:
    assert link_expiry(url) is None


def test_given_two_expiries_when_read_then_the_earliest_wins() -> None:
    url = BLOB + "?se=2026-01-01T11%3A00%3A00Z&sig=a&Expires=1767261600&Signature=b"  # 10:00 UTC
    expiry = link_expiry(url)
    assert expiry is not None
    assert (expiry.expires_at, expiry.source) == (datetime(2026, 1, 1, 10, tzinfo=UTC), "Expires")


def test_given_an_expired_sas_when_checked_then_link_expired_410_with_regenerate_hint() -> None:
    url = BLOB + "?sv=2024-11-04&se=2026-01-01T11%3A59%3A59Z&sr=b&sp=r&sig=abc"
    with pytest.raises(LinkExpired) as caught:
        check_not_expired(url, NOW)
    assert (caught.value.status, caught.value.code, caught.value.hint) == (410, "expired", "regenerate the image")
    assert caught.value.details == {"expired_at": "2026-01-01T11:59:59+00:00", "source": "se"}


def test_given_a_link_at_its_expiry_instant_when_checked_then_expired_and_a_second_before_not() -> None:
    url = BLOB + "?se=2026-01-01T12%3A00%3A00Z&sig=abc"
    with pytest.raises(LinkExpired):
        check_not_expired(url, NOW)
    check_not_expired(url, NOW - timedelta(seconds=1))


AZURE_TIME_FRAME = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to '
    b"authenticate the request.</Message><AuthenticationErrorDetail>Signature not valid in the specified time frame: "
    b"Start [] - Expiry [Thu, 01 Jan 2026 11:00:00 GMT] - Current [Thu, 01 Jan 2026 12:00:00 GMT]"
    b"</AuthenticationErrorDetail></Error>"
)
AZURE_BEARER = (
    b"<Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message>"
    b"<AuthenticationErrorDetail>Authentication scheme Bearer is not supported in this version."
    b"</AuthenticationErrorDetail></Error>"
)


@pytest.mark.parametrize(
    ("status", "headers", "body", "expired"),
    [
        (403, {"x-ms-error-code": "AuthenticationFailed"}, AZURE_TIME_FRAME, True),
        (403, {}, AZURE_TIME_FRAME, True),
        (403, {"x-ms-error-code": "AuthenticationFailed"}, AZURE_BEARER, False),
        (403, {}, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", True),
        (403, {}, b"<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>", True),
        (403, {}, b"<Error><Code>SignatureDoesNotMatch</Code><Message>Request has expired</Message></Error>", False),
        (403, {}, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", False),
        (401, {}, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", False),
    ],
)
def test_given_a_storage_refusal_when_read_then_only_time_frame_refusals_mean_expired(
    status: int, headers: dict[str, str], body: bytes, expired: bool
) -> None:
    assert says_signature_expired(status, headers, body) is expired


# --- provider keys -----------------------------------------------------------------------------------------------

KEY = {"Authorization": "Bearer sk-secret"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.siliconflow.com/v1/images/generations", KEY),
        ("https://API.siliconflow.com:443/v1/user/info", KEY),
        ("https://sc-maas.oss-cn-shanghai.aliyuncs.com/outputs%2Fa.png?Expires=1&Signature=a", {}),
        ("https://acct.blob.core.windows.net/c/a.png?sig=a", {}),
        ("https://cdn.siliconflow.com/a.png", {}),
        ("https://x.api.siliconflow.com/v1", {}),
        ("http://api.siliconflow.com/v1", {}),
        ("https://api.siliconflow.com:8443/v1", {}),
        ("https://api.siliconflow.com@evil.example/v1", {}),
        ("not a url", {}),
    ],
)
def test_given_a_provider_key_when_url_is_not_the_api_origin_then_no_key_attached(
    url: str, expected: dict[str, str]
) -> None:
    assert auth_headers_for(url, "https://api.siliconflow.com/v1", KEY) == expected


# --- the fetcher against an in-memory transport --------------------------------------------------------------------


class Upstream:
    """An httpx MockTransport that records what the fetcher sends and answers from a script."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response

    def fetcher(
        self, policy: FetchPolicy = STRICT, resolver: Callable[[str, int], Sequence[str]] | None = None
    ) -> SafeFetcher:
        return SafeFetcher(
            policy,
            resolver=resolver or resolving_to("20.60.1.1"),
            client_factory=lambda _ssl, _deadline: httpx.Client(transport=httpx.MockTransport(self.handle)),
            clock=lambda: NOW,
        )


def png(body: bytes = b"\x89PNG", **headers: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "image/png", **headers}, content=body)


def test_given_a_signed_url_when_fetched_then_request_goes_to_the_checked_ip_with_name_sni_and_exact_target() -> None:
    upstream = Upstream(png(b"img"))
    url = BLOB + "?sv=2024-11-04&se=2026-01-01T13%3A00%3A00Z&sr=b&sp=r&sig=ab%2Bc%2F%3D"
    fetched = upstream.fetcher().fetch_bytes(url)
    (request,) = upstream.requests
    assert (fetched.data, fetched.content_type, fetched.url) == (b"img", "image/png", url)
    assert (request.url.host, request.url.port) == ("20.60.1.1", None)
    assert request.extensions["sni_hostname"] == "acct.blob.core.windows.net"
    assert (
        request.extensions["target"]
        == b"/media/cat.png?sv=2024-11-04&se=2026-01-01T13%3A00%3A00Z&sr=b&sp=r&sig=ab%2Bc%2F%3D"
    )
    assert dict(request.headers) == {
        "host": "acct.blob.core.windows.net",
        "accept": "image/*, video/*",
        "accept-encoding": "identity",
        "connection": "keep-alive",
        "user-agent": "imagegen-fetch/1",
    }


def test_given_a_redirect_to_a_relative_location_when_fetched_then_next_hop_is_rechecked_and_sent() -> None:
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["20.60.1.1"]

    upstream = Upstream(httpx.Response(302, headers={"location": "/media/dog.png?sig=x"}), png(b"dog"))
    fetched = upstream.fetcher(resolver=resolver).fetch_bytes(BLOB)
    assert fetched.data == b"dog"
    assert fetched.url == "https://acct.blob.core.windows.net/media/dog.png?sig=x"
    assert resolved == ["acct.blob.core.windows.net", "acct.blob.core.windows.net"]
    assert [r.extensions["target"] for r in upstream.requests] == [b"/media/cat.png", b"/media/dog.png?sig=x"]


def test_given_a_redirect_to_the_metadata_address_when_fetched_then_refused_and_not_followed() -> None:
    upstream = Upstream(httpx.Response(302, headers={"location": "https://169.254.169.254/latest/meta-data/"}))
    with pytest.raises(UrlNotAllowed, match="a cloud metadata address"):
        upstream.fetcher().fetch_bytes(BLOB)
    assert len(upstream.requests) == 1


def test_given_four_redirects_when_fetched_then_too_many_redirects_502_after_four_requests() -> None:
    upstream = Upstream(*[httpx.Response(307, headers={"location": f"/media/{i}.png"}) for i in range(4)])
    with pytest.raises(TooManyRedirects) as caught:
        upstream.fetcher().fetch_bytes(BLOB)
    assert (caught.value.status, caught.value.code) == (502, "too_many_redirects")
    assert len(upstream.requests) == 4


def test_given_an_expired_link_when_fetched_then_link_expired_and_no_request() -> None:
    upstream = Upstream()
    with pytest.raises(LinkExpired):
        upstream.fetcher().fetch_bytes(BLOB + "?se=2026-01-01T11%3A00%3A00Z&sig=a")
    assert upstream.requests == []


def test_given_an_expired_link_on_a_refused_host_when_fetched_then_url_not_allowed_wins() -> None:
    upstream = Upstream()
    with pytest.raises(UrlNotAllowed):
        upstream.fetcher().fetch_bytes("https://evil.example/x.png?se=2026-01-01T11%3A00%3A00Z&sig=a")
    assert upstream.requests == []


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json", "image/svg+xml", ""])
def test_given_a_body_that_is_not_media_when_fetched_then_unsupported_media_type_502(content_type: str) -> None:
    upstream = Upstream(httpx.Response(200, headers={"content-type": content_type}, content=b"<html>"))
    with pytest.raises(UnsupportedMediaType) as caught:
        upstream.fetcher().fetch_bytes(BLOB)
    assert (caught.value.status, caught.value.code) == (502, "unsupported_media_type")
    assert caught.value.details == {
        "host": "acct.blob.core.windows.net",
        "content_type": content_type.split(";")[0] or None,
    }


def test_given_a_gzip_encoded_body_when_fetched_then_refused_rather_than_inflated() -> None:
    upstream = Upstream(png(b"\x1f\x8b", **{"content-encoding": "gzip"}))
    with pytest.raises(UpstreamError) as caught:
        upstream.fetcher().fetch_bytes(BLOB)
    assert caught.value.details == {"host": "acct.blob.core.windows.net", "content_encoding": "gzip"}


def test_given_a_declared_length_over_the_limit_when_fetched_then_413_before_reading_the_body() -> None:
    def body() -> Iterator[bytes]:
        raise AssertionError("the body must not be read")
        yield b""  # pragma: no cover

    upstream = Upstream(
        httpx.Response(200, headers={"content-type": "image/png", "content-length": "2048"}, content=body())
    )
    with pytest.raises(PayloadTooLarge) as caught:
        upstream.fetcher(FetchPolicy(max_bytes=1024)).fetch_bytes(BLOB)
    assert (caught.value.status, caught.value.details) == (413, {"max_bytes": 1024})


def test_given_an_undeclared_body_over_the_limit_when_streamed_then_413_once_the_limit_is_passed() -> None:
    read: list[int] = []

    def body() -> Iterator[bytes]:
        for i in range(100):
            read.append(i)
            yield b"x" * 100

    upstream = Upstream(httpx.Response(200, headers={"content-type": "image/png"}, content=body()))
    with pytest.raises(PayloadTooLarge):
        upstream.fetcher(FetchPolicy(max_bytes=1000)).fetch_bytes(BLOB)
    assert len(read) == 11  # stopped at the first chunk past 1000 bytes


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_given_an_upstream_error_status_when_fetched_then_upstream_error_502_with_that_status(status: int) -> None:
    upstream = Upstream(httpx.Response(status, headers={"x-ms-error-code": "ServerBusy"}, content=b"<Error/>"))
    with pytest.raises(UpstreamError) as caught:
        upstream.fetcher().fetch_bytes(BLOB)
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")
    assert caught.value.details == {
        "host": "acct.blob.core.windows.net",
        "upstream_status": status,
        "upstream_code": "ServerBusy",
    }


def test_given_an_upstream_403_time_frame_when_fetched_then_link_expired_410() -> None:
    upstream = Upstream(
        httpx.Response(403, headers={"x-ms-error-code": "AuthenticationFailed"}, content=AZURE_TIME_FRAME)
    )
    with pytest.raises(LinkExpired) as caught:
        upstream.fetcher().fetch_bytes(BLOB)
    assert caught.value.details == {"host": "acct.blob.core.windows.net", "upstream_status": 403}


def test_given_an_upstream_read_timeout_when_fetched_then_upstream_timeout_504() -> None:
    upstream = Upstream(httpx.ReadTimeout("timed out"))
    with pytest.raises(UpstreamTimeout) as caught:
        upstream.fetcher().fetch_bytes(BLOB)
    assert (caught.value.status, caught.value.code) == (504, "upstream_timeout")


def test_given_the_first_address_refuses_connections_when_fetched_then_the_next_checked_address_is_used() -> None:
    upstream = Upstream(httpx.ConnectError("refused"), png(b"ok"))
    fetched = upstream.fetcher(resolver=resolving_to("20.60.1.1", "20.60.1.2")).fetch_bytes(BLOB)
    assert fetched.data == b"ok"
    assert [r.url.host for r in upstream.requests] == ["20.60.1.1", "20.60.1.2"]


def test_given_every_address_refuses_connections_when_fetched_then_upstream_error_502() -> None:
    upstream = Upstream(httpx.ConnectError("refused"))
    with pytest.raises(UpstreamError) as caught:
        upstream.fetcher().fetch_bytes(BLOB)
    assert caught.value.details == {"host": "acct.blob.core.windows.net", "reason": "ConnectError"}
