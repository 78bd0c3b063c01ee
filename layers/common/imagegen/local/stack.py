"""The local stack: the emulator, the template's resources, the gateway, the SQS pollers and the schedules."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from imagegen.local.cfn import Context, Physical, TemplateError, evaluate_conditions, load_template, parameter_values
from imagegen.local.function_urls import function_url_routes
from imagegen.local.gateway import Gateway
from imagegen.local.logs import LOGGER_NAME
from imagegen.local.pollers import QueuePoller, ScheduleRunner, rate_seconds
from imagegen.local.resources import Clients, Settings, active_resources, create_resources
from imagegen.local.runtime import LocalFunction
from imagegen.local.server import GatewayHttpServer
from imagegen.local.spec import StackSpec, build_spec

log = logging.getLogger(LOGGER_NAME)

# Settings of the local stack itself (read from env_overrides, then the process environment).
TOKENS_VAR = "IMAGEGEN_LOCAL_TOKENS"
CONCURRENCY_VAR = "IMAGEGEN_LOCAL_WORKER_CONCURRENCY"
VISIBILITY_VAR = "IMAGEGEN_LOCAL_VISIBILITY_TIMEOUT"
SCHEDULE_VAR = "IMAGEGEN_LOCAL_SCHEDULE_SECONDS"
DEFAULT_CONCURRENCY = 4
DEFAULT_USER = "local"

# What the local stack changes from the deployed configuration, unless the developer sets these.
LOCAL_DEFAULTS = {
    "IMAGEGEN_PROVIDERS": "placeholder",
    "MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
    # Unset (empty): deployment keys come from SILICONFLOW_API_KEY, HF_TOKEN, ... in the environment, as
    # docs/keys-and-health.md says of local runs; the template's emulated secret holds "{}" and would hide them.
    "PROVIDER_KEYS_SECRET": "",
}
_FAKE_SECRET = "testing"  # noqa: S105 - the emulator's fake credentials

TokenIssuer = Callable[[str, Any, str, "str | None"], str]


class LocalStackError(Exception):
    """The local stack cannot start as configured."""


def issue_with_token_store(table_name: str, dynamodb: Any, user_id: str, token: str | None) -> str:
    """Issues a token through the service's own TokenStore, so that the authorizer finds it."""
    from imagegen.adapters.tokens import TokenStore

    return TokenStore(table_name, dynamodb).issue(user_id, token)


def _forget_service_caches() -> None:
    # imagegen.wiring caches settings and clients per process, read from the environment this stack changes.
    from imagegen import wiring

    wiring.reset()


def parse_tokens(spec: str) -> dict[str, str]:
    """IMAGEGEN_LOCAL_TOKENS: "alice:tokA,bob:tokB" -> {"alice": "tokA", "bob": "tokB"}."""
    tokens: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in spec.split(","))):
        user, separator, token = pair.partition(":")
        if not separator or not user.strip() or not token.strip():
            raise LocalStackError(f"{TOKENS_VAR} takes user:token pairs separated by commas, got {pair!r}")
        tokens[user.strip()] = token.strip()
    return tokens


