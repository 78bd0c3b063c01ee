"""Runs every benchmark script in bench/ (not the `_` helpers, not this file), each in its own interpreter.

Alphabetical order, so a run is repeatable; each script's output streams through as it runs. A failing script does not
stop the others (their figures are still worth having), but the run exits non-zero naming it.
`python bench/run_all.py chain batch` runs only the scripts named.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def scripts() -> list[Path]:
    return sorted(
        path for path in BENCH.glob("*.py") if not path.name.startswith("_") and path.name != Path(__file__).name
    )


def main() -> int:
    available = {path.stem: path for path in scripts()}
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"run only these: {', '.join(available)}")
    names = parser.parse_args().names or list(available)
    unknown = sorted(set(names) - set(available))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; there are {', '.join(available)}")
    failed: list[str] = []
    for name in sorted(names):
        script = available[name]
        print(f"== {script.name}", flush=True)
        began = time.monotonic()
        # A fresh interpreter each: cold-start figures need one, and no script inherits another's state.
        status = subprocess.run([sys.executable, str(script)], check=False).returncode
        print(f"== {script.name}: exit {status} after {time.monotonic() - began:.0f} s\n", flush=True)
        if status != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
