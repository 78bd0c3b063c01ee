"""API Gateway (REST, Lambda proxy) in process: routing, Lambda authorizers, proxy events and gateway responses."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from imagegen.local.function_urls import FunctionUrlRoute, invoke_url
from imagegen.local.logs import LOGGER_NAME
from imagegen.local.spec import ApiSpec, AuthorizerSpec, RouteSpec

log = logging.getLogger(LOGGER_NAME)

Invoke = Callable[[str, Any], Any]  # (function logical id, event) -> result; raises on invocation errors

INTEGRATION_TIMEOUT_SECONDS = 29  # API Gateway's REST integration limit
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024

# API Gateway's own status and message for each response type it can answer without the function.
_RESPONSE_DEFAULTS: dict[str, tuple[int, str]] = {
    "UNAUTHORIZED": (401, "Unauthorized"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "AUTHORIZER_FAILURE": (500, "Internal server error"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "Internal server error"),
    "INTEGRATION_FAILURE": (502, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
}

_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|javascript|x-www-form-urlencoded|problem\+json))$"
)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str  # path and query string, as on the request line
    headers: Sequence[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"
    too_large: bool = False  # the body was over API Gateway's limit and was not read


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class GatewayError(Exception):
    """A response API Gateway answers itself, by gateway response type."""

    def __init__(self, response_type: str) -> None:
        super().__init__(response_type)
        self.response_type = response_type


@dataclass(frozen=True)
class _Route:
    spec: RouteSpec
    api: ApiSpec
    segments: tuple[str, ...]

    @property
    def rank(self) -> tuple[int, ...]:
        # API Gateway prefers a literal segment to a {param}, and a {param} to a greedy {proxy+}.
        return tuple(2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in self.segments)

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.startswith("{") and segment.endswith("+}"):
                if index >= len(parts):
                    return None
                params[segment[1:-2]] = "/".join(parts[index:])
                return params
            if index >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                params[segment[1:-1]] = parts[index]
            elif segment != parts[index]:
                return None
        return params if len(parts) == len(self.segments) else None


@dataclass
class _CachedPolicy:
    expires: float
    response: dict[str, Any]


@dataclass
class Gateway:
    """Turns HTTP requests into REST API proxy events, runs the authorizer first, and maps results back."""

    apis: Mapping[str, ApiSpec]
    routes: Sequence[RouteSpec]
    invoke: Invoke
    region: str
    account_id: str
    # Function URLs served on this port for the routes their Metadata names (imagegen.local.function_urls).
    function_urls: Sequence[FunctionUrlRoute] = ()
    _compiled: list[_Route] = field(default_factory=list)
    _cache: dict[tuple[str, str, tuple[str, ...]], _CachedPolicy] = field(default_factory=dict)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            key = (route.path, route.method)
            if key in seen:
                raise ValueError(f"two functions declare {route.method} {route.path}")
            seen.add(key)
            segments = tuple(part for part in route.path.split("/") if part)
            self._compiled.append(_Route(spec=route, api=self.apis[route.api], segments=segments))

    def handle(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        api = next(iter(self.apis.values()), None)
        try:
            if request.too_large or len(request.body) > MAX_PAYLOAD_BYTES:
                raise GatewayError("REQUEST_TOO_LARGE")
            path, query = _split_target(request.target)
            url_route = self._function_url(request.method, path)
            if url_route is not None:
                return self._invoke_url(url_route, request)
            found = self._route(request.method, path)
            if found is None:
                raise GatewayError("MISSING_AUTHENTICATION_TOKEN")
            route, params, stage_prefixed = found
            api = route.api
            event = _proxy_event(request, route, path, query, params, request_id, stage_prefixed, self.account_id)
            if route.spec.authorizer is not None:
                event["requestContext"]["authorizer"] = self._authorize(route, event)
            return self._integrate(route, event)
        except GatewayError as error:
            return self._gateway_response(api, error.response_type, request_id)

    # Function URLs: no authorizer, no 29 s limit (the function's own Timeout applies), payload format 2.0.

    def _function_url(self, method: str, path: str) -> FunctionUrlRoute | None:
        return next((r for r in self.function_urls if r.path == path and r.method == method.upper()), None)

    def _invoke_url(self, route: FunctionUrlRoute, request: HttpRequest) -> HttpResponse:
        request_line = (request.method, request.target, list(request.headers), request.body, request.source_ip)
        status, headers, body = invoke_url(self.invoke, route, request_line, self.region)
        headers = [(name, value) for name, value in headers if name.lower() not in _HOP_HEADERS]
        return HttpResponse(status=status, headers=headers, body=body)

    # Routing

    def _route(self, method: str, path: str) -> tuple[_Route, dict[str, str], bool] | None:
        parts = [part for part in path.split("/") if part]
        found = self._match(method, parts)
        if found is not None:
            return found[0], found[1], False
        # Also serve the execute-api style path that starts with the stage (/api/v1/...), as links may carry it.
        if parts:
            for route in self._compiled:
                if route.api.stage == parts[0]:
                    found = self._match(method, parts[1:])
                    if found is not None:
                        return found[0], found[1], True
        return None

    def _match(self, method: str, parts: Sequence[str]) -> tuple[_Route, dict[str, str]] | None:
        candidates = [(route, params) for route in self._compiled if (params := route.match(parts)) is not None]
        if not candidates:
            return None
        # The resource is chosen by path alone; a method it lacks is not looked for on a less specific one.
        best_rank = min(route.rank for route, _ in candidates)
        resource = [(route, params) for route, params in candidates if route.rank == best_rank]
        for wanted in (method.upper(), "ANY"):
            for route, params in resource:
                if route.spec.method == wanted:
                    return route, params
        return None

    # Events

    # Authorizer

    def _authorize(self, route: _Route, event: dict[str, Any]) -> dict[str, Any]:
        authorizer = route.api.authorizers[route.spec.authorizer or ""]
        identity = self._identity(authorizer, event)
        method_arn = (
            f"arn:aws:execute-api:{self.region}:{self.account_id}:{route.api.api_id}/{route.api.stage}/"
            f"{event['httpMethod']}{event['path']}"
        )
        cache_key = (route.api.logical_id, authorizer.name, identity)
        response = self._cached(cache_key) if authorizer.ttl_seconds > 0 else None
        started = time.monotonic()
        if response is None:
            response = self._call_authorizer(authorizer, event, method_arn, identity)
            if authorizer.ttl_seconds > 0:
                with self._cache_lock:
                    self._cache[cache_key] = _CachedPolicy(time.monotonic() + authorizer.ttl_seconds, response)
        if not _allows(response.get("policyDocument"), method_arn):
            raise GatewayError("ACCESS_DENIED")
        context = response.get("context") or {}
        if not isinstance(context, dict):
            raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
        result: dict[str, Any] = {"principalId": str(response["principalId"])}
        for key, value in context.items():
            # API Gateway passes context values on as strings and refuses nested objects.
            if isinstance(value, bool):
                result[key] = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                result[key] = str(value)
            else:
                raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
        result["integrationLatency"] = int((time.monotonic() - started) * 1000)
        return result

    @staticmethod
    def _identity(authorizer: AuthorizerSpec, event: dict[str, Any]) -> tuple[str, ...]:
        headers = {name.lower(): value for name, value in (event["headers"] or {}).items()}
        query = event["queryStringParameters"] or {}
        values = tuple(
            [headers.get(name.lower(), "") for name in authorizer.headers]
            + [query.get(name, "") for name in authorizer.query_strings]
        )
        # With caching on (and always for TOKEN), a missing identity source is a 401 without calling the function.
        if (authorizer.ttl_seconds > 0 or authorizer.payload_type == "TOKEN") and not all(values):
            raise GatewayError("UNAUTHORIZED")
        expression = authorizer.validation_expression
        if authorizer.payload_type == "TOKEN" and expression and not re.fullmatch(expression, values[0]):
            raise GatewayError("UNAUTHORIZED")
        return values

    def _cached(self, key: tuple[str, str, tuple[str, ...]]) -> dict[str, Any] | None:
        with self._cache_lock:
            entry = self._cache.get(key)
            if entry is None or entry.expires < time.monotonic():
                self._cache.pop(key, None)
                return None
            return entry.response

    def _call_authorizer(
        self, authorizer: AuthorizerSpec, event: dict[str, Any], method_arn: str, identity: tuple[str, ...]
    ) -> dict[str, Any]:
        if authorizer.payload_type == "TOKEN":
            auth_event: dict[str, Any] = {"type": "TOKEN", "authorizationToken": identity[0], "methodArn": method_arn}
        else:
            context = {key: value for key, value in event["requestContext"].items() if key != "authorizer"}
            auth_event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                "resource": event["resource"],
                "path": event["path"],
                "httpMethod": event["httpMethod"],
                "headers": event["headers"],
                "multiValueHeaders": event["multiValueHeaders"],
                "queryStringParameters": event["queryStringParameters"],
                "multiValueQueryStringParameters": event["multiValueQueryStringParameters"],
                "pathParameters": event["pathParameters"],
                "stageVariables": event["stageVariables"],
                "requestContext": context,
            }
        try:
            response = self.invoke(authorizer.function, auth_event)
        except Exception as exc:  # any authorizer error is an answer, as in API Gateway
            if str(exc) == "Unauthorized":
                raise GatewayError("UNAUTHORIZED") from exc
            log.error("authorizer %s failed: %s", authorizer.function, type(exc).__name__, exc_info=exc)
            raise GatewayError("AUTHORIZER_FAILURE") from exc
        if not (isinstance(response, dict) and isinstance(response.get("principalId"), str)):
            log.error("authorizer %s returned no principalId and policyDocument", authorizer.function)
            raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
        if not isinstance(response.get("policyDocument"), dict):
            log.error("authorizer %s returned no policyDocument", authorizer.function)
            raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
        return response

    # Integration

    def _integrate(self, route: _Route, event: dict[str, Any]) -> HttpResponse:
        started = time.monotonic()
        failure: GatewayError | None = None
        try:
            result = self.invoke(route.spec.function, event)
        except Exception as exc:  # a function error is a 502, as in API Gateway
            log.error("%s failed: %s", route.spec.function, type(exc).__name__, exc_info=exc)
            failure = GatewayError("INTEGRATION_FAILURE")
        # API Gateway stops waiting at 29 s, whatever the function does afterwards.
        if time.monotonic() - started > INTEGRATION_TIMEOUT_SECONDS:
            raise GatewayError("INTEGRATION_TIMEOUT")
        if failure is not None:
            raise failure
        return _proxy_response(route.spec.function, result)

    def _gateway_response(self, api: ApiSpec | None, response_type: str, request_id: str) -> HttpResponse:
        status, message = _RESPONSE_DEFAULTS[response_type]
        responses = api.gateway_responses if api else {}
        fallback = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        spec = responses.get(response_type) or responses.get(fallback)
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        headers.append(("x-amzn-ErrorType", _error_type(response_type)))
        if spec is None or spec.template is None:
            body = json.dumps({"message": message})
        else:
            body = _render(spec.template, message, response_type, request_id)
        if spec is not None:
            if response_type in responses and spec.status is not None:
                status = spec.status
            headers.extend(spec.headers.items())
        return HttpResponse(status=status, headers=headers, body=body.encode())


def _error_type(response_type: str) -> str:
    return {
        "UNAUTHORIZED": "UnauthorizedException",
        "ACCESS_DENIED": "AccessDeniedException",
        "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
        "AUTHORIZER_FAILURE": "AuthorizerFailureException",
        "AUTHORIZER_CONFIGURATION_ERROR": "AuthorizerConfigurationException",
        "REQUEST_TOO_LARGE": "RequestTooLargeException",
        "INTEGRATION_TIMEOUT": "IntegrationTimeoutException",
    }.get(response_type, "InternalServerErrorException")


def _render(template: str, message: str, response_type: str, request_id: str) -> str:
    """Substitutes the $context variables gateway response templates use (they are not full VTL)."""
    values = {
        "$context.error.messageString": json.dumps(message),
        "$context.error.message": message,
        "$context.error.responseType": response_type,
        "$context.requestId": request_id,
        "$context.extendedRequestId": request_id[:18],
    }
    pattern = re.compile("|".join(re.escape(name) for name in sorted(values, key=len, reverse=True)))
    return pattern.sub(lambda match: values[match.group(0)], template)


def _proxy_response(function: str, result: Any) -> HttpResponse:
    """A Lambda proxy result as HTTP; anything malformed is API Gateway's 502."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        log.error("%s returned a malformed proxy response (needs an integer statusCode)", function)
        raise GatewayError("INTEGRATION_FAILURE")
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        log.error("%s returned a malformed proxy response (body must be a string)", function)
        raise GatewayError("INTEGRATION_FAILURE")
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        log.error("%s returned a malformed proxy response (headers must be maps)", function)
        raise GatewayError("INTEGRATION_FAILURE")
    headers: list[tuple[str, str]] = []
    # A name in both maps takes only the multiValueHeaders values, as API Gateway merges them.
    multi_names = {name.lower() for name in multi}
    for name, values in multi.items():
        headers.extend((name, str(value)) for value in (values or []))
    headers.extend((name, str(value)) for name, value in single.items() if name.lower() not in multi_names)
    headers = [(name, value) for name, value in headers if name.lower() not in _HOP_HEADERS]
    payload = b""
    if body:
        if result.get("isBase64Encoded"):
            try:
                payload = base64.b64decode(body, validate=True)
            except binascii.Error as exc:
                log.error("%s returned isBase64Encoded with a body that is not base64", function)
                raise GatewayError("INTEGRATION_FAILURE") from exc
        else:
            payload = body.encode("utf-8")
    return HttpResponse(status=result["statusCode"], headers=headers, body=payload)


