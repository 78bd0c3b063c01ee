"""The one safe fetcher for URLs that came from outside: allowlisted, SSRF-checked, pinned, streamed, no auth."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import parse_qsl, urljoin, urlsplit

import certifi
import httpx

from imagegen.errors import (
    LinkExpired,
    PayloadTooLarge,
    TooManyRedirects,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamTimeout,
    UrlNotAllowed,
)
from imagegen.media.deadline import deadline_client
from imagegen.providers import RESULT_HOSTS

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES: Final = 20 * 1024 * 1024

# Where providers in the chain deliver results: each provider's spec lists its result hosts (and says why each).
# A suffix admits the name itself and every name below it.
# Deliberately absent: ".amazonaws.com". It admits every EC2, ELB and API Gateway hostname, i.e. servers that anyone
# runs, and no provider in the chain delivers from S3. Add ".s3.amazonaws.com" (or a regional
# ".s3.<region>.amazonaws.com") to MEDIA_ALLOWED_HOSTS if one ever does.
DEFAULT_ALLOWED_HOST_SUFFIXES: Final[tuple[str, ...]] = RESULT_HOSTS

# Cloud metadata and runtime endpoints: refused even when private networks are admitted for local doubles.
_METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS/GCP/Azure instance metadata
        "169.254.170.2",  # ECS task metadata and credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
        "192.0.0.192",  # Oracle Cloud metadata
    )
)
_NAT64: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE: Final = ipaddress.ip_network("::/96")
_THIS_NETWORK: Final = ipaddress.ip_network("0.0.0.0/8")

_URL_CHARS: Final = re.compile(r"[\x21-\x7e]+")  # printable ASCII; a client must percent-encode anything else
_HOST_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL: Final = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_DIGITS: Final = re.compile(r"[0-9]{1,15}")
_UNIX_SECONDS: Final = re.compile(r"[0-9]{1,11}")  # up to the year 5138: beyond that fromtimestamp overflows
_ERROR_CODE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_XML_CODE: Final = re.compile(rb"<Code>([^<]{1,64})</Code>")
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_OK: Final = frozenset({200, 203})
_ERROR_BODY_PEEK: Final = 8192
_MAX_URL_LENGTH: Final = 8192
_USER_AGENT: Final = "imagegen-fetch/1"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the IP addresses the name resolves to, as strings."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class FetchPolicy:
    allowed_host_suffixes: tuple[str, ...] = DEFAULT_ALLOWED_HOST_SUFFIXES
    # For local test doubles only: admits plain http and loopback/private addresses (never metadata addresses).
    allow_private_networks: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    # Wall clock for one whole fetch (connect, TLS, headers and body), so an answer that trickles in under the read
    # timeout still ends.
    total_timeout: float = 25.0

    def __post_init__(self) -> None:
        suffixes = tuple(_normalize_suffix(s) for s in self.allowed_host_suffixes)
        object.__setattr__(self, "allowed_host_suffixes", tuple(s for s in suffixes if s))
        if self.max_bytes <= 0 or self.max_redirects < 0:
            raise ValueError("max_bytes must be positive and max_redirects not negative")

    @classmethod
    def from_settings(
        cls,
        allowed_hosts_csv: str | None,
        allow_private: bool,
        max_bytes: int,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        total_timeout: float = 25.0,
    ) -> FetchPolicy:
        """An empty or missing list means the defaults; a given list replaces them (copy the defaults to extend)."""
        suffixes = tuple(s for s in (allowed_hosts_csv or "").split(",") if s.strip())
        return cls(
            allowed_host_suffixes=suffixes or DEFAULT_ALLOWED_HOST_SUFFIXES,
            allow_private_networks=allow_private,
            max_bytes=max_bytes,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            total_timeout=total_timeout,
        )

    def host_allowed(self, host: str) -> bool:
        return any(host == suffix or host.endswith("." + suffix) for suffix in self.allowed_host_suffixes)


def _normalize_suffix(entry: str) -> str:
    entry = entry.strip().lower().rstrip(".")
    if "/" in entry or "@" in entry:
        raise ValueError(f"allowed host entries are host names or suffixes, not URLs: {entry!r}")
    return entry.lstrip("*").lstrip(".")


# ---------------------------------------------------------------------------------------------------------------
# URL checks


@dataclass(frozen=True)
class ParsedUrl:
    """A URL that passed every check that needs no network: scheme, shape, host allowlist, literal addresses."""

    url: str
    scheme: str
    host: str
    port: int
    target: str  # path and query exactly as given: sent byte for byte
    literal: Address | None = None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """The URL without its query: signatures are credentials and never go into logs or answers."""
        return f"{self.scheme}://{self.host_header}{self.target.split('?', 1)[0]}"


@dataclass(frozen=True)
class CheckedUrl(ParsedUrl):
    """A ParsedUrl plus the addresses its host resolved to, all checked; connections go only to these."""

    addresses: tuple[str, ...] = field(default_factory=tuple)


def parse_url(url: str, policy: FetchPolicy) -> ParsedUrl:
    """Every check short of DNS; raises UrlNotAllowed naming the reason."""
    if len(url) > _MAX_URL_LENGTH:
        raise _refuse(f"URL is longer than {_MAX_URL_LENGTH} characters")
    if not _URL_CHARS.fullmatch(url):
        raise _refuse("URL must be printable ASCII without spaces (percent-encode it)")
    if "\\" in url:
        raise _refuse("URL must not contain a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("URL is malformed (host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise _refuse(f"scheme {scheme or '(none)'!r} is not allowed; only https")
    if scheme == "http" and not policy.allow_private_networks:
        raise _refuse("plain http is not allowed; only https")
    if "@" in parts.netloc:
        raise _refuse("credentials (userinfo) in the URL are not allowed")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise _refuse("URL has no host")
    if port == 0:
        raise _refuse("port 0 is not allowed")
    port = port or (443 if scheme == "https" else 80)
    start = url.index("//") + 2 + len(parts.netloc)
    target = url[start:].split("#", 1)[0]
    if not target.startswith("/"):
        target = "/" + target

    host, literal = _parse_host(raw_host, bracketed=parts.netloc.startswith("["))
    parsed = ParsedUrl(url=url, scheme=scheme, host=host, port=port, target=target, literal=literal)
    if literal is not None:
        reason = _address_refusal(literal, policy)
        if reason:
            raise _refuse(f"address {literal} is {reason}", host=host)
        if _is_internal(literal) or policy.host_allowed(host):
            return parsed  # internal here means admitted by allow_private_networks
        raise _refuse(f"host {host} is not on the allowed host list", host=host)
    if host == "localhost" or host.endswith(".localhost"):
        if not policy.allow_private_networks:
            raise _refuse(f"host {host} is a loopback name", host=host)
        return parsed
    if not policy.host_allowed(host):
        raise _refuse(f"host {host} is not on the allowed host list", host=host)
    return parsed


def check_url(url: str, policy: FetchPolicy, *, resolver: Resolver = system_resolver) -> CheckedUrl:
    """parse_url, then resolve the host; every address it resolves to must pass, or nothing is fetched."""
    parsed = parse_url(url, policy)
    if parsed.literal is not None:
        return _checked(parsed, (str(parsed.literal),))
    try:
        resolved = resolver(parsed.host, parsed.port)
    except (OSError, UnicodeError):
        raise UpstreamError(
            f"could not resolve host {parsed.host}", details={"host": parsed.host, "reason": "dns"}
        ) from None
    addresses: list[Address] = []
    for raw in resolved:
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            raise _refuse(f"host {parsed.host} resolves to an unusable address", host=parsed.host) from None
        reason = _address_refusal(address, policy)
        if reason:
            raise _refuse(f"host {parsed.host} resolves to {address}, {reason}", host=parsed.host)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UpstreamError(f"host {parsed.host} has no address", details={"host": parsed.host, "reason": "dns"})
    # IPv4 first: Lambda outside a dual-stack VPC has no IPv6 egress.
    addresses.sort(key=lambda a: a.version)
    return _checked(parsed, tuple(str(a) for a in addresses))


def _checked(parsed: ParsedUrl, addresses: tuple[str, ...]) -> CheckedUrl:
    return CheckedUrl(
        url=parsed.url,
        scheme=parsed.scheme,
        host=parsed.host,
        port=parsed.port,
        target=parsed.target,
        literal=parsed.literal,
        addresses=addresses,
    )


def _refuse(message: str, *, host: str | None = None) -> UrlNotAllowed:
    return UrlNotAllowed(f"URL not allowed: {message}", details={"host": host} if host else None)


def _parse_host(raw: str, *, bracketed: bool) -> tuple[str, Address | None]:
    if bracketed:
        if "%" in raw:
            raise _refuse("IPv6 zone identifiers are not allowed")
        try:
            return raw, ipaddress.IPv6Address(raw)
        except ValueError:
            raise _refuse("malformed IPv6 address") from None
    host = raw.lower()
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    # As browsers do (WHATWG URL): a host whose last label is a number is an IPv4 address in any of inet_aton's
    # forms (2852039166, 0x7f000001, 0177.0.0.1, 127.1), never a name.
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return host, _parse_ipv4_number(labels)
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise _refuse("malformed host name")
    return host, None


def _parse_ipv4_number(labels: list[str]) -> ipaddress.IPv4Address:
    numbers: list[int] = []
    for label in labels:
        if not _NUMERIC_LABEL.fullmatch(label):
            raise _refuse("malformed numeric host")
        if label[:2].lower() == "0x":
            numbers.append(int(label[2:] or "0", 16))
        elif len(label) > 1 and label.startswith("0"):
            if not set(label) <= set("01234567"):
                raise _refuse("malformed numeric host")
            numbers.append(int(label, 8))
        else:
            numbers.append(int(label))
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise _refuse("malformed numeric host")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return ipaddress.IPv4Address(value)


def _embedded(address: Address) -> list[Address]:
    """The IPv4 addresses that transition forms of IPv6 carry; those are what a connection would reach."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if any(address in net for net in _NAT64) or (
        address in _IPV4_COMPATIBLE and not (address.is_unspecified or address.is_loopback)
    ):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return [address]


