"""A video job's whole worker path and its memory: the worker (as wiring builds it) submits to SiliconFlow's double,
checks until Succeed, then fetches the 100 MB MP4 through the safe fetcher, checks the container and copies it into
moto's S3 by multipart upload; peak RSS growth of the worker process above its own baseline.

bench/video_memory.py measures the store path alone; this adds everything around it (the chain, the job store, the
queue, the job record written at the end), in a fresh interpreter per run, after a warm-up job of a small video.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.doubles and tests.conftest: the same doubles and resources the tests use
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _moto import start_moto_process
from _results import write_section
from video_memory import SIZE, _status_kb, _videos

RUNS = 3
RSS_TARGET_MB = 64.0
SF_KEY = "sk-bench-video-0123456789"
SCENARIOS = {
    "fast": "video job, MP4 with moov first",
    "last": "video job, MP4 with moov after the 100 MB mdat",
}


# --- child: the worker in a fresh interpreter --------------------------------------------------------------------


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _run_job(prompt: str) -> dict[str, Any]:
    """One video job as the worker meets it: the generate message, then each check message until it ends."""
    from imagegen import wiring
    from imagegen.adapters.job_store import JobStore
    from imagegen.ids import new_id
    from imagegen.messages import CheckMessage, GenerateMessage
    from imagegen.models import JobRecord, VideoRequest, utcnow

    settings = wiring.worker_settings()
    store = JobStore(settings.table_name, wiring.dynamodb(settings), ttl_seconds=86400)
    record = JobRecord(
        id=new_id("vid"),
        kind="video",
        status="queued",
        request=VideoRequest(prompt=prompt),
        user_id="bench",
        created_at=utcnow(),
    )
    store.create(record)
    worker = wiring.worker()
    worker.handle(GenerateMessage(user_id="bench", job_id=record.id), receive_count=1, remaining_seconds=110)
    job = store.get("bench", record.id)
    for _ in range(10):
        if job.terminal:
            break
        check = CheckMessage(user_id="bench", job_id=job.id, check_token=job.lease_token or "")
        worker.handle(check, receive_count=1, remaining_seconds=110)
        job = store.get("bench", record.id)
    assert job.status == "succeeded" and job.video is not None, job.model_dump_json()[:2000]
    return {"bytes": job.video.bytes, "sha256": job.video.sha256, "duration_s": job.video.duration_s}


def child() -> dict[str, Any]:
    _run_job("warm")  # imports, clients, the chain, the part thread: all loaded
    rss_before = _status_kb("VmRSS") or 0
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset = _reset_peak()
    start = time.perf_counter()
    result = _run_job("big")
    elapsed = time.perf_counter() - start
    if reset:
        growth_kb = (_status_kb("VmHWM") or 0) - rss_before
    else:
        growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
    return {
        **result,
        "seconds": elapsed,
        "baseline_mb": rss_before / 1024,
        "peak_growth_mb": max(0, growth_kb) / 1024,
        "hwm_reset": reset,
    }


# --- parent: doubles, moto, the runs ---------------------------------------------------------------------------------


def _double(storage: Any, files: dict[str, bytes], source: str) -> Any:
    from tests.doubles.siliconflow import SiliconFlowDouble

    class BenchDouble(SiliconFlowDouble):
        """Serves the small warm-up video for the prompt "warm", the 100 MB one for any other."""

        def _store_video(self, job: Any) -> str:
            name = "warm.mp4" if job.payload["prompt"] == "warm" else source
            return self._store("mp4", files[name], "video/mp4", self.video_url_ttl)

    return BenchDouble(storage, api_key=SF_KEY)


def _run_child(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child"], capture_output=True, text=True, check=False, cwd=ROOT, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    from tests.conftest import create_resources
    from tests.doubles.storage import StorageDouble

    # moto's dummy credentials, stated here so that no developer's real ones are ever picked up.
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    files = _videos()
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    moto, endpoint = start_moto_process()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
    try:
        with StorageDouble() as storage:
            for _ in range(RUNS):  # interleaved, so drift in the machine's load hits both alike
                for name in SCENARIOS:
                    aws = create_resources(endpoint)
                    with _double(storage, files, f"{name}.mp4") as double:
                        env = {
                            **os.environ,
                            "AWS_ENDPOINT_URL": endpoint,
                            "TABLE_NAME": aws.table,
                            "BUCKET_NAME": aws.bucket,
                            "QUEUE_URL": aws.queue_url,
                            "SILICONFLOW_API_KEY": SF_KEY,
                            "SILICONFLOW_BASE_URL": double.base_url,
                            "MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
                            "POWERTOOLS_METRICS_NAMESPACE": "bench",
                        }
                        result = _run_child(env)
                    assert (result["bytes"], result["sha256"]) == (SIZE, digests[f"{name}.mp4"]), result
                    results[name].append(result)
    finally:
        moto.terminate()
        moto.wait(timeout=10)
    return report(results)


def report(results: dict[str, list[dict[str, Any]]]) -> int:
    rss = {name: max(r["peak_growth_mb"] for r in runs) for name, runs in results.items()}
    baseline = {name: statistics.median(r["baseline_mb"] for r in runs) for name, runs in results.items()}
    seconds = {name: statistics.median(r["seconds"] for r in runs) for name, runs in results.items()}
    method = "VmHWM reset per run" if all(r["hwm_reset"] for runs in results.values() for r in runs) else "ru_maxrss"
    met = all(value < RSS_TARGET_MB for value in rss.values())
    rows = [
        f"| {label} | {baseline[name]:.0f} | {rss[name]:.1f}{' ✓' if rss[name] < RSS_TARGET_MB else ' ✗'} | "
        f"{seconds[name]:.1f} |"
        for name, label in SCENARIOS.items()
    ]
    body = "\n".join(
        [
            "## Video job: the worker's whole path for a 100 MB video",
            "",
            "`wiring.worker()` as the Lambda handler builds it takes a video job's generate message (submit to the "
            "SiliconFlow double) and its check messages (InQueue, InProgress, Succeed); on Succeed the chain fetches "
            f"the {SIZE // 1_000_000} MB MP4 from the storage double through the safe fetcher, checks the container "
            "and copies it into moto's S3 (its own process) by multipart upload, then the job is written. Each run is "
            "a fresh interpreter that first runs a warm-up video job (a 6 MiB video: imports, clients, the chain and "
            f"the part thread loaded), then measures peak RSS growth above its own RSS at that point ({method}); "
            f"largest of {RUNS} runs, median time. Target: under {RSS_TARGET_MB:.0f} MB above the baseline.",
            "",
            "| path | baseline RSS (MB) | peak RSS growth (MB) | seconds (submit, 3 checks, store) |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "The growth is the store path's (bench/video_memory.py: two 5 MiB parts in memory, box headers and "
            "`moov`); the chain, the job store and the queue add a few MB of their own at most.",
        ]
    )
    print(body)
    write_section("video_job", body)
    return 0 if met else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", action="store_true")
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child()))
    else:
        sys.exit(main())
