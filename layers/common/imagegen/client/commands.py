"""The client commands: each takes the parsed arguments, an API client and an Output, and returns an exit code."""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Column, Table
from rich.text import Text

from imagegen.client import batchfile, config
from imagegen.client.api import ApiClient, ApiError, NetworkError
from imagegen.client.views import TERMINAL, BatchView, JobView, Output, clean, failure, job_summary

OK, JOB_FAILED, USAGE, API_ERROR, UNREACHABLE, INTERRUPTED = 0, 1, 2, 3, 4, 130
POLL_SECONDS = 1.0
# Polls that may fail in a row (network, 429, 502-504) before a wait gives up.
POLL_FAILURES = 5
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
}
# The API takes an inline input image as a data URI of at most this many characters (a larger one goes as a URL).
MAX_IMAGE_DATA_URI_CHARS = 60_000
_IMAGE_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"RIFF": "image/webp"}


class UsageError(Exception):
    """Bad input the API never saw: exit 2 with this message."""


def run(args: argparse.Namespace, out: Output | None = None) -> int:
    out = out or Output()
    try:
        if args.client == "login":
            return login(args, out)
        settings = config.resolve(args.url, args.token)
        with ApiClient(settings.url, settings.token) as api:
            return COMMANDS[args.client](args, api, out)
    except (config.ConfigError, batchfile.BatchFileError, UsageError) as exc:
        out.error(str(exc))
        return USAGE
    except ApiError as exc:
        out.error(f"{clean(exc.message)} ({exc.code}, HTTP {exc.status})", clean(exc.hint) if exc.hint else None)
        return API_ERROR
    except NetworkError as exc:
        out.error(clean(exc))
        return UNREACHABLE
    except KeyboardInterrupt:
        out.error("interrupted")
        return INTERRUPTED


# Jobs


def _request_body(args: argparse.Namespace, **fields: Any) -> dict[str, Any]:
    body = dict(fields)
    if args.size:
        body["width"], body["height"] = args.size
    if args.provider:
        body["providers"] = args.provider
    return body