_KIND_PHRASES: Final = {
    "metadata": "a cloud metadata address",
    "unspecified": "an unspecified address",
    "loopback": "a loopback address",
    "link-local": "a link-local address",
    "multicast": "a multicast address",
    "reserved": "a reserved address",
    "private": "a private address",
}


def _classify(address: Address) -> str | None:
    if address in _METADATA_ADDRESSES:
        return "metadata"
    if address.is_unspecified or (isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK):
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    # not is_global also catches shared (100.64/10), benchmarking and documentation ranges.
    if address.is_private or not address.is_global:
        return "private"
    return None


def _is_internal(address: Address) -> bool:
    return any(_classify(a) in ("loopback", "private") for a in _embedded(address))


def _address_refusal(address: Address, policy: FetchPolicy) -> str | None:
    """Why a connection to `address` is refused ("a link-local address"), or None when it may be used."""
    for inner in _embedded(address):
        kind = _classify(inner)
        if kind is None or (policy.allow_private_networks and kind in ("loopback", "private")):
            continue
        return _KIND_PHRASES[kind] + ("" if inner == address else f" (it embeds {inner})")
    return None


# ---------------------------------------------------------------------------------------------------------------
# Expiry of signed links


@dataclass(frozen=True)
class LinkExpiry:
    expires_at: datetime
    source: str  # the query parameter it was read from: "se", "X-Amz-Expires" or "Expires"


