"""Lambda function URLs in process: which functions have one, the payload 2.0 event Lambda sends, and its answer.

A deployed function URL has a host of its own. Locally it shares the gateway's port: a function with a
FunctionUrlConfig names the routes it serves there in its Metadata (`LocalGateway: {Routes: ["POST /path"]}`), and
those requests go to it directly, with no authorizer and no 29 s integration limit (its own Timeout applies).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from imagegen.local.cfn import Context, Resolver, TemplateError
from imagegen.local.logs import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)

METADATA_KEY = "LocalGateway"
# Lambda passes these content types to the function as text; anything else arrives base64-encoded.
_TEXT_TYPES = re.compile(r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|javascript|x-www-form-urlencoded))$")


@dataclass(frozen=True)
class FunctionUrlRoute:
    method: str  # upper case
    path: str
    function: str  # logical id
    url_id: str  # the URL's host label, as Lambda makes it up


def function_url_routes(resources: Mapping[str, dict[str, Any]], context: Context) -> list[FunctionUrlRoute]:
    """The routes each function with a FunctionUrlConfig serves on the local gateway's port."""
    resolver = Resolver(context)
    routes: list[FunctionUrlRoute] = []
    for logical_id, resource in resources.items():
        config = (resource.get("Properties") or {}).get("FunctionUrlConfig")
        if resource.get("Type") != "AWS::Serverless::Function" or not config:
            continue
        declared = ((resource.get("Metadata") or {}).get(METADATA_KEY) or {}).get("Routes") or []
        if not declared:
            log.info("%s has a function URL but no %s.Routes: not served locally", logical_id, METADATA_KEY)
        url_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{context.stack_name}/{logical_id}").hex
        for entry in declared:
            method, _, path = str(resolver.resolve(entry)).partition(" ")
            if not path.startswith("/"):
                raise TemplateError(f"{logical_id}: {METADATA_KEY}.Routes entries are 'METHOD /path', got {entry!r}")
            routes.append(FunctionUrlRoute(method.upper(), path, logical_id, url_id))
    return routes


def url_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str,
    route: FunctionUrlRoute,
    region: str,
) -> dict[str, Any]:
    """The event Lambda sends a function through its URL (payload format 2.0)."""
    parts = urlsplit(target)
    merged, cookies = _headers(headers)
    domain = f"{route.url_id}.lambda-url.{region}.on.aws"
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": {**merged, "host": domain, "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": route.url_id,
            "domainName": domain,
            "domainPrefix": route.url_id,
            "http": {
                "method": method.upper(),
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"], event["isBase64Encoded"] = _body(body, merged.get("content-type", ""))
    return event


def _headers(headers: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            # Lambda joins repeated headers with commas, as HTTP allows.
            merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged, cookies


def _body(body: bytes, content_type: str) -> tuple[str, bool]:
    media_type = content_type.split(";")[0].strip().lower()
    if not media_type or _TEXT_TYPES.match(media_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


Invoke = Callable[[str, Any], Any]
RequestLine = tuple[str, str, list[tuple[str, str]], bytes, str]  # method, target, headers, body, source ip


def invoke_url(
    invoke: Invoke, route: FunctionUrlRoute, request: RequestLine, region: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Invokes the route's function as its URL would, and answers as the URL would (a function error is a 502)."""
    method, target, headers, body, source_ip = request
    event = url_event(method, target, headers, body, source_ip=source_ip, route=route, region=region)
    request_id = ("x-amzn-RequestId", event["requestContext"]["requestId"])
    try:
        status, answer_headers, answer = url_response(invoke(route.function, event))
    except Exception as exc:  # any function error, as Lambda's URL answers it
        log.error("%s failed: %s", route.function, type(exc).__name__, exc_info=exc)
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "FunctionError"), request_id]
        return 502, headers, b'{"Message":"Internal Server Error"}'
    return status, [*answer_headers, request_id], answer


class UrlResultError(Exception):
    """The function's result is not something Lambda could turn into an HTTP response."""


def url_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a function URL's answer. A result without statusCode is sent as JSON with 200,
    as Lambda does."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, [("Content-Type", "application/json")], json.dumps(result).encode()
    status = result["statusCode"]
    if not isinstance(status, int):
        raise UrlResultError("statusCode must be an integer")
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body = result.get("body")
    if body is None:
        return status, headers, b""
    if not isinstance(body, str):
        raise UrlResultError("body must be a string")
    if result.get("isBase64Encoded"):
        try:
            return status, headers, base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise UrlResultError("isBase64Encoded with a body that is not base64") from exc
    return status, headers, body.encode("utf-8")
