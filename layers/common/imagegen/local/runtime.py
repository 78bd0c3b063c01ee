"""Runs a function's handler in process, one loaded copy of its module per concurrent invocation."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from imagegen.local.logs import LOGGER_NAME
from imagegen.local.spec import FunctionSpec

log = logging.getLogger(LOGGER_NAME)

_module_counter = itertools.count(1)


class FunctionTimedOut(Exception):
    """The handler returned after its Timeout; Lambda would have stopped it and reported an error."""


@dataclass
class LocalLambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    # A string, as the Python runtime sets it from AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float  # time.monotonic() at which the invocation times out
    function_version: str = "$LATEST"
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class _Container:
    """One execution environment: the handler module loaded once and reused, as a warm Lambda does."""

    module_name: str
    handler: Callable[[Any, Any], Any]


@dataclass
class LocalFunction:
    """A function from the template; invocations run on idle containers, and a busy pool grows (a cold start)."""

    spec: FunctionSpec
    stack_tag: str
    _idle: list[_Container] = field(default_factory=list)
    _all: list[_Container] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _invocations: int = 0
    _errors: int = 0

    def invoke(self, event: Any, *, request_id: str | None = None) -> Any:
        """Runs the handler on event and returns its result; its exceptions propagate, as an invocation error."""
        container = self._checkout()
        started = time.monotonic()
        context = LocalLambdaContext(
            function_name=self.spec.name,
            invoked_function_arn=self.spec.arn,
            memory_limit_in_mb=str(self.spec.memory_mb),
            aws_request_id=request_id or str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{self.spec.name}",
            log_stream_name=f"local/[$LATEST]{container.module_name}",
            deadline=started + self.spec.timeout,
        )
        try:
            result = container.handler(event, context)
        except BaseException:
            self._count_error()
            raise
        finally:
            self._checkin(container)
        elapsed = time.monotonic() - started
        if elapsed > self.spec.timeout:
            self._count_error()
            raise FunctionTimedOut(
                f"{self.spec.logical_id} ran {elapsed:.1f} s, past its Timeout of {self.spec.timeout} s"
            )
        return result

    @property
    def containers(self) -> int:
        """Execution environments created so far (each one was a cold start)."""
        return len(self._all)

    @property
    def invocations(self) -> int:
        return self._invocations

    @property
    def errors(self) -> int:
        """Invocations that raised or ran past the Timeout (what Lambda counts as Errors)."""
        return self._errors

    def _count_error(self) -> None:
        with self._lock:
            self._errors += 1

    def close(self) -> None:
        with self._lock:
            for container in self._all:
                sys.modules.pop(container.module_name, None)
            self._all.clear()
            self._idle.clear()

    def _checkout(self) -> _Container:
        with self._lock:
            self._invocations += 1
            if self._idle:
                return self._idle.pop()
        # Load outside the lock: a cold start must not hold up warm containers being returned.
        container = self._load()
        with self._lock:
            self._all.append(container)
        return container

    def _checkin(self, container: _Container) -> None:
        with self._lock:
            if container in self._all:
                self._idle.append(container)

    def _load(self) -> _Container:
        path = self.spec.handler_file
        # Every handler file is called app.py: each copy gets its own module name, so none shadows another.
        module_name = f"_imagegen_local_{self.stack_tag}_{self.spec.logical_id}_{next(_module_counter)}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise FileNotFoundError(f"{self.spec.logical_id}: no handler module at {path}")
        module: ModuleType = importlib.util.module_from_spec(module_spec)
        # Registered before running it, as an import would be: dataclasses and pydantic look their module up.
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        handler = getattr(module, self.spec.handler_attribute, None)
        if not callable(handler):
            sys.modules.pop(module_name, None)
            raise AttributeError(f"{path} has no function {self.spec.handler_attribute}")
        log.debug("cold start of %s as %s", self.spec.logical_id, module_name)
        return _Container(module_name=module_name, handler=handler)