def link_expiry(url: str) -> LinkExpiry | None:
    """When a signed link stops working, read from its query; None when it carries no readable expiry.

    An unreadable value is left for the storage to judge: its 403 is mapped the same way.
    """
    params: dict[str, str] = {}
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        params.setdefault(key.lower(), value)
    found: list[LinkExpiry] = []
    if "x-amz-date" in params and "x-amz-expires" in params:
        amz = _amz_expiry(params["x-amz-date"], params["x-amz-expires"])
        found += [LinkExpiry(amz, "X-Amz-Expires")] if amz else []
    if "se" in params and ("sig" in params or "sv" in params):
        sas = _iso_expiry(params["se"])
        found += [LinkExpiry(sas, "se")] if sas else []
    # Aliyun OSS, CloudFront and S3 SigV2 links: unix seconds next to a signature.
    if "expires" in params and "signature" in params:
        unix = _unix_expiry(params["expires"])
        found += [LinkExpiry(unix, "Expires")] if unix else []
    return min(found, key=lambda e: e.expires_at) if found else None


def _amz_expiry(signed_at: str, seconds: str) -> datetime | None:
    try:
        start = datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return start + timedelta(seconds=int(seconds))
    except (ValueError, OverflowError):
        return None


def _iso_expiry(value: str) -> datetime | None:
    """Azure `se`: ISO-8601 in UTC, to the day, minute, second or 100 ns (fromisoformat reads all of them)."""
    try:
        expiry = datetime.fromisoformat(value)
    except ValueError:
        return None
    return expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)


