"""Cold-start import cost of each handler module next to a bare `import boto3` handler, in fresh interpreters."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
TARGET = 1.5

# Runs in a fresh interpreter: load one handler module by path, print the seconds the import took.
PROBE = """
import importlib.util, sys, time
sys.path.insert(0, {layer!r})
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(time.perf_counter() - start)
"""

BASELINE = """import boto3

client = boto3.client("s3", region_name="us-east-1")


def lambda_handler(event, context):
    return {"statusCode": 200}
"""


def import_seconds(path: Path) -> float:
    samples = []
    for _ in range(RUNS):
        code = PROBE.format(layer=str(ROOT / "layers" / "common"), path=str(path))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def heaviest_imports(path: Path, top: int = 5) -> list[tuple[str, int]]:
    code = PROBE.format(layer=str(ROOT / "layers" / "common"), path=str(path))
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stderr.splitlines():
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        # Top-level packages only (no dot, no indent): the ones worth deferring.
        if len(parts) == 3 and parts[1].isdigit() and "." not in parts[2]:
            rows.append((parts[2], int(parts[1])))
    return sorted(rows, key=lambda row: -row[1])[:top]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        baseline_path = Path(folder) / "baseline.py"
        baseline_path.write_text(BASELINE)
        baseline = import_seconds(baseline_path)
    handlers = sorted(path for path in (ROOT / "functions").glob("*/app.py"))
    lines = [
        "## Cold start: handler import time",
        "",
        f"Median of {RUNS} fresh interpreters each; baseline = a handler that imports boto3 and makes one client "
        f"({baseline * 1000:.0f} ms). Target ≤ {TARGET}×.",
        "",
        "| handler | import (ms) | ÷ baseline | heaviest top-level imports (cumulative ms) |",
        "|---|---:|---:|---|",
    ]
    print(f"baseline (import boto3 + client): {baseline * 1000:.0f} ms")
    for path in handlers:
        seconds = import_seconds(path)
        ratio = seconds / baseline
        heavy = ", ".join(f"{name} {micros / 1000:.0f}" for name, micros in heaviest_imports(path))
        print(f"{path.parent.name:>12}: {seconds * 1000:6.0f} ms  {ratio:4.2f}x  [{heavy}]")
        lines.append(f"| {path.parent.name} | {seconds * 1000:.0f} | {ratio:.2f}× | {heavy} |")
    write_section("coldstart", "\n".join(lines))


if __name__ == "__main__":
    main()
