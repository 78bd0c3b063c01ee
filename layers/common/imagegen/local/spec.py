"""What the template says about functions, their triggers and the REST APIs in front of them."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen.local.cfn import Context, Physical, Resolver, TemplateError, scalar_string
from imagegen.local.logs import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)

IMPLICIT_API = "ServerlessRestApi"  # the API SAM creates for Api events without a RestApiId
FUNCTION_TYPES = ("AWS::Serverless::Function",)
API_TYPES = ("AWS::Serverless::Api",)


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    timeout: int
    memory_mb: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...]

    @property
    def handler_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class AuthorizerSpec:
    name: str
    function: str  # logical id
    payload_type: str  # REQUEST | TOKEN
    headers: tuple[str, ...]
    query_strings: tuple[str, ...]
    ttl_seconds: int
    validation_expression: str | None = None


@dataclass(frozen=True)
class GatewayResponseSpec:
    status: int | None
    headers: dict[str, str]
    template: str | None


@dataclass(frozen=True)
class ApiSpec:
    logical_id: str
    api_id: str
    stage: str
    authorizers: dict[str, AuthorizerSpec]
    default_authorizer: str | None
    gateway_responses: dict[str, GatewayResponseSpec]
    binary_media_types: tuple[str, ...]


@dataclass(frozen=True)
class RouteSpec:
    api: str  # logical id
    path: str
    method: str  # upper case, or ANY
    function: str  # logical id
    authorizer: str | None


@dataclass(frozen=True)
class SqsSourceSpec:
    function: str
    queue_arn: str
    queue_url: str
    batch_size: int
    report_batch_item_failures: bool
    # ScalingConfig.MaximumConcurrency: at most this many invocations at once (None: Lambda's own scaling).
    max_concurrency: int | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    function: str
    name: str
    expression: str
    input: str | None
    event_type: str  # Schedule | ScheduleV2


@dataclass
class StackSpec:
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    apis: dict[str, ApiSpec] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    sqs_sources: list[SqsSourceSpec] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)


def merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (the resource wins), lists concatenate (globals first), scalars override."""
    merged = copy.deepcopy(dict(global_props))
    for key, value in props.items():
        current = merged.get(key)
        if (
            isinstance(current, dict)
            and isinstance(value, dict)
            and not _is_intrinsic(current)
            and not _is_intrinsic(value)
        ):
            merged[key] = merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref"))


def build_spec(
    template: Mapping[str, Any], resources: Mapping[str, dict[str, Any]], context: Context, root: Path
) -> StackSpec:
    """Reads functions and their events; resources is the active (condition-filtered) Resources section."""
    resolver = Resolver(context)
    globals_section = template.get("Globals") or {}
    spec = StackSpec()
    arn_to_function: dict[str, str] = {}

    for logical_id, resource in resources.items():
        if resource["Type"] in FUNCTION_TYPES:
            props = merge_globals(globals_section.get("Function") or {}, resource.get("Properties") or {})
            function = _function_spec(logical_id, props, resources, resolver, context, root)
            spec.functions[logical_id] = function
            arn_to_function[function.arn] = logical_id

    for logical_id, resource in resources.items():
        if resource["Type"] in API_TYPES:
            props = merge_globals(globals_section.get("Api") or {}, resource.get("Properties") or {})
            spec.apis[logical_id] = _api_spec(logical_id, props, resolver, context, arn_to_function)

    for logical_id, resource in resources.items():
        if resource["Type"] not in FUNCTION_TYPES:
            continue
        events = (resource.get("Properties") or {}).get("Events") or {}
        for event_name, event in events.items():
            _add_event(spec, logical_id, event_name, event, resolver, globals_section, context, arn_to_function)
    return spec


