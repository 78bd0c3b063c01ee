"""Cold-start import cost of each handler module in a Lambda-like environment, next to two baselines measured in the
same run: a bare `import boto3`, and a handler that imports boto3 and makes one client."""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layers" / "common"))
from _results import write_section

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
RUNS = 11
# Ratios to a bare `import boto3`: the bound, and its goal.
TARGET = 2.0
GOAL = 1.5

# Runs in a fresh interpreter: load one module by path, print the seconds the import took; then build what the
# function's first request builds (settings, clients, services: no network call) and print the seconds to there.
PROBE = """
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter()
{first_use}
print(imported - start, time.perf_counter() - start)
"""

# What each function's first request builds through imagegen.wiring (the API: a job route's service).
FIRST_USE = {
    "api": "from imagegen import wiring; wiring.job_service()",
    "authorizer": "from imagegen import wiring; wiring.token_store()",
    "media_proxy": "from imagegen import wiring; wiring.media_proxy()",
    "openai": "from imagegen import wiring; wiring.job_service(); wiring.batch_service(); wiring.token_store()",
    "scheduled": "from imagegen import wiring; wiring.scheduled_run()",
    "webhooks": "from imagegen import wiring; wiring.webhook_delivery()",
    "worker": "from imagegen import wiring; wiring.worker()",
}

# The same script run on the code before issue 9's restructuring (commit 58921c8), for comparison: ÷ bare boto3.
BEFORE = {"api": 2.21, "authorizer": 1.87, "media_proxy": 2.16, "scheduled": 1.75, "webhooks": 2.05, "worker": 2.20}

BARE_BOTO3 = "import boto3\n"

BOTO3_CLIENT = """import boto3

client = boto3.client("s3", region_name="us-east-1")


def lambda_handler(event, context):
    return {"statusCode": 200}
"""


class _AnyAttribute(dict[str, str]):
    """GetAtt of any attribute of a resource that is not created here: a name that says where it came from."""

    def __init__(self, logical_id: str) -> None:
        super().__init__()
        self.logical_id = logical_id

    def __contains__(self, attribute: object) -> bool:
        return True

    def __missing__(self, attribute: str) -> str:
        return f"{self.logical_id}-{attribute}"


def function_environments() -> dict[str, dict[str, str]]:
    """Each function's Environment as the template sets it (Globals merged; Refs resolved to stand-in names)."""
    from imagegen.local.cfn import Context, Physical, Resolver, evaluate_conditions, load_template, parameter_values
    from imagegen.local.spec import merge_globals

    template = load_template(ROOT / "template.yaml")
    context = Context(
        region="us-east-1",
        stack_name="coldstart",
        parameters=parameter_values(template, {}),
        mappings=dict(template.get("Mappings") or {}),
    )
    evaluate_conditions(template, context)
    for logical_id in template["Resources"]:
        context.resources[logical_id] = Physical(ref=f"{logical_id}-ref", attrs=_AnyAttribute(logical_id))
    resolver = Resolver(context)
    globals_function = (template.get("Globals") or {}).get("Function") or {}
    environments: dict[str, dict[str, str]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props: dict[str, Any] = merge_globals(globals_function, resource.get("Properties") or {})
        variables = resolver.resolve((props.get("Environment") or {}).get("Variables") or {})
        environments[Path(str(props["CodeUri"])).name] = {name: str(value) for name, value in variables.items()}
    return environments


def lambda_env(variables: dict[str, str]) -> dict[str, str]:
    """What a Lambda python runtime sees: the function's variables, the region, the layer on the path."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(LAYER),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        **variables,
    }


def import_once(name: str, path: Path, env: dict[str, str]) -> tuple[float, float]:
    code = PROBE.format(path=str(path), first_use=FIRST_USE.get(name, ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    imported, used = out.stdout.split()
    return float(imported), float(used)


def interleaved(targets: dict[str, tuple[Path, dict[str, str]]]) -> dict[str, list[tuple[float, float]]]:
    """RUNS rounds; each round runs every target once, in a shuffled order, so a busy machine slows the baselines
    and the handlers alike rather than whichever ran during the busy spell."""
    rng = random.Random(7)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for _ in range(RUNS):
        order = list(targets)
        rng.shuffle(order)
        for name in order:
            path, env = targets[name]
            samples[name].append(import_once(name, path, env))
    return samples


def median_ratio(samples: list[tuple[float, float]], baseline: list[tuple[float, float]]) -> float:
    """The median of the per-round ratios: each round's import against the baseline measured in that round."""
    return statistics.median(mine[0] / base[0] for mine, base in zip(samples, baseline, strict=True))


def heaviest_imports(path: Path, env: dict[str, str], top: int = 5) -> list[tuple[str, int]]:
    code = PROBE.format(path=str(path), first_use="")
    stderr = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env
    ).stderr
    rows = []
    for line in stderr.splitlines():
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        # Top-level packages only (no dot, no indent): the ones worth deferring.
        if len(parts) == 3 and parts[1].isdigit() and "." not in parts[2]:
            rows.append((parts[2], int(parts[1])))
    return sorted(rows, key=lambda row: -row[1])[:top]