class LocalStack:
    """Everything `imagegen local` runs, in this process; a context manager that undoes itself on exit.

    The process environment is changed while the stack runs (AWS endpoint and fake credentials, the
    functions' Environment) and restored by stop(): one stack at a time per process.
    """

    def __init__(
        self,
        root: str | Path = ".",
        *,
        template: str | Path = "template.yaml",
        host: str = "127.0.0.1",
        port: int = 3000,
        stack_name: str = "imagegen-local",
        region: str = "us-east-1",
        env_overrides: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        serve_http: bool = True,
        run_workers: bool = True,
        run_schedules: bool = True,
        issue_tokens: bool = True,
        token_issuer: TokenIssuer | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.template_path = (self.root / template).resolve()
        self.host = host
        self.port = port
        self.stack_name = stack_name
        self.region = region
        self.env_overrides = dict(env_overrides or {})
        self.parameter_overrides = dict(parameter_overrides or {})
        self.serve_http = serve_http
        self.run_workers = run_workers
        self.run_schedules = run_schedules
        self.issue_tokens = issue_tokens
        self.token_issuer = token_issuer or issue_with_token_store

        self.spec = StackSpec()
        self.resources: dict[str, Physical] = {}
        self.resource_types: dict[str, str] = {}
        self.functions: dict[str, LocalFunction] = {}
        self.env: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.pollers: list[QueuePoller] = []
        self.schedules: list[ScheduleRunner] = []
        self._stop = threading.Event()
        self._moto: Any = None
        self._http: GatewayHttpServer | None = None
        self._saved_env: dict[str, str] | None = None
        self._added_paths: list[str] = []
        self._werkzeug_level: int | None = None
        self._started = False
        self._tag = re.sub(r"\W", "_", stack_name) + "_" + secrets.token_hex(3)

    # Lifecycle

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        if self._started:
            raise LocalStackError("this LocalStack is already started")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._saved_env = dict(os.environ)
        self._start_emulator()
        template = load_template(self.template_path)
        context = Context(
            region=self.region,
            stack_name=self.stack_name,
            parameters=parameter_values(template, self.parameter_overrides),
            mappings=dict(template.get("Mappings") or {}),
        )
        evaluate_conditions(template, context)
        self.resource_types = create_resources(
            template, context, self.clients, Settings(visibility_timeout=self._int_setting(VISIBILITY_VAR, None))
        )
        self.resources = context.resources
        active = active_resources(template, context)
        self.spec = build_spec(template, active, context, self.root)
        url_routes = function_url_routes(active, context)
        self._apply_function_environment()
        _forget_service_caches()
        for path in dict.fromkeys(path for function in self.spec.functions.values() for path in function.layer_dirs):
            if str(path) not in sys.path:
                sys.path.append(str(path))
                self._added_paths.append(str(path))
        self.functions = {
            logical_id: LocalFunction(spec=function, stack_tag=self._tag)
            for logical_id, function in self.spec.functions.items()
        }
        if self.issue_tokens:
            self._issue_tokens()
        if self.serve_http and (self.spec.routes or url_routes):
            gateway = Gateway(
                apis=self.spec.apis,
                routes=self.spec.routes,
                invoke=self.invoke,
                region=self.region,
                account_id=context.account_id,
                function_urls=url_routes,
            )
            self._http = GatewayHttpServer((self.host, self.port), gateway)
            self._http.start()
        if self.run_workers:
            # Each event source runs as many invocations at once as its ScalingConfig allows (the worker's
            # WorkerMaxConcurrency), unless IMAGEGEN_LOCAL_WORKER_CONCURRENCY says otherwise for all of them.
            override = self._int_setting(CONCURRENCY_VAR, None)
            if override is not None and override < 1:
                raise LocalStackError(f"{CONCURRENCY_VAR} must be at least 1")
            sqs = self.clients.client("sqs")
            for source in self.spec.sqs_sources:
                concurrency = override or source.max_concurrency or DEFAULT_CONCURRENCY
                poller = QueuePoller(source, self.invoke, sqs, self.region, concurrency, self._stop)
                self.pollers.append(poller)
                poller.start()
        if self.run_schedules:
            self._start_schedules(context.account_id)

    def stop(self) -> None:
        """Stops every thread and server, unloads the handlers and restores the process environment."""
        self._stop.set()
        runners: list[QueuePoller | ScheduleRunner] = [*self.pollers, *self.schedules]
        for runner in runners:
            runner.join()
        self.pollers.clear()
        self.schedules.clear()
        if self._http is not None:
            self._http.stop()
            self._http = None
        for function in self.functions.values():
            function.close()
        if self._moto is not None:
            self._stop_emulator()
            self._moto = None
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        self._added_paths.clear()
        if self._werkzeug_level is not None:
            logging.getLogger("werkzeug").setLevel(self._werkzeug_level)
            self._werkzeug_level = None
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None
            _forget_service_caches()

    # What tests and the CLI use

    @property
    def url(self) -> str:
        """Base URL of the gateway, e.g. http://127.0.0.1:3000 (routes start with /v1)."""
        if self._http is None:
            raise LocalStackError("the HTTP gateway is not running (serve_http=False, or no Api events)")
        return self._http.url

    @property
    def aws_endpoint(self) -> str:
        if self._moto is None:
            raise LocalStackError("the local stack is not running")
        host, port = self._moto.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def clients(self) -> Clients:
        return Clients(endpoint=self.aws_endpoint, region=self.region)

    def client(self, service: str) -> Any:
        """A boto3 client bound to the emulator."""
        return self.clients.client(service)

    @property
    def token(self) -> str:
        """The token of the first user (the only one unless IMAGEGEN_LOCAL_TOKENS names several)."""
        if not self.tokens:
            raise LocalStackError("no tokens were issued")
        return next(iter(self.tokens.values()))

    def physical_id(self, logical_id: str) -> str:
        """What Ref of a resource gives: a table or bucket name, a queue URL, a secret ARN."""
        return self.resources[logical_id].ref

    def function(self, name: str) -> LocalFunction:
        """A function by logical id (ApiFunction) or by its code directory (api)."""
        if name in self.functions:
            return self.functions[name]
        for function in self.functions.values():
            if function.spec.code_dir.name == name:
                return function
        raise LocalStackError(f"no function {name!r}; the template declares {', '.join(sorted(self.functions))}")

    def invoke(self, name: str, event: Any) -> Any:
        """Invokes a function as Lambda would (synchronously) and returns its result; errors propagate."""
        return self.function(name).invoke(event)

    # Set-up steps

    def _setting(self, name: str) -> str | None:
        if name in self.env_overrides:
            return self.env_overrides[name]
        return (self._saved_env or os.environ).get(name)

    def _int_setting(self, name: str, default: int | None) -> int | None:
        raw = self._setting(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise LocalStackError(f"{name} must be a whole number, got {raw!r}") from exc
        if value < 0:
            raise LocalStackError(f"{name} must not be negative, got {value}")
        return value

    def _start_emulator(self) -> None:
        try:
            from moto.server import ThreadedMotoServer

            from imagegen.local.emulator import serialize_dynamodb
            from imagegen.local.resolvers import isolate_resolvers
        except ImportError as exc:
            raise LocalStackError("the local stack needs moto's server: pip install 'moto[server]'") from exc

        # The emulator logs every request through werkzeug; the SQS pollers alone would flood the console.
        werkzeug = logging.getLogger("werkzeug")
        self._werkzeug_level = werkzeug.level
        werkzeug.setLevel(logging.WARNING)
        serialize_dynamodb()
        isolate_resolvers()
        # Port 0: the OS picks a free port, so stacks (and other emulators) never collide.
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        _point_at_emulator(self.aws_endpoint, self.region)

    def _stop_emulator(self) -> None:
        _stop_moto(self._moto)

    def _apply_function_environment(self) -> None:
        template_env = template_environment(self.spec)
        developer = self._saved_env or {}
        applied = {**template_env, **LOCAL_DEFAULTS}
        for name in applied:
            if name in developer and name in template_env and developer[name] != template_env[name]:
                log.warning("%s comes from your environment, not from the template", name)
        applied.update({name: value for name, value in developer.items() if name in applied})
        applied.update(self.env_overrides)
        # The emulator settings stay, whatever the overrides say.
        for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            applied[name] = os.environ[name]
        os.environ.update(applied)
        self.env = {name: os.environ[name] for name in sorted({*template_env, *LOCAL_DEFAULTS, *self.env_overrides})}

    def _issue_tokens(self) -> None:
        wanted = parse_tokens(self._setting(TOKENS_VAR) or "")
        table = os.environ.get("TABLE_NAME")
        if not table:
            raise LocalStackError("cannot issue tokens: no function has TABLE_NAME in its Environment")
        dynamodb = self.client("dynamodb")
        users: dict[str, str | None] = {**wanted} if wanted else {DEFAULT_USER: None}
        for user, token in users.items():
            self.tokens[user] = self.token_issuer(table, dynamodb, user, token)

    def _start_schedules(self, account_id: str) -> None:
        # IMAGEGEN_LOCAL_SCHEDULE_SECONDS: how many real seconds stand for one minute of schedule time.
        seconds_per_minute = self._setting(SCHEDULE_VAR)
        try:
            scale = float(seconds_per_minute) / 60 if seconds_per_minute else 1.0
        except ValueError as exc:
            raise LocalStackError(f"{SCHEDULE_VAR} must be a number of seconds") from exc
        if scale <= 0:
            raise LocalStackError(f"{SCHEDULE_VAR} must be positive")
        for schedule in self.spec.schedules:
            period = rate_seconds(schedule.expression)
            if period is None:
                log.warning(
                    "%s: %s is not run locally (only rate() is); use `imagegen local invoke`",
                    schedule.function,
                    schedule.expression,
                )
                continue
            runner = ScheduleRunner(schedule, period * scale, self.invoke, self.region, account_id, self._stop)
            self.schedules.append(runner)
            runner.start()


def template_environment(spec: StackSpec) -> dict[str, str]:
    """Every function's Environment as one mapping: all functions share this process, so one name, one value."""
    merged: dict[str, str] = {}
    owners: dict[str, str] = {}
    for logical_id, function in spec.functions.items():
        for name, value in function.environment.items():
            if name in merged and merged[name] != value:
                raise LocalStackError(
                    f"{owners[name]} and {logical_id} set {name} to different values "
                    f"({merged[name]!r} and {value!r}); the local stack runs all functions in one "
                    "process, so one name must mean one value"
                )
            merged[name] = value
            owners.setdefault(name, logical_id)
    return merged


def _point_at_emulator(endpoint: str, region: str) -> None:
    aws = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": _FAKE_SECRET,
        "AWS_SECRET_ACCESS_KEY": _FAKE_SECRET,
        "AWS_SESSION_TOKEN": _FAKE_SECRET,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
    # Anything that could send a client past the emulator, or to a real account, goes.
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
            del os.environ[name]
    os.environ.update(aws)


def _stop_moto(moto: Any) -> None:
    host, port = moto.get_host_and_port()
    stopper = threading.Thread(target=moto.stop, name="imagegen-local-moto-stop")
    stopper.start()
    # The emulator's server checks for shutdown between polls of 0.5 s; a connection attempt wakes it now.
    while stopper.is_alive():
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            pass
        stopper.join(0.05)
    # ThreadedMotoServer.stop() leaves the listening socket open.
    server = getattr(moto, "_server", None)
    if server is not None:
        server.server_close()


__all__ = ["LocalStack", "LocalStackError", "TemplateError", "issue_with_token_store", "parse_tokens"]
