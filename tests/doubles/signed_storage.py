"""Minimal signed-storage double (OSS / Azure SAS / S3-R2 presigned): expiring links, refusing any Authorization."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from tests.doubles.server import DoubleServer, Recorded, Reply

_SECRET = b"storage-double-signing-key"

AZURE_BEARER = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to '
    "authenticate the request. Make sure the value of Authorization header is formed correctly including the "
    "signature.</Message><AuthenticationErrorDetail>Authentication scheme Bearer is not supported in this version."
    "</AuthenticationErrorDetail></Error>"
)
AZURE_EXPIRED = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to '
    "authenticate the request.</Message><AuthenticationErrorDetail>Signature not valid in the specified time "
    "frame</AuthenticationErrorDetail></Error>"
)
_XML = '<?xml version="1.0" encoding="UTF-8"?>'
OSS_EXPIRED = _XML + "<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>"
S3_DENIED = _XML + "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
S3_BAD_AUTH = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code><Message>Only one auth mechanism '
    "allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization "
    "header should be specified</Message></Error>"
)


def _sign(path: str, expires: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(_SECRET, f"{path}\n{expires}".encode(), hashlib.sha256).digest()).decode()


class SignedStorageDouble:
    """put() stores bytes and returns a signed URL in one of three styles; GET checks signature, expiry and auth."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.server = DoubleServer(self._handle)

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests

    def put(
        self, data: bytes, content_type: str, *, style: str = "oss", ttl: float = 3600, suffix: str = ".png"
    ) -> str:
        key = f"outputs/{uuid.uuid4().hex}{suffix}"
        path = f"/bucket/{key}"
        self.objects[path] = (data, content_type)
        now = self.clock()
        if style == "oss":
            expires = str(int(now + ttl))
            query = {"Expires": expires, "OSSAccessKeyId": "LTAI-double", "Signature": _sign(path, expires)}
        elif style == "azure":
            se = datetime.fromtimestamp(now + ttl, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            query = {"sv": "2024-08-04", "sr": "b", "sp": "r", "se": se, "spr": "https", "sig": _sign(path, se)}
        elif style == "s3":
            amz_date = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
            query = {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": "double/20260101/auto/s3/aws4_request",
                "X-Amz-Date": amz_date,
                "X-Amz-Expires": str(int(ttl)),
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": _sign(path, f"{amz_date}/{int(ttl)}"),
            }
        else:
            raise ValueError(style)
        return f"{self.server.url}{quote(path)}?{urlencode(query)}"

    def _handle(self, request: Recorded) -> Reply:
        q = request.query
        xml = {"content-type": "application/xml"}
        if "sig" in q:
            if "authorization" in request.headers:
                return Reply(403, AZURE_BEARER.encode(), {**xml, "x-ms-error-code": "AuthenticationFailed"})
            expiry = datetime.strptime(q.get("se", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            if not hmac.compare_digest(q["sig"], _sign(request.path, q.get("se", ""))) or self.clock() > expiry:
                return Reply(403, AZURE_EXPIRED.encode(), {**xml, "x-ms-error-code": "AuthenticationFailed"})
        elif "Signature" in q:
            if "authorization" in request.headers:
                return Reply(
                    403, OSS_EXPIRED.replace("Request has expired.", "Authorization not allowed.").encode(), xml
                )
            if not hmac.compare_digest(q["Signature"], _sign(request.path, q.get("Expires", ""))):
                return Reply(403, OSS_EXPIRED.encode(), xml)
            if self.clock() > int(q.get("Expires", "0")):
                return Reply(403, OSS_EXPIRED.encode(), xml)
        elif "X-Amz-Signature" in q:
            if "authorization" in request.headers:
                return Reply(400, S3_BAD_AUTH.encode(), xml)
            signed = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expiry = (signed + timedelta(seconds=int(q["X-Amz-Expires"]))).timestamp()
            token = f"{q['X-Amz-Date']}/{q['X-Amz-Expires']}"
            if not hmac.compare_digest(q["X-Amz-Signature"], _sign(request.path, token)) or self.clock() > expiry:
                return Reply(403, S3_DENIED.encode(), xml)
        else:
            return Reply(403, S3_DENIED.encode(), xml)
        found = self.objects.get(request.path)
        if found is None:
            return Reply(404, b"<Error><Code>NoSuchKey</Code></Error>", xml)
        data, content_type = found
        return Reply(200, data, {"content-type": content_type})

    def close(self) -> None:
        self.server.close()