def _unix_expiry(value: str) -> datetime | None:
    if not _UNIX_SECONDS.fullmatch(value):
        return None
    return datetime.fromtimestamp(int(value), UTC)


def check_not_expired(url: str, now: datetime) -> None:
    expiry = link_expiry(url)
    if expiry is not None and now >= expiry.expires_at:
        raise LinkExpired(
            "the signed link has expired",
            details={"expired_at": expiry.expires_at.isoformat(), "source": expiry.source},
        )


def says_signature_expired(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a storage 403 means "out of its time frame" rather than "bad signature" or "auth refused".

    The error code alone cannot tell (Azure uses AuthenticationFailed for all three), so the documented detail
    text decides: Azure "Signature not valid in the specified time frame", S3/R2/OSS "Request has expired".
    """
    if status != 403:
        return False
    code = _upstream_code(headers, body)
    if code == "AuthenticationFailed":
        return b"Signature not valid in the specified time frame" in body
    if code == "AccessDenied":
        return b"Request has expired" in body
    return False


def _upstream_code(headers: Mapping[str, str], body: bytes) -> str | None:
    code = headers.get("x-ms-error-code")
    if not code:
        match = _XML_CODE.search(body)
        code = match.group(1).decode("ascii", "replace") if match else None
    return code if code and _ERROR_CODE.fullmatch(code) else None


# ---------------------------------------------------------------------------------------------------------------
# Provider keys


def auth_headers_for(url: str, api_base_url: str, headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` when `url` is on the provider's API origin, else none: keys never travel to storage hosts."""
    origin = _origin(url)
    return dict(headers) if origin is not None and origin == _origin(api_base_url) else {}


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or "@" in parts.netloc or not parts.hostname:
        return None
    return scheme, parts.hostname.rstrip("."), port or (443 if scheme == "https" else 80)


# ---------------------------------------------------------------------------------------------------------------
# Fetching

ClientFactory = Callable[[ssl.SSLContext, float], httpx.Client]
"""(TLS context, the fetch's deadline on time.monotonic()) -> a client that follows no redirect."""


def default_client(ssl_context: ssl.SSLContext, deadline: float) -> httpx.Client:
    # The total deadline bounds connect, TLS, the headers and the body alike (a server dripping header bytes cannot
    # hold a fetch); trust_env=False: no proxy variables (a proxy would undo the pinning), no ~/.netrc credentials.
    return deadline_client(ssl_context, deadline)


@dataclass(frozen=True)
class Fetched:
    content_type: str
    data: bytes
    url: str  # the URL that answered, after redirects


class MediaStream:
    """An upstream image or video body, read chunk by chunk; reading past the byte limit raises PayloadTooLarge."""

    def __init__(
        self,
        response: httpx.Response,
        checked: CheckedUrl,
        content_type: str,
        content_length: int | None,
        *,
        max_bytes: int,
        deadline: float,
    ) -> None:
        self._response = response
        self._checked = checked
        self._max_bytes = max_bytes
        self._deadline = deadline
        self._consumed = False
        self.content_type = content_type
        self.content_length = content_length

    @property
    def url(self) -> str:
        return self._checked.url

    @property
    def host(self) -> str:
        return self._checked.host

    def iter_bytes(self) -> Iterator[bytes]:
        if self._consumed:
            raise RuntimeError("the media body can be read once")
        self._consumed = True
        seen = 0
        try:
            # Content-Encoding was refused unless identity, so these are the bytes as sent.
            for chunk in self._response.iter_bytes():
                seen += len(chunk)
                if seen > self._max_bytes:
                    raise _too_large(self._max_bytes)
                if time.monotonic() > self._deadline:
                    raise _timeout(self._checked)
                yield chunk
        except httpx.TimeoutException:
            raise _timeout(self._checked) from None
        except httpx.HTTPError as exc:
            raise _connection_error(self._checked, exc) from None


class SafeFetcher:
    """GETs outside URLs under a FetchPolicy; never sends Authorization, Cookie or any caller's header."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver = system_resolver,
        client_factory: ClientFactory = default_client,
        clock: Callable[[], datetime] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        self._client_factory = client_factory
        self._clock = clock or (lambda: datetime.now(UTC))
        # Built once: loading the CA bundle per request would cost more than the small fetches themselves.
        self._ssl_context = ssl_context or ssl.create_default_context(cafile=certifi.where())

    def precheck(self, url: str) -> None:
        """The checks that need no network, so a cache can be consulted before DNS or expiry."""
        parse_url(url, self.policy)

    def check(self, url: str) -> CheckedUrl:
        return check_url(url, self.policy, resolver=self._resolver)

    @contextmanager
    def stream(self, url: str) -> Iterator[MediaStream]:
        deadline = time.monotonic() + self.policy.total_timeout
        current = url
        for hop in range(self.policy.max_redirects + 1):
            parse_url(current, self.policy)  # a refused URL is a 400 even when it has also expired
            check_not_expired(current, self._clock())
            checked = self.check(current)
            client, response = self._send(checked, deadline)
            try:
                if response.status_code in _REDIRECTS:
                    current = self._redirect_target(checked, response)
                    logger.debug("redirect %d from %s", hop + 1, checked.host)
                    continue
                self._raise_for_status(checked, response)
                yield self._media(checked, response, deadline)
                return
            finally:
                response.close()
                client.close()
        raise TooManyRedirects(
            f"more than {self.policy.max_redirects} redirects",
            details={"host": _host_of(url), "max_redirects": self.policy.max_redirects},
        )

    def fetch_bytes(self, url: str) -> Fetched:
        """The whole body in memory (bounded by max_bytes): for the worker, which validates the image anyway."""
        buffer = bytearray()
        with self.stream(url) as media:
            for chunk in media.iter_bytes():
                buffer += chunk
        return Fetched(content_type=media.content_type, data=bytes(buffer), url=media.url)

    def _send(self, checked: CheckedUrl, deadline: float) -> tuple[httpx.Client, httpx.Response]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(checked)
        timeout = httpx.Timeout(
            connect=min(self.policy.connect_timeout, remaining),
            read=min(self.policy.read_timeout, remaining),
            write=min(self.policy.read_timeout, remaining),
            pool=min(self.policy.connect_timeout, remaining),
        )
        # The request goes to the checked address; Host, SNI and certificate checks use the name, and the target
        # extension sends path and query byte for byte (httpx would otherwise normalize the escaping).
        extensions: dict[str, object] = {"target": checked.target.encode("ascii")}
        if checked.literal is None:
            extensions["sni_hostname"] = checked.host
        headers = {
            "Host": checked.host_header,
            "Accept": "image/*, video/*",
            "Accept-Encoding": "identity",  # so that max_bytes bounds what is held, not what is inflated
            "User-Agent": _USER_AGENT,
        }
        last_error: httpx.HTTPError | None = None
        for address in checked.addresses:
            # A client per attempt: a pooled connection verified for one name must not serve another on the same IP.
            client = self._client_factory(self._ssl_context, deadline)
            request = client.build_request(
                "GET",
                httpx.URL(scheme=checked.scheme, host=address, port=checked.port, path="/"),
                headers=headers,
                timeout=timeout,
                extensions=extensions,
            )
            try:
                return client, client.send(request, stream=True)
            except httpx.ConnectError as exc:
                client.close()
                last_error = exc  # try the next checked address
            except httpx.TimeoutException:
                client.close()
                raise _timeout(checked) from None
            except httpx.HTTPError as exc:
                client.close()
                raise _connection_error(checked, exc) from None
        assert last_error is not None  # addresses is never empty
        raise _connection_error(checked, last_error) from None

    def _redirect_target(self, checked: CheckedUrl, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise UpstreamError(
                f"upstream redirect without a Location from {checked.host}",
                details={"host": checked.host, "upstream_status": response.status_code},
            )
        # Relative locations resolve against the URL as given; the new URL is checked from scratch next hop.
        return urljoin(checked.url, location.strip())

    def _raise_for_status(self, checked: CheckedUrl, response: httpx.Response) -> None:
        status = response.status_code
        if status in _OK:
            return
        body = _peek(response, _ERROR_BODY_PEEK)
        details: dict[str, object] = {"host": checked.host, "upstream_status": status}
        if says_signature_expired(status, response.headers, body):
            raise LinkExpired("the signed link has expired (the storage says so)", details=details)
        code = _upstream_code(response.headers, body)
        if code:
            details["upstream_code"] = code
        raise UpstreamError(f"upstream {checked.host} answered {status}", details=details)

    def _media(self, checked: CheckedUrl, response: httpx.Response, deadline: float) -> MediaStream:
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        major = content_type.split("/", 1)[0]
        # SVG is XML that can carry script; nothing in the chain produces it.
        if major not in ("image", "video") or content_type == "image/svg+xml":
            raise UnsupportedMediaType(
                f"upstream {checked.host} answered {content_type or 'no content type'}, not an image or video",
                details={"host": checked.host, "content_type": content_type or None},
            )
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise UpstreamError(
                f"upstream {checked.host} sent a {encoding}-encoded body although identity was asked for",
                details={"host": checked.host, "content_encoding": encoding},
            )
        length_header = response.headers.get("content-length")
        content_length = int(length_header) if length_header and _DIGITS.fullmatch(length_header) else None
        if content_length is not None and content_length > self.policy.max_bytes:
            raise _too_large(self.policy.max_bytes)
        return MediaStream(
            response,
            checked,
            content_type,
            content_length,
            max_bytes=self.policy.max_bytes,
            deadline=deadline,
        )


def _peek(response: httpx.Response, limit: int) -> bytes:
    """The first bytes of an error body (error XML is small); the rest is left unread and dropped with the socket."""
    buffer = bytearray()
    try:
        for chunk in response.iter_bytes():
            buffer += chunk
            if len(buffer) >= limit:
                break
    except httpx.HTTPError as exc:
        # The status alone still gives a useful answer; the body is only a hint, so a broken one is not an error.
        logger.debug("error body unreadable: %s", type(exc).__name__)
    return bytes(buffer[:limit])


def _host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the media is larger than the {max_bytes} byte limit", details={"max_bytes": max_bytes})


def _timeout(checked: CheckedUrl) -> UpstreamTimeout:
    return UpstreamTimeout(f"upstream {checked.host} timed out", details={"host": checked.host})


def _connection_error(checked: CheckedUrl, exc: httpx.HTTPError) -> UpstreamError:
    return UpstreamError(
        f"could not read from upstream {checked.host}",
        details={"host": checked.host, "reason": type(exc).__name__},
    )
