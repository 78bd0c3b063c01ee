"""Cold start guard: a handler imports only its own path (docs/architecture.md "Cold start"; bench/coldstart.py
measures the time). Each handler is loaded in a fresh interpreter, as Lambda loads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("httpx", "imagegen", "PIL"))))
"""


def _loaded(function: str) -> set[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT / "layers" / "common"),
        "POWERTOOLS_SERVICE_NAME": "imagegen",
        # What the template gives every function (the OpenAI function validates its settings at import).
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_NAME": "table",
        "BUCKET_NAME": "bucket",
        "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
    }
    run = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", PROBE, str(ROOT / "functions" / function / "app.py")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    return set(json.loads(run.stdout))


@pytest.mark.parametrize("function", ["api", "authorizer", "openai", "media_proxy"])
def test_given_a_request_handler_when_imported_then_neither_the_provider_chain_nor_httpx_nor_pillow_is_loaded(
    function: str,
) -> None:
    # Given a fresh interpreter; When the handler module is imported as Lambda imports it
    loaded = _loaded(function)

    # Then the chain (which loads every provider and httpx), httpx and Pillow are left to the functions that call out
    assert "imagegen" in loaded or function == "authorizer"
    assert not {name for name in loaded if name == "imagegen.chain" or name.startswith("imagegen.chain.")}
    assert not {name for name in loaded if name.split(".")[0] in ("httpx", "PIL")}