_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive"}


def _split_target(target: str) -> tuple[str, str]:
    parts = urlsplit(target)
    return parts.path or "/", parts.query


def _header(request: HttpRequest, name: str) -> str | None:
    for key, value in request.headers:
        if key.lower() == name:
            return value
    return None


def _headers(request: HttpRequest) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in request.headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    # What API Gateway adds in front of the integration.
    forwarded = [*multi.get("X-Forwarded-For", []), request.source_ip]
    for name, values in (
        ("X-Forwarded-For", [", ".join(forwarded)]),
        ("X-Forwarded-Proto", ["http"]),
    ):
        single[name] = values[-1]
        multi[name] = values
    return single, multi


def _media_type_matches(pattern: str, content_type: str) -> bool:
    # BinaryMediaTypes escape the slash for OpenAPI (image~1png); accept both spellings.
    pattern = pattern.replace("~1", "/").lower()
    if pattern == "*/*":
        return bool(content_type)
    if pattern.endswith("/*"):
        return content_type.startswith(pattern[:-1])
    return pattern == content_type


def _allows(policy: Any, method_arn: str) -> bool:
    """IAM evaluation of an authorizer policy for execute-api:Invoke on method_arn: an explicit Deny wins."""
    if not isinstance(policy, dict):
        return False
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = _as_list(statement.get("Action"))
        resources = _as_list(statement.get("Resource"))
        if not any(_wildcard(action, "execute-api:Invoke", ignore_case=True) for action in actions):
            continue
        if not any(_wildcard(resource, method_arn, ignore_case=False) for resource in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _wildcard(pattern: str, value: str, *, ignore_case: bool) -> bool:
    # IAM wildcards: * is any run of characters, ? is one; action names are case-insensitive, ARNs are not.
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, value, flags=re.IGNORECASE if ignore_case else 0) is not None


