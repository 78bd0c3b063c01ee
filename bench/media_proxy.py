"""Media proxy streaming: a 50 MB body through the safe fetcher and the S3 copy, next to a raw httpx download."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.doubles.storage: the same double the tests use
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _moto import start_moto_process
from _results import write_section

SIZE = 50 * 1000 * 1000
WARM_SIZE = 6 * 1024 * 1024
RUNS = 3
THROUGHPUT_TARGET = 0.8
RSS_TARGET_MB = 20.0
SCENARIOS = {
    "raw": "raw httpx download (stream, discard)",
    "fetch": "SafeFetcher.stream (discard)",
    "proxy": "MediaProxy: fetch + S3 multipart copy (Content-Length known)",
    "proxy-chunked": "MediaProxy: fetch + S3 multipart copy (chunked: first 4 MiB held for the inline check)",
    "s3": "MediaCache.store alone: the same copy from memory, no fetch (moto's ceiling)",
}
S3_ROWS = ("proxy", "proxy-chunked", "s3")


# --- child: one measurement in a fresh interpreter, so peaks are its own ---------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM (Linux ≥ 4.0), so the peak is measured from here rather than from interpreter start."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(scenario: str, url: str, warm_url: str, endpoint: str, bucket: str) -> dict[str, Any]:
    import boto3
    import httpx
    from imagegen.adapters.media_cache import MediaCache
    from imagegen.media import MediaProxy
    from imagegen.media.fetch import FetchPolicy, SafeFetcher

    policy = FetchPolicy(allow_private_networks=True, max_bytes=64 * 1024 * 1024)

    def raw(target: str) -> int:
        total = 0
        with httpx.Client(trust_env=False) as client, client.stream("GET", target) as response:
            for chunk in response.iter_raw():
                total += len(chunk)
        return total

    def fetch(target: str) -> int:
        total = 0
        with SafeFetcher(policy).stream(target) as media:
            for chunk in media.iter_bytes():
                total += len(chunk)
        return total

    s3 = _s3(boto3, endpoint)

    def proxy(target: str) -> int:
        MediaProxy(SafeFetcher(policy), MediaCache(bucket, s3)).get(target)
        return int(s3.head_object(Bucket=bucket, Key=_key(target))["ContentLength"])

    def s3_only(target: str) -> int:
        from tests.doubles.storage import generated_body

        return MediaCache(bucket, s3).store(_key(target), generated_body(SIZE), "image/png")

    run = {"raw": raw, "fetch": fetch, "proxy": proxy, "proxy-chunked": proxy, "s3": s3_only}[scenario]
    run(f"{warm_url}?warm={uuid.uuid4().hex}")  # imports, TLS/SSL contexts, boto3 endpoints: all loaded
    rss_before = _status_kb("VmRSS") or 0
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset = _reset_peak()
    start = time.perf_counter()
    size = run(f"{url}?run={uuid.uuid4().hex}")  # a new URL each run: never a cache hit
    elapsed = time.perf_counter() - start
    if reset:
        peak_growth_kb = (_status_kb("VmHWM") or 0) - rss_before
    else:
        peak_growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
    return {"bytes": size, "seconds": elapsed, "peak_growth_mb": max(0, peak_growth_kb) / 1024, "hwm_reset": reset}


def _s3(boto3: Any, endpoint: str) -> Any:
    # moto's own dummy credentials, stated here so that no developer's real ones are ever picked up.
    return boto3.client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench"
    )


def _key(url: str) -> str:
    from imagegen.media import cache_key

    return cache_key(url)


# --- parent: the doubles, the runs, the report ----------------------------------------------------------------------


def _run_child(scenario: str, url: str, warm_url: str, endpoint: str, bucket: str) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", scenario, url, warm_url, endpoint, bucket]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    import boto3

    from tests.doubles.storage import StorageDouble

    moto, endpoint = start_moto_process()
    try:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        _s3(boto3, endpoint).create_bucket(Bucket=bucket)
        with StorageDouble() as storage:
            storage.put("body.png", size=SIZE, content_type="image/png")
            storage.put("chunked.png", size=SIZE, content_type="image/png", chunked=True)
            storage.put("warm.png", size=WARM_SIZE, content_type="image/png")
            warm = storage.url("warm.png")
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
            for _ in range(RUNS):  # interleaved, so drift in the machine's load hits every scenario alike
                for name in SCENARIOS:
                    url = storage.url("chunked.png" if name == "proxy-chunked" else "body.png")
                    result = _run_child(name, url, warm, endpoint, bucket)
                    assert result["bytes"] == SIZE, result
                    results[name].append(result)
    finally:
        moto.terminate()
        moto.wait(timeout=10)
    report(results)


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    mb_s = {name: statistics.median(SIZE / r["seconds"] / 1e6 for r in runs) for name, runs in results.items()}
    rss = {name: max(r["peak_growth_mb"] for r in runs) for name, runs in results.items()}
    method = "VmHWM reset per run" if all(r["hwm_reset"] for runs in results.values() for r in runs) else "ru_maxrss"
    rows = []
    for name, label in SCENARIOS.items():
        ratio = mb_s[name] / mb_s["raw"]
        verdict = "" if name in ("raw", "s3") else (" ✓" if ratio >= THROUGHPUT_TARGET else " ✗")
        versus_s3 = f"{mb_s[name] / mb_s['s3']:.2f}×" if name in S3_ROWS else "–"
        rss_verdict = " ✓" if rss[name] <= RSS_TARGET_MB else " ✗"
        rows.append(
            f"| {label} | {mb_s[name]:.0f} | {ratio:.2f}×{verdict} | {versus_s3} | {rss[name]:.1f}{rss_verdict} |"
        )
    body = "\n".join(
        [
            "## Media proxy: streaming a 50 MB body",
            "",
            f"50 MB from the storage double on loopback; median of {RUNS} runs, each in a fresh interpreter after a "
            f"warm-up fetch. S3 is moto's server in its own process. Targets: throughput ≥ {THROUGHPUT_TARGET}× the "
            f"raw download, peak RSS growth ≤ {RSS_TARGET_MB:.0f} MB ({method}, largest of the runs).",
            "",
            "| path | MB/s | ÷ raw | ÷ S3 alone | peak RSS growth (MB) |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            "The fetch row is what the proxy adds to a download. The copy rows miss the raw-download target because "
            "they can go no faster than the S3 endpoint, here moto's server (a Python process that checksums and "
            "stores every part): they run at the speed of that endpoint alone (÷ S3 alone), because the next part is "
            "fetched while the previous one uploads. Memory holds two 5 MiB parts at most.",
        ]
    )
    print(body)
    write_section("media_proxy", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=5, metavar=("SCENARIO", "URL", "WARM_URL", "ENDPOINT", "BUCKET"))
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(*options.child)))
    else:
        main()