def _function_spec(
    logical_id: str,
    props: dict[str, Any],
    resources: Mapping[str, dict[str, Any]],
    resolver: Resolver,
    context: Context,
    root: Path,
) -> FunctionSpec:
    code_uri = resolver.resolve(props.get("CodeUri"))
    handler = resolver.resolve(props.get("Handler"))
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{logical_id}: local invocation needs a local CodeUri and a module.function Handler")
    variables = (props.get("Environment") or {}).get("Variables") or {}
    environment = {name: scalar_string(resolver.resolve(value)) for name, value in variables.items()}
    layer_dirs = []
    for layer in props.get("Layers") or []:
        # Only layers declared in this template have local content; a layer ARN from elsewhere does not.
        if isinstance(layer, dict) and "Ref" in layer and layer["Ref"] in resources:
            layer_props = resources[layer["Ref"]].get("Properties") or {}
            content = resolver.resolve(layer_props.get("ContentUri"))
            if isinstance(content, str):
                layer_dirs.append((root / content).resolve())
    physical = context.resources[logical_id]
    return FunctionSpec(
        logical_id=logical_id,
        name=physical.ref,
        arn=physical.attrs["Arn"],
        code_dir=(root / code_uri).resolve(),
        handler=handler,
        timeout=int(scalar_string(resolver.resolve(props.get("Timeout", 3)))),
        memory_mb=int(scalar_string(resolver.resolve(props.get("MemorySize", 128)))),
        environment=environment,
        layer_dirs=tuple(layer_dirs),
    )


def _api_spec(
    logical_id: str, props: dict[str, Any], resolver: Resolver, context: Context, arn_to_function: Mapping[str, str]
) -> ApiSpec:
    auth = props.get("Auth") or {}
    authorizers = {}
    for name, raw in (auth.get("Authorizers") or {}).items():
        authorizers[name] = _authorizer_spec(logical_id, name, raw, resolver, arn_to_function)
    responses = {}
    for kind, raw in (props.get("GatewayResponses") or {}).items():
        parameters = (raw.get("ResponseParameters") or {}).get("Headers") or {}
        templates = raw.get("ResponseTemplates") or {}
        status = raw.get("StatusCode")
        responses[kind.upper()] = GatewayResponseSpec(
            status=int(scalar_string(resolver.resolve(status))) if status is not None else None,
            # Static header values are quoted ('Bearer'); request mappings are not emulated.
            headers={
                header: value[1:-1]
                for header, value in resolver.resolve(parameters).items()
                if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == "'"
            },
            template=templates.get("application/json") or next(iter(templates.values()), None),
        )
    return ApiSpec(
        logical_id=logical_id,
        api_id=context.resources[logical_id].ref,
        stage=scalar_string(resolver.resolve(props.get("StageName", "Prod"))),
        authorizers=authorizers,
        default_authorizer=auth.get("DefaultAuthorizer"),
        gateway_responses=responses,
        binary_media_types=tuple(resolver.resolve(props.get("BinaryMediaTypes") or [])),
    )


def _authorizer_spec(
    api: str, name: str, raw: Mapping[str, Any], resolver: Resolver, arn_to_function: Mapping[str, str]
) -> AuthorizerSpec:
    if "FunctionArn" not in raw:
        raise TemplateError(f"{api}: authorizer {name} is not a Lambda authorizer; not emulated locally")
    function_arn = resolver.resolve(raw["FunctionArn"])
    if function_arn not in arn_to_function:
        raise TemplateError(f"{api}: authorizer {name} names a function this template does not declare")
    identity = raw.get("Identity") or {}
    payload_type = str(raw.get("FunctionPayloadType", "TOKEN")).upper()
    if payload_type == "TOKEN":
        headers: tuple[str, ...] = (str(identity.get("Header", "Authorization")),)
        query_strings: tuple[str, ...] = ()
    else:
        headers = tuple(identity.get("Headers") or ())
        query_strings = tuple(identity.get("QueryStrings") or ())
    return AuthorizerSpec(
        name=name,
        function=arn_to_function[function_arn],
        payload_type=payload_type,
        headers=headers,
        query_strings=query_strings,
        ttl_seconds=int(scalar_string(resolver.resolve(identity.get("ReauthorizeEvery", 300)))),
        validation_expression=identity.get("ValidationExpression"),
    )