def before(name: str) -> str:
    """The ratio before issue 9, or a dash for a function that did not exist then (openai)."""
    return f"{BEFORE[name]:.2f}×" if name in BEFORE else "–"


def main() -> None:
    environments = function_environments()
    handlers = {path.parent.name: path for path in sorted((ROOT / "functions").glob("*/app.py"))}
    with tempfile.TemporaryDirectory() as folder:
        bare_path, client_path = Path(folder) / "bare.py", Path(folder) / "client.py"
        bare_path.write_text(BARE_BOTO3)
        client_path.write_text(BOTO3_CLIENT)
        targets = {"(bare)": (bare_path, lambda_env({})), "(client)": (client_path, lambda_env({}))}
        targets.update({name: (path, lambda_env(environments.get(name, {}))) for name, path in handlers.items()})
        samples = interleaved(targets)
    bare = statistics.median(s[0] for s in samples["(bare)"])
    client = statistics.median(s[0] for s in samples["(client)"])
    print(f"bare import boto3: {bare * 1000:.0f} ms; import boto3 + one client: {client * 1000:.0f} ms")
    lines = [
        "## Cold start: handler import time",
        "",
        f"Median of {RUNS} fresh interpreters each, in a Lambda-like environment: the function's variables from "
        "`template.yaml` (Globals merged), `PYTHONPATH=layers/common`, nothing else. Each round runs every target "
        "once in a shuffled order, and a ratio is the median of the per-round ratios, so a busy machine slows both "
        "sides of it alike. Baselines measured in the same run: a bare `import boto3` "
        f"(**{bare * 1000:.0f} ms**) and a handler that imports boto3 and makes one client ({client * 1000:.0f} ms). "
        f"Target ≤ {TARGET}× bare boto3, goal {GOAL}×. The fifth column adds what the function's first request builds "
        "through `imagegen.wiring` (settings, clients, services; no network): `imagegen.wiring` imports a service's "
        "modules when the service is first built, so that is where the rest of a function's start-up time is, and "
        "where it stays visible. Above boto3, what is left is mostly Powertools: the event handler with its OpenAPI "
        "validation and pydantic (api, media_proxy), the batch utility and pydantic's record models (worker, "
        "webhooks); the authorizer loads neither pydantic nor any provider or job module.",
        "",
        "| handler | import (ms) | ÷ bare boto3 | before issue 9 | ÷ boto3 + client | "
        "import + first request's services (ms) | heaviest top-level imports (cumulative ms) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, path in handlers.items():
        env = lambda_env(environments.get(name, {}))
        seconds = statistics.median(s[0] for s in samples[name])
        used = statistics.median(s[1] for s in samples[name])
        ratio, client_ratio = (
            median_ratio(samples[name], samples["(bare)"]),
            median_ratio(samples[name], samples["(client)"]),
        )
        mark = "✓" if ratio <= TARGET else "✗"
        heavy = ", ".join(f"{module} {micros / 1000:.0f}" for module, micros in heaviest_imports(path, env))
        print(
            f"{name:>12}: {seconds * 1000:6.0f} ms  {ratio:4.2f}x bare  {client_ratio:4.2f}x client  "
            f"(+ services {used * 1000:.0f} ms)  [{heavy}]"
        )
        lines.append(
            f"| {name} | {seconds * 1000:.0f} | {ratio:.2f}× {mark} | {before(name)} | "
            f"{client_ratio:.2f}× | {used * 1000:.0f} | {heavy} |"
        )
    write_section("coldstart", "\n".join(lines))


if __name__ == "__main__":
    main()
