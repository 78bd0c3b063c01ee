"""Signed-storage test double on loopback: Azure SAS, S3/R2 presigned and Aliyun OSS links, each with real checks.

Usage (the `storage` fixture in tests/doubles/fixtures.py does the start/stop)::

    with StorageDouble() as storage:
        storage.put("outputs%2F2025%2Fcat.png", b"...png bytes...", content_type="image/png")
        url = storage.mint_url("azure", "outputs%2F2025%2Fcat.png", ttl_seconds=3600)
        ...  # fetch url; then storage.request_count, storage.requests[-1].headers, .raw_target

The provider doubles (siliconflow.py, horde.py) leave their results here and hand back `mint_url` links, so the
chain's downloads meet the same checks as the media proxy's.

Paths are `/<kind>/<blob name>`; kinds: "azure", "s3", "oss" (signed), "public" (no signature, for redirects
and content-type cases), and two public CDNs: "fal" (fal's `v3.fal.media/files/<bucket>/<id>.<ext>`, public by
design, PROVIDERS-ROUTES.md 2.5) and "replicate" (`replicate.delivery/xezq/<id>/out-0.webp`, 3.6). The CDN kinds
accept a request with or without an `Authorization` header (whether replicate.delivery needs one is UNCONFIRMED;
fal's is public) and record it, so a test can still assert that no provider key reached the CDN; set
`cdn_refuses_auth = True` for the strict reading.

Blob names are stored and matched as raw, percent-encoded strings, and the signature covers the raw path and
query, so a client that re-encodes anything gets 403 "Signature did not match".

Behaviour, as the real services answer (PROVIDERS.md section 6 and the S3/OSS error formats):
- any request with an `Authorization` header: 403, `x-ms-error-code: AuthenticationFailed`,
  "Authentication scheme Bearer is not supported in this version." (Azure's answer to a SAS plus a Bearer key;
  used for every kind, since that is the failure this double exists to catch);
- a tampered or re-encoded link: 403 AuthenticationFailed "Signature did not match" (azure),
  403 SignatureDoesNotMatch (s3, oss);
- past its expiry: 403 AuthenticationFailed "Signature not valid in the specified time frame: ..." (azure),
  403 AccessDenied "Request has expired" (s3), 403 AccessDenied "Request has expired." (oss);
- unknown blob: 404 BlobNotFound / NoSuchKey.
The clock can be moved (`advance_clock`) to make a link expire on the storage side only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qsl, quote

Kind = Literal["azure", "s3", "oss", "public", "fal", "replicate"]
KINDS: tuple[Kind, ...] = ("azure", "s3", "oss", "public", "fal", "replicate")
# Unsigned public CDNs: `mint_url` gives a plain link and an Authorization header is no refusal (see above).
CDN_KINDS: frozenset[str] = frozenset({"fal", "replicate"})

_SIGNATURE_PARAM = {"azure": "sig", "s3": "X-Amz-Signature", "oss": "Signature"}
_PATTERN = bytes(range(256)) * 256  # 64 KiB block that generated bodies repeat


def generated_body(size: int) -> Iterator[bytes]:
    """The body the double serves for a blob put with `size=`: produced on the fly, never held whole."""
    left = size
    while left > 0:
        block = _PATTERN[: min(left, len(_PATTERN))]
        left -= len(block)
        yield block


def generated_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for block in generated_body(size):
        digest.update(block)
    return digest.hexdigest()


@dataclass
class Blob:
    data: bytes | None = None
    size: int | None = None  # generated body of this many bytes when data is None
    content_type: str | None = "image/png"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0  # before the status line: trips read timeouts
    chunked: bool = False  # no Content-Length, Transfer-Encoding: chunked
    location: str | None = None  # a redirect when set


@dataclass
class RecordedRequest:
    method: str
    raw_target: str  # the request target exactly as received
    kind: str
    name: str
    headers: dict[str, str]  # lower-cased names
    sni: str | None = None
    status: int | None = None
    body_bytes_sent: int = 0
    client_aborted: bool = False


class StorageDouble:
    """A threaded HTTP(S) server on 127.0.0.1 with a random port, speaking signed-storage semantics."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        tls_hostnames: Sequence[str] = (),
        secret: bytes | None = None,
    ) -> None:
        self._host = host
        self._secret = secret or secrets.token_bytes(32)
        self._blobs: dict[tuple[str, str], Blob] = {}
        self._lock = threading.Lock()
        self._clock_offset = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tls_hostnames = tuple(tls_hostnames)
        self._ca_pem: bytes | None = None
        self._sni_by_connection: dict[int, str | None] = {}
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.requests: list[RecordedRequest] = []
        # The strict reading for the CDN kinds: an Authorization header is refused as on signed storage.
        self.cdn_refuses_auth = False

    # lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> StorageDouble:
        server = _Server((self._host, 0), _handler_for(self))
        if self._tls_hostnames:
            server.socket = self._server_tls_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="storage-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> StorageDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    @property
    def scheme(self) -> str:
        return "https" if self._tls_hostnames else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self._host}:{self.port}"

    # content ---------------------------------------------------------------------------------------------------

    def put(
        self,
        name: str,
        data: bytes | None = None,
        *,
        kind: Kind | None = None,
        size: int | None = None,
        content_type: str | None = "image/png",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        delay_seconds: float = 0.0,
        chunked: bool = False,
    ) -> None:
        """Serve `data` (or a generated body of `size` bytes) at `name` under one kind, or under every kind."""
        if (data is None) == (size is None):
            raise ValueError("give exactly one of data or size")
        blob = Blob(
            data=data,
            size=size,
            content_type=content_type,
            status=status,
            headers=dict(headers or {}),
            delay_seconds=delay_seconds,
            chunked=chunked,
        )
        self._store(name, blob, kind)

    def put_redirect(self, name: str, location: str, *, status: int = 302, kind: Kind | None = None) -> None:
        self._store(name, Blob(data=b"", content_type=None, status=status, location=location), kind)

    def _store(self, name: str, blob: Blob, kind: Kind | None) -> None:
        with self._lock:
            for each in (kind,) if kind else KINDS:
                self._blobs[(each, name)] = blob

    # links -----------------------------------------------------------------------------------------------------

    def url(self, name: str, *, host: str | None = None, kind: Kind = "public") -> str:
        """An unsigned link under /public/ (or under a CDN kind, /fal/ or /replicate/)."""
        return f"{self._origin(host)}/{kind}/{name}"

    def mint_url(
        self,
        kind: Kind,
        blob_name: str,
        ttl_seconds: int = 3600,
        *,
        issued_seconds_ago: int = 0,
        host: str | None = None,
    ) -> str:
        """A signed link to `blob_name`, valid `ttl_seconds` after it was issued (`issued_seconds_ago` back).

        `host` replaces 127.0.0.1 in the link (e.g. "acct.blob.core.windows.net"), for tests that resolve that
        name to the double. An expired link: `mint_url(kind, name, 60, issued_seconds_ago=3600)`.
        """
        if kind == "public" or kind in CDN_KINDS:
            return self.url(blob_name, host=host, kind=kind)
        issued = self.now() - issued_seconds_ago
        path = f"/{kind}/{blob_name}"
        if kind == "azure":
            expiry = dt.datetime.fromtimestamp(issued + ttl_seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            query = f"sv=2024-11-04&se={quote(expiry, safe='')}&sr=b&sp=r"
        elif kind == "s3":
            date = dt.datetime.fromtimestamp(issued, dt.UTC)
            credential = quote(f"AKIADOUBLE/{date:%Y%m%d}/auto/s3/aws4_request", safe="")
            query = (
                f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={date:%Y%m%dT%H%M%SZ}"
                f"&X-Amz-Expires={ttl_seconds}&X-Amz-SignedHeaders=host"
            )
        else:
            query = f"Expires={int(issued + ttl_seconds)}&OSSAccessKeyId=LTAIdouble"
        signature = self._sign(kind, path, query)
        return f"{self._origin(host)}{path}?{query}&{_SIGNATURE_PARAM[kind]}={quote(signature, safe='')}"

    def _origin(self, host: str | None) -> str:
        return f"{self.scheme}://{host or self._host}:{self.port}"

    def _sign(self, kind: str, path: str, unsigned_query: str) -> str:
        mac = hmac.new(self._secret, f"{kind}\n{path}\n{unsigned_query}".encode(), hashlib.sha256)
        return mac.hexdigest() if kind == "s3" else base64.b64encode(mac.digest()).decode()

    # clock and records -----------------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the storage's clock only: its links expire for it while a client still thinks them valid."""
        self._clock_offset += seconds

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every request has been answered or abandoned, so its record is final; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._clock_offset = 0.0

    @property
    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this double's certificate authority (TLS mode only)."""
        assert self._ca_pem is not None, "construct with tls_hostnames"
        return ssl.create_default_context(cadata=self._ca_pem.decode())

    def _server_tls_context(self) -> ssl.SSLContext:
        import tempfile

        ca_pem, cert_pem, key_pem = _make_certificates(self._tls_hostnames)
        self._ca_pem = ca_pem
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.NamedTemporaryFile() as cert_file, tempfile.NamedTemporaryFile() as key_file:
            cert_file.write(cert_pem)
            key_file.write(key_pem)
            cert_file.flush()
            key_file.flush()
            context.load_cert_chain(cert_file.name, key_file.name)

        def remember_sni(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
            self._sni_by_connection[id(sock)] = name

        context.sni_callback = remember_sni
        return context

    # serving ---------------------------------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        with self._idle:
            self._in_flight += 1
        try:
            self._serve(handler)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _serve(self, handler: _Handler) -> None:
        raw_target = handler.path
        path, _, query = raw_target.partition("?")
        kind, _, name = path.lstrip("/").partition("/")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        record = RecordedRequest(
            method=handler.command,
            raw_target=raw_target,
            kind=kind,
            name=name,
            headers=headers,
            sni=self._sni_by_connection.get(id(handler.connection)),
        )
        with self._lock:
            self.requests.append(record)
            blob = self._blobs.get((kind, name))
        refusal = self._refusal(kind, path, query, headers)
        if refusal is not None:
            status, reply_headers, body = refusal
            self._reply(handler, record, status, reply_headers, body)
            return
        if blob is None:
            code = "BlobNotFound" if kind == "azure" else "NoSuchKey"
            self._reply(
                handler, record, 404, _xml_headers(kind, code), _xml_error(code, "The specified key does not exist.")
            )
            return
        if blob.delay_seconds:
            time.sleep(blob.delay_seconds)
        self._send_blob(handler, record, blob)

    def _refusal(
        self, kind: str, path: str, query: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        if "authorization" in headers and (kind not in CDN_KINDS or self.cdn_refuses_auth):
            scheme = headers["authorization"].split(" ", 1)[0] or "(empty)"
            return (
                403,
                _xml_headers("azure", "AuthenticationFailed"),
                _azure_auth_failed(f"Authentication scheme {scheme} is not supported in this version."),
            )
        if kind not in _SIGNATURE_PARAM:
            return None
        param = _SIGNATURE_PARAM[kind]
        unsigned, signature = _split_signature(query, param)
        if signature is None or not hmac.compare_digest(signature, self._sign(kind, path, unsigned)):
            if kind == "azure":
                detail = "Signature did not match. String to sign used was r\n" + path
                return 403, _xml_headers(kind, "AuthenticationFailed"), _azure_auth_failed(detail)
            message = "The request signature we calculated does not match the signature you provided."
            return 403, _xml_headers(kind, "SignatureDoesNotMatch"), _xml_error("SignatureDoesNotMatch", message)
        params = dict(parse_qsl(unsigned))
        now = self.now()
        if kind == "azure":
            expiry = dt.datetime.fromisoformat(params["se"]).timestamp()
            if now >= expiry:
                detail = (
                    "Signature not valid in the specified time frame: Start [] - "
                    f"Expiry [{formatdate(expiry, usegmt=True)}] - Current [{formatdate(now, usegmt=True)}]"
                )
                return 403, _xml_headers(kind, "AuthenticationFailed"), _azure_auth_failed(detail)
        elif kind == "s3":
            signed = dt.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
            if now >= signed + int(params["X-Amz-Expires"]):
                return 403, _xml_headers(kind, "AccessDenied"), _xml_error("AccessDenied", "Request has expired")
        elif now >= int(params["Expires"]):
            return 403, _xml_headers(kind, "AccessDenied"), _xml_error("AccessDenied", "Request has expired.")
        return None

    def _send_blob(self, handler: _Handler, record: RecordedRequest, blob: Blob) -> None:
        headers = dict(blob.headers)
        if blob.location is not None:
            headers["Location"] = blob.location
        if blob.content_type is not None:
            headers["Content-Type"] = blob.content_type
        if blob.data is not None:
            self._reply(handler, record, blob.status, headers, blob.data)
            return
        assert blob.size is not None
        if blob.chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(blob.size)
        self._reply(handler, record, blob.status, headers, generated_body(blob.size), chunked=blob.chunked)

    def _reply(
        self,
        handler: _Handler,
        record: RecordedRequest,
        status: int,
        headers: Mapping[str, str],
        body: bytes | Iterator[bytes],
        *,
        chunked: bool = False,
    ) -> None:
        record.status = status
        try:
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            if isinstance(body, bytes):
                handler.send_header("Content-Length", str(len(body)))
                body = iter((body,))
            handler.end_headers()
            for block in body:
                handler.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
                record.body_bytes_sent += len(block)
            if chunked:
                handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            # The client hung up (a size limit or a timeout does that): recorded for the test to assert on.
            record.client_aborted = True
            handler.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that resets a kept-alive connection is routine here (size limits, timeouts); anything else is
        # a bug in the double and is printed.
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as real storage speaks
    timeout = 10  # idle keep-alive connections let their thread go
    double: StorageDouble

    def do_GET(self) -> None:
        self.double._handle(self)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows the recorded requests when a test fails."""


def _handler_for(double: StorageDouble) -> type[_Handler]:
    return type("BoundHandler", (_Handler,), {"double": double})


def _split_signature(query: str, param: str) -> tuple[str, str | None]:
    """The query without its signature parameter (raw, order kept) and the decoded signature."""
    kept: list[str] = []
    signature: str | None = None
    for pair in query.split("&") if query else []:
        key = pair.split("=", 1)[0]
        if key == param:
            decoded = parse_qsl(pair, keep_blank_values=True)
            signature = decoded[0][1] if decoded else ""
        else:
            kept.append(pair)
    return "&".join(kept), signature


def _xml_headers(kind: str, code: str) -> dict[str, str]:
    request_id = str(uuid.uuid4())
    if kind == "azure":
        return {
            "Content-Type": "application/xml",
            "Server": "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0",
            "x-ms-request-id": request_id,
            "x-ms-error-code": code,
        }
    if kind == "oss":
        return {"Content-Type": "application/xml", "Server": "AliyunOSS", "x-oss-request-id": request_id}
    return {"Content-Type": "application/xml", "Server": "AmazonS3", "x-amz-request-id": request_id}


def _azure_auth_failed(detail: str) -> bytes:
    message = (
        "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly"
        f" including the signature.\nRequestId:{uuid.uuid4()}\nTime:{dt.datetime.now(dt.UTC).isoformat()}"
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
        f"<Message>{message}</Message><AuthenticationErrorDetail>{detail}</AuthenticationErrorDetail></Error>"
    ).encode()


def _xml_error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>"
    ).encode()


def _make_certificates(hostnames: Sequence[str]) -> tuple[bytes, bytes, bytes]:
    """A throwaway CA and a leaf certificate for `hostnames` (PEM: ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "storage double CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),  # signing, cert_sign, crl_sign
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for hostname in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
        except ValueError:
            names.append(x509.DNSName(hostname))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        ca.public_bytes(pem),
        cert.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