def generate(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    job = api.create_image(_request_body(args, prompt=args.prompt), str(uuid.uuid4()))
    if not (args.wait or args.output):
        if args.json:
            print(json.dumps(job, indent=2))
        else:
            out.line(f"{job['id']} {job_summary(job)}")
            out.line(f"wait for it and save it: imagegen get {job['id']} -o FILE")
        return OK
    return _follow(api, out, job, args.output)


def video(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    body = _request_body(args, prompt=args.prompt)
    if args.image:
        body["image"] = _input_image(args.image)
    job = api.create_video(body, str(uuid.uuid4()))
    if not (args.wait or args.output):
        if args.json:
            print(json.dumps(job, indent=2))
        else:
            out.line(f"{job['id']} {job_summary(job)}")
            out.line(f"wait for it and save it: imagegen get {job['id']} -o FILE")
        return OK
    return _follow(api, out, job, args.output)


def _input_image(value: str) -> str:
    """--image as the API takes it: a URL as given, a file as a base64 data URI (PNG, JPEG or WebP, small)."""
    if value.startswith(("https://", "http://")):
        return value
    try:
        data = Path(value).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the image {value}: {exc.strerror or exc}") from None
    content_type = next((kind for magic, kind in _IMAGE_TYPES.items() if data.startswith(magic)), None)
    if content_type is None:
        raise UsageError(f"{value} is not a PNG, JPEG or WebP image")
    uri = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
    if len(uri) > MAX_IMAGE_DATA_URI_CHARS:
        raise UsageError(
            f"{value} is {len(data)} bytes; an image sent inline may take at most about 44 KB: "
            "pass an https URL to it instead"
        )
    return uri


def get(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    job = api.get_image(args.job_id)
    if args.wait or args.output:
        return _follow(api, out, job, args.output)
    if args.json:
        print(json.dumps(job, indent=2))
        return OK
    out.line(f"{job['id']} {job_summary(job)}")
    return _explain(out, job)


def cancel(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    job = api.cancel_image(args.job_id)
    out.line(f"{job['id']} {job_summary(job)}")
    return OK


def _follow(api: ApiClient, out: Output, job: dict[str, Any], output: str | None) -> int:
    """Waits for the job (Ctrl-C offers to cancel it), then saves its image or explains its failure."""
    job_id = str(job["id"])
    try:
        with JobView(out, job_id) as view:
            view.update(job)
            job = _poll(lambda: api.get_image(job_id), view.update, lambda current: current["status"] in TERMINAL)
    except KeyboardInterrupt:
        later = f"save it later with: imagegen get {job_id} -o FILE"
        return _interrupted(out, f"job {job_id}", lambda: api.cancel_image(job_id), later)
    if job["status"] != "succeeded":
        return _explain(out, job)
    image = api.download(job_id)
    path = _target(output, job_id, image.content_type)
    _write(path, image.content)
    out.line(f"saved {path}")
    return OK


def _explain(out: Output, job: dict[str, Any]) -> int:
    if job.get("status") not in ("failed", "canceled"):
        return OK
    message, hint = failure(job)
    out.error(f"{job['id']} {message}", hint)
    return JOB_FAILED


def _poll(
    fetch: Callable[[], dict[str, Any]],
    update: Callable[[dict[str, Any]], None],
    done: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    failures = 0
    while True:
        try:
            current = fetch()
        except (ApiError, NetworkError) as exc:
            failures += 1
            if (isinstance(exc, ApiError) and not exc.transient) or failures >= POLL_FAILURES:
                raise
            time.sleep(POLL_SECONDS * failures)
            continue
        failures = 0
        update(current)
        if done(current):
            return current
        time.sleep(POLL_SECONDS)


def _interrupted(out: Output, what: str, cancel_it: Callable[[], dict[str, Any]], later: str) -> int:
    """Ctrl-C while waiting: on a terminal, ask whether to cancel; elsewhere leave the work running and say so."""
    if out.interactive and sys.stdin.isatty():
        try:
            answer = out.console.input(Text(f"\nCancel {what}? [y/N] "))
        except (KeyboardInterrupt, EOFError):
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            result = cancel_it()
            out.line(f"{what} {clean(result.get('status'))}")
            return INTERRUPTED
    else:
        out.error(f"interrupted: {what} keeps running on the server (not canceled)")
    out.line(f"{what} keeps running; {later}")
    return INTERRUPTED


def _target(output: str | None, stem: str, content_type: str) -> Path:
    extension = EXTENSIONS.get(content_type, ".img")
    if output is None:
        return Path(f"{stem}{extension}")
    path = Path(output)
    return path / f"{stem}{extension}" if path.is_dir() or output.endswith(("/", os.sep)) else path


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_bytes(content)
    temporary.replace(path)


def jobs(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    page = api.list_videos(args.limit) if args.videos else api.list_images(args.limit)
    if args.json:
        print(json.dumps(page, indent=2))
        return OK
    if not page.get("items"):
        example = 'video "a prompt" -o video.mp4' if args.videos else 'generate "a prompt" -o image.png'
        out.line(f"no jobs yet: imagegen {example}")
        return OK
    table = Table(Column("id", no_wrap=True), "status", "provider", "size", "created", "prompt", box=None)
    for job in page.get("items", []):
        request = job.get("request") or {}
        table.add_row(
            clean(job["id"]),
            clean(job["status"]),
            clean(job.get("provider") or "-"),
            _size(request),
            clean(str(job.get("created_at", ""))[:19].replace("T", " ")),
            clean(request.get("prompt", ""), 50),
        )
    out.table(table)
    return OK


def _size(request: dict[str, Any]) -> str:
    if request.get("width") and request.get("height"):
        return f"{request['width']}x{request['height']}"
    return clean(request.get("image_size") or "-")


# Batches


def batch(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    defaults = _request_body(args)
    plan = batchfile.load(Path(args.file), defaults)
    directory = Path(args.output)
    created = api.create_batch(plan.body, str(uuid.uuid4()))
    batch_id = str(created["id"])
    labels = [str(item.get("prompt", "")) for item in plan.body["items"]]
    try:
        with BatchView(out, batch_id, labels) as view:
            follower = _BatchFollower(api, view, plan.names, directory)
            final = _poll(lambda: api.get_batch(batch_id), follower.update, follower.done)
            view.finished(str(final["status"]))
    except KeyboardInterrupt:
        return _interrupted(
            out, f"batch {batch_id}", lambda: api.cancel_batch(batch_id), f"see it with GET /v1/batches/{batch_id}"
        )
    total = len(plan.names)
    out.line(
        f"batch {batch_id} {clean(final['status'])}: {follower.saved} of {total} saved to {directory}"
        + (f", {follower.bad} did not succeed" if follower.bad else "")
    )
    return OK if follower.saved == total else JOB_FAILED


class _BatchFollower:
    """Turns successive reads of a batch into view updates, and writes each image as soon as its job succeeds."""

    def __init__(self, api: ApiClient, view: BatchView, names: list[str], directory: Path) -> None:
        self.api = api
        self.view = view
        self.names = names
        self.directory = directory
        self.seen: dict[int, tuple[str, str, str]] = {}
        self.finished: set[int] = set()
        self.saved = 0
        self.bad = 0

    def update(self, current: dict[str, Any]) -> None:
        for item in current.get("items", []):
            index = int(item["index"])
            state = (str(item.get("job_id")), str(item.get("status")), str(item.get("provider")))
            if index in self.finished or self.seen.get(index) == state:
                continue
            self.seen[index] = state
            self.view.changed(index, item)
            if item.get("status") in TERMINAL:
                self._finish(index, item)

    def _finish(self, index: int, item: dict[str, Any]) -> None:
        self.finished.add(index)
        if item.get("status") != "succeeded":
            self.bad += 1
            message, hint = failure(item)
            self.view.ended_badly(index, item, message, hint)
            return
        try:
            image = self.api.download(str(item["job_id"]))
        except (ApiError, NetworkError) as exc:
            self.bad += 1
            self.view.ended_badly(index, item, f"could not save the image: {clean(exc)}", None)
            return
        path = self.directory / (self.names[index] + EXTENSIONS.get(image.content_type, ".img"))
        _write(path, image.content)
        self.saved += 1
        self.view.saved(index, item, path)

    def done(self, current: dict[str, Any]) -> bool:
        return current.get("status") != "running" and len(self.finished) >= len(current.get("items", []))


# Keys, providers, login


def keys_set(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    if args.key_stdin:
        secret = sys.stdin.readline().strip()
    elif sys.stdin.isatty():
        secret = getpass.getpass(f"{args.provider} API key (not shown): ").strip()
    else:
        raise UsageError("standard input is not a terminal: pass --key-stdin to read the key from it")
    if not secret:
        raise UsageError("no key given")
    stored = api.put_key(args.provider, secret)
    health = stored.get("health") or {}
    verdict = clean(health.get("status") or "not checked")
    detail = f" ({clean(health['detail'])})" if health.get("detail") else ""
    out.line(f"{clean(stored['provider'])} key …{clean(stored.get('last4', ''))} stored; check: {verdict}{detail}")
    return OK


def keys_list(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    page = api.list_keys()
    if args.json:
        print(json.dumps(page, indent=2))
        return OK
    if not page.get("items"):
        out.line("no keys stored: imagegen keys set PROVIDER")
        return OK
    table = Table("provider", "key", "health", "checked", "updated", box=None)
    for key in page.get("items", []):
        health = key.get("health") or {}
        status = clean(health.get("status") or "-") + (f" ({clean(health['detail'])})" if health.get("detail") else "")
        table.add_row(
            clean(key["provider"]),
            f"…{clean(key.get('last4', ''))}",
            status,
            clean(str(health.get("checked_at") or "-")[:19].replace("T", " ")),
            clean(str(key.get("updated_at", ""))[:19].replace("T", " ")),
        )
    out.table(table)
    return OK


def keys_delete(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    api.delete_key(args.provider)
    out.line(f"{clean(args.provider)} key deleted")
    return OK


def providers(args: argparse.Namespace, api: ApiClient, out: Output) -> int:
    chain = api.providers()
    if args.json:
        print(json.dumps(chain, indent=2))
        return OK
    table = Table("provider", "tried", "key", "health", "breaker", "p50/p95", "why", box=None)
    for link in chain.get("items", []):
        health = link.get("health") or {}
        table.add_row(
            clean(link["provider"]),
            "yes" if link.get("would_try") else "no",
            clean(link.get("key_source") or "-"),
            clean(health.get("status") or "-"),
            _breaker_state(link),
            _latency(link),
            clean(link.get("reason") or ""),
        )
        # A routing provider (Hugging Face): each route it would try for each model, in order, on rows of its own.
        for route in link.get("routes") or []:
            where = route.get("route") or "-"
            model = route.get("model") or ""
            served = route.get("provider_model")
            what = f"{model} as {served}" if served and served != model else model
            reason = route.get("reason") or ""
            table.add_row(
                f"  via {clean(where)}", "", "", "", _breaker_state(route), _latency(route), clean(f"{what}: {reason}")
            )
    out.table(table)
    if chain.get("hint"):
        out.line(f"hint: {clean(chain['hint'])}")
    if chain.get("video"):
        videos = Table("video provider", "tried", "key", "health", "breaker", "why", box=None)
        for link in chain["video"]:
            videos.add_row(
                clean(link["provider"]),
                "yes" if link.get("would_try") else "no",
                clean(link.get("key_source") or "-"),
                clean((link.get("health") or {}).get("status") or "-"),
                _breaker_state(link),
                clean(link.get("reason") or ""),
            )
        out.table(videos)
    return OK


def _breaker_state(link: dict[str, Any]) -> str:
    return clean((link.get("breaker") or {}).get("state") or "closed")


def _latency(link: dict[str, Any]) -> str:
    """p50/p95 of the successful calls seen lately, once enough are known (else a dash)."""
    latency = link.get("latency")
    if not latency:
        return "-"
    return f"{latency['p50_ms'] / 1000:.1f}/{latency['p95_ms'] / 1000:.1f} s"


def login(args: argparse.Namespace, out: Output) -> int:
    path = config.config_path()
    stored = config.read_config(path)
    url = args.url or os.environ.get(config.URL_VARIABLE) or stored.get("url")
    if not url and sys.stdin.isatty():
        url = input("API URL [http://127.0.0.1:3000]: ").strip() or "http://127.0.0.1:3000"
    if not url:
        raise UsageError("pass --url (the API's base URL)")
    url = config.normalize_url(url)
    if args.token_stdin:
        token = sys.stdin.readline().strip()
    elif args.token:
        token = args.token.strip()
    elif sys.stdin.isatty():
        token = getpass.getpass("API token (not shown): ").strip()
    else:
        raise UsageError("standard input is not a terminal: pass --token-stdin (or --token)")
    if not token:
        raise UsageError("no token given")
    with ApiClient(url, token) as api:
        api.list_images(1)  # proves the URL and the token before anything is saved
    config.write_config(path, url, token)
    out.line(f"logged in to {url}; saved to {path} (readable by you only)")
    return OK


COMMANDS: dict[str, Callable[[argparse.Namespace, ApiClient, Output], int]] = {
    "generate": generate,
    "video": video,
    "get": get,
    "cancel": cancel,
    "jobs": jobs,
    "batch": batch,
    "keys set": keys_set,
    "keys list": keys_list,
    "keys delete": keys_delete,
    "providers": providers,
}