def _add_event(
    spec: StackSpec,
    function: str,
    event_name: str,
    event: Mapping[str, Any],
    resolver: Resolver,
    globals_section: Mapping[str, Any],
    context: Context,
    arn_to_function: Mapping[str, str],
) -> None:
    kind = event.get("Type")
    props = event.get("Properties") or {}
    where = f"{function}.{event_name}"
    if kind == "Api":
        api_id = _api_of(spec, where, props, resolver, globals_section, context, arn_to_function)
        spec.routes.append(_route(spec.apis[api_id], api_id, function, where, props, resolver))
    elif kind == "SQS":
        if scalar_string(resolver.resolve(props.get("Enabled", True))) == "true":
            spec.sqs_sources.append(_sqs_source(function, where, props, resolver, context))
    elif kind in ("Schedule", "ScheduleV2"):
        enabled = props.get("Enabled", True)
        state = props.get("State", "ENABLED")
        if scalar_string(resolver.resolve(enabled)) == "true" and resolver.resolve(state) == "ENABLED":
            spec.schedules.append(_schedule(function, event_name, kind, props, resolver))
    else:
        # HttpApi, S3, DynamoDB streams and the rest have no local trigger; `imagegen local invoke` still works.
        log.info("event %s.%s (%s) is not triggered locally", function, event_name, kind)


def _api_of(
    spec: StackSpec,
    where: str,
    props: Mapping[str, Any],
    resolver: Resolver,
    globals_section: Mapping[str, Any],
    context: Context,
    arn_to_function: Mapping[str, str],
) -> str:
    """The API an Api event belongs to; SAM's implicit API is created on first use, as SAM does."""
    api = props.get("RestApiId", {"Ref": IMPLICIT_API})
    if not (isinstance(api, dict) and "Ref" in api):
        raise TemplateError(f"{where}: RestApiId must be a Ref to an API in this template")
    api_id = str(api["Ref"])
    if api_id not in spec.apis:
        if api_id != IMPLICIT_API:
            raise TemplateError(f"{where}: no API {api_id} in this template")
        context.resources.setdefault(api_id, Physical(ref="implicitapi"))
        implicit_props = globals_section.get("Api") or {}
        spec.apis[api_id] = _api_spec(api_id, dict(implicit_props), resolver, context, arn_to_function)
    return api_id


def _route(
    api_spec: ApiSpec, api_id: str, function: str, where: str, props: Mapping[str, Any], resolver: Resolver
) -> RouteSpec:
    auth = props.get("Auth") or {}
    authorizer = auth.get("Authorizer", api_spec.default_authorizer)
    if authorizer == "NONE":
        authorizer = None
    if authorizer is not None and authorizer not in api_spec.authorizers:
        raise TemplateError(f"{where}: authorizer {authorizer} is not emulated locally")
    return RouteSpec(
        api=api_id,
        path=str(resolver.resolve(props["Path"])),
        method=str(resolver.resolve(props["Method"])).upper(),
        function=function,
        authorizer=authorizer,
    )


def _sqs_source(
    function: str, where: str, props: Mapping[str, Any], resolver: Resolver, context: Context
) -> SqsSourceSpec:
    queue_arn = resolver.resolve(props["Queue"])
    queue_url = next(
        (physical.ref for physical in context.resources.values() if physical.attrs.get("Arn") == queue_arn), None
    )
    if queue_url is None:
        raise TemplateError(f"{where}: queue {queue_arn} is not declared in this template")
    return SqsSourceSpec(
        function=function,
        queue_arn=queue_arn,
        queue_url=queue_url,
        batch_size=int(scalar_string(resolver.resolve(props.get("BatchSize", 10)))),
        report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        max_concurrency=_max_concurrency(props, resolver),
    )


def _max_concurrency(props: Mapping[str, Any], resolver: Resolver) -> int | None:
    scaling = props.get("ScalingConfig") or {}
    value = scaling.get("MaximumConcurrency") if isinstance(scaling, Mapping) else None
    return None if value is None else int(scalar_string(resolver.resolve(value)))


def _schedule(function: str, event_name: str, kind: str, props: Mapping[str, Any], resolver: Resolver) -> ScheduleSpec:
    raw_input = props.get("Input")
    return ScheduleSpec(
        function=function,
        name=str(props.get("Name") or f"{function}{event_name}"),
        expression=str(resolver.resolve(props["Schedule" if kind == "Schedule" else "ScheduleExpression"])),
        input=None if raw_input is None else str(resolver.resolve(raw_input)),
        event_type=kind,
    )