def _caller_identity(request: HttpRequest) -> dict[str, Any]:
    """requestContext.identity as API Gateway fills it for a call without IAM or Cognito auth."""
    return {
        "cognitoIdentityPoolId": None,
        "accountId": None,
        "cognitoIdentityId": None,
        "caller": None,
        "sourceIp": request.source_ip,
        "principalOrgId": None,
        "accessKey": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": None,
        "userAgent": _header(request, "user-agent"),
        "user": None,
    }


def _proxy_event(
    request: HttpRequest,
    route: _Route,
    path: str,
    query: str,
    params: dict[str, str],
    request_id: str,
    stage_prefixed: bool,
    account_id: str,
) -> dict[str, Any]:
    """The REST API proxy event (payload 1.0) API Gateway sends for this request."""
    stage = route.api.stage
    event_path = "/" + "/".join(path.split("/")[2:]) if stage_prefixed else path
    headers, multi_headers = _headers(request)
    query_pairs = parse_qsl(query, keep_blank_values=True)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query_pairs:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    body, is_base64 = _body(request, route.api)
    now = datetime.now(UTC)
    host = _header(request, "host") or "localhost"
    return {
        "resource": route.spec.path,
        "path": event_path,
        "httpMethod": request.method.upper(),
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": route.api.api_id[:6],
            "resourcePath": route.spec.path,
            "httpMethod": request.method.upper(),
            "extendedRequestId": request_id[:18],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{event_path}" if stage_prefixed else event_path,
            "accountId": account_id,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(".")[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": _caller_identity(request),
            "domainName": host,
            "apiId": route.api.api_id,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _body(request: HttpRequest, api: ApiSpec) -> tuple[str | None, bool]:
    if not request.body:
        return None, False
    content_type = (_header(request, "content-type") or "").split(";")[0].strip().lower()
    binary_type = any(_media_type_matches(pattern, content_type) for pattern in api.binary_media_types)
    if not binary_type and (not content_type or _TEXT_TYPES.match(content_type)):
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode("ascii"), True
