"""A bounded schemathesis run against the local stack: every check, every phase, zero failures.

It reads /openapi.json from a local stack started in this process (placeholder provider, real workers) and runs the
`st` CLI with `--checks all`: status codes, content types, headers and bodies as the document declares them, schema-
valid requests accepted, schema-invalid ones refused with a 4xx, no 5xx, 405 with Allow for undeclared methods, 401
without the token, and stateful sequences that follow the document's links. tests/fuzz/schemathesis.toml holds the
only settings that differ from schemathesis' defaults, each with its reason.

A longer campaign by hand (with the same settings; failures are written to schemathesis-report/):

    IMAGEGEN_LOCAL_TOKENS=fuzz:tok-fuzz PORT=3100 make run        # in one terminal
    .venv/bin/st --config-file tests/fuzz/schemathesis.toml run http://127.0.0.1:3100/openapi.json \\
        --checks all -H 'Authorization: Bearer tok-fuzz' --max-examples 500 --report junit,har

Add `--max-time 1800` for a time-boxed run, `--seed N` to replay one, and `st replay <id>` for a single case.
Against a deployed stack, use its ApiUrl output (`$ApiUrl/openapi.json`) and a token from `imagegen tokens create`;
expect cases that create jobs to cost provider calls there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from imagegen.local import LocalStack

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.local_stack"]

CONFIG = Path(__file__).with_name("schemathesis.toml")
TOKEN = "tok-fuzz-0001"
# Examples per operation for the fuzzing and stateful phases; the coverage phase adds its own boundary cases, about
# a thousand requests in all, which take about a minute here.
MAX_EXAMPLES = 6
SEED = 20261202
# A hung run must not hold the suite.
TIMEOUT_SECONDS = 240


def test_given_the_local_stack_when_fuzzed_with_every_check_then_schemathesis_finds_nothing(
    local_stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given the stack as `make run` starts it, with a known token
    stack = local_stack_factory(
        env_overrides={
            "IMAGEGEN_LOCAL_TOKENS": f"fuzz:{TOKEN}",
            "IMAGEGEN_PROVIDERS": "placeholder",
            "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "2",
        },
        run_schedules=False,
    )

    # When schemathesis runs every check against its OpenAPI document
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{stack.url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    environment = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    run = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, env=environment, cwd=tmp_path, check=False
    )

    # Then it exits 0: every case passed every check
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20_000:]
    assert "Test cases:" in output
    generated = int(output.split("Test cases:")[1].split("generated")[0].strip())
    assert generated >= 200, output[-3_000:]
