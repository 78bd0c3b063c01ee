"""pytest fixtures that run the local stack (`imagegen local`) in the test process."""

# Use from a test module with: pytest_plugins = ["tests.doubles.local_stack"]

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from imagegen.local import LocalStack

ROOT = Path(__file__).resolve().parents[2]

# Short enough that a failed message comes back within a test, long enough for a placeholder job to finish.
TEST_VISIBILITY_TIMEOUT = "3"

StartStack = Callable[..., LocalStack]


@pytest.fixture
def local_stack_factory() -> Iterator[StartStack]:
    """Starts LocalStacks (port 0, a unique stack name each) and stops them all after the test.

    Takes LocalStack's arguments; root defaults to the repository (its template.yaml and functions/).
    """
    stacks: list[LocalStack] = []

    def start(root: Path | str = ROOT, **kwargs: Any) -> LocalStack:
        kwargs.setdefault("port", 0)
        # moto's state is per process: a unique stack name keeps each stack's tables and queues apart.
        kwargs.setdefault("stack_name", f"t{uuid.uuid4().hex[:10]}")
        stack = LocalStack(root, **kwargs)
        stacks.append(stack)
        return stack.start()

    yield start
    for stack in reversed(stacks):
        stack.stop()


@pytest.fixture
def local_stack(local_stack_factory: StartStack) -> LocalStack:
    """The repository's template on a free port: placeholder provider, short visibility timeout, one user.

    stack.url is the API, stack.token the token of user "local", stack.client("s3") a client on the emulator.
    """
    return local_stack_factory(
        env_overrides={
            "IMAGEGEN_PROVIDERS": "placeholder",
            "IMAGEGEN_LOCAL_VISIBILITY_TIMEOUT": TEST_VISIBILITY_TIMEOUT,
            "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "2",
        }
    )
