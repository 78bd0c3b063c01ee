"""What the client shows: live bars and spinners on a terminal, plain lines on state changes anywhere else."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.status import Status
from rich.table import Table
from rich.text import Text

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
STYLES = {"queued": "yellow", "running": "cyan", "succeeded": "green", "failed": "red", "canceled": "magenta"}
# Steps of an item's bar: queued, running, image ready, image saved.
STEPS = {"queued": 0, "running": 1, "succeeded": 2}
SAVED = 3
_PLAIN_WIDTH = 250


def clean(value: Any, limit: int = 0) -> str:
    """API text for a terminal: prompts are user text, so no escape sequences or newlines get through."""
    text = "".join(char if char.isprintable() else " " for char in str(value))
    return text[: limit - 1] + "…" if limit and len(text) > limit else text


class Output:
    """Where lines go. Interactive only on a real terminal: pipes and CI get plain text without control characters."""

    def __init__(self, console: Console | None = None, errors: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.errors = errors or Console(stderr=True, highlight=False)
        self.interactive = self.console.is_terminal and not self.console.is_dumb_terminal
        if not self.interactive:
            # A pipe in a non-UTF-8 locale must not turn a prompt's "é" into a crash.
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, io.TextIOWrapper):
                    stream.reconfigure(errors="replace")

    def line(self, text: str, style: str | None = None) -> None:
        if self.interactive:
            self.console.print(Text(text, style=style or ""), soft_wrap=True)
        else:
            print(text, flush=True)

    def error(self, message: str, hint: str | None = None) -> None:
        if self.errors.is_terminal:
            self.errors.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
            if hint:
                self.errors.print(Text(f"hint: {hint}", style="yellow"), soft_wrap=True)
            return
        print(f"error: {message}", file=sys.stderr, flush=True)
        if hint:
            print(f"hint: {hint}", file=sys.stderr, flush=True)

    def table(self, table: Table) -> None:
        if self.interactive:
            self.console.print(table)
            return
        # Off a terminal nothing says how wide a line may be: rows stay whole rather than wrap at 80 columns.
        Console(width=_PLAIN_WIDTH, color_system=None, highlight=False).print(table)


def job_summary(job: dict[str, Any]) -> str:
    status = job.get("status")
    if status == "succeeded":
        attempts = len(job.get("attempts") or [])
        image = job.get("image") or {}
        size = f", {image.get('width')}x{image.get('height')}" if image else ""
        video = job.get("video") or {}
        if video:
            size = f", {video.get('width') or '?'}x{video.get('height') or '?'}, {video.get('duration_s', 0):.1f} s"
        model = f" ({clean(job['model'])})" if job.get("model") and job.get("model") != job.get("provider") else ""
        return f"succeeded: {clean(job.get('provider'))}{model}, {attempts} attempt{'s' * (attempts != 1)}{size}"
    waiting = job.get("waiting")
    if status == "queued" and isinstance(waiting, dict):
        return f"queued: waiting ({clean(waiting.get('reason'))}) until {clean(waiting.get('until'))}"
    if status == "running" and job.get("provider"):
        return f"running: {clean(job['provider'])}"
    return clean(status)


def failure(job: dict[str, Any]) -> tuple[str, str | None]:
    """The job's error as one line and its hint, for a failed or canceled job."""
    error = job.get("error") or {}
    if job.get("status") == "canceled" and not error:
        return "canceled", None
    message = clean(error.get("message") or job.get("status"))
    hint = clean(error["hint"]) if error.get("hint") else None
    return f"{clean(error.get('code') or job.get('status'))}: {message}", hint


class JobView:
    """One job's life: a spinner on a terminal, one line per change elsewhere."""

    def __init__(self, out: Output, job_id: str) -> None:
        self._out = out
        self._job_id = job_id
        self._last = ""
        self._status: Status | None = None

    def __enter__(self) -> JobView:
        if self._out.interactive:
            self._status = self._out.console.status(Text(f"{self._job_id} submitted"))
            self._status.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def update(self, job: dict[str, Any]) -> None:
        summary = job_summary(job)
        if summary == self._last:
            return
        self._last = summary
        if self._status is not None and job.get("status") not in TERMINAL:
            self._status.update(Text(f"{self._job_id} {summary}", style=STYLES.get(str(job.get("status")), "")))
            return
        self._out.line(f"{self._job_id} {summary}", STYLES.get(str(job.get("status"))))


class _StateColumn(ProgressColumn):
    """Status (coloured) and the provider that served the item, or what happened to it."""

    def render(self, task: Task) -> Text:
        status = str(task.fields.get("status", ""))
        text = Text(f"{status:<9}", style=STYLES.get(status, ""))
        detail = str(task.fields.get("detail", ""))
        if detail:
            text.append(" " + detail)
        return text


class BatchView:
    """A batch: one row per item with its bar and provider, and an overall n/m row; plain lines off a terminal."""

    def __init__(self, out: Output, batch_id: str, labels: list[str]) -> None:
        self._out = out
        self._batch_id = batch_id
        self._labels = [clean(label, 40) for label in labels]
        self._width = len(str(len(labels)))
        self._progress: Progress | None = None
        self._tasks: list[TaskID] = []
        self._overall: TaskID | None = None
        self._done = 0

    def __enter__(self) -> BatchView:
        total = len(self._labels)
        if not self._out.interactive:
            self._out.line(f"batch {self._batch_id}: {total} item{'s' * (total != 1)}")
            return self
        self._progress = Progress(
            TextColumn("{task.fields[tag]}", markup=False),
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=24),
            _StateColumn(),
            TimeElapsedColumn(),
            console=self._out.console,
        )
        self._progress.start()
        self._overall = self._progress.add_task(
            f"batch {self._batch_id}", total=total, tag="all", status="running", detail=f"0/{total}"
        )
        for index, label in enumerate(self._labels):
            tag = f"{index + 1:>{self._width}}"
            self._tasks.append(self._progress.add_task(label, total=SAVED, tag=tag, status="queued", detail=""))
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _tag(self, index: int) -> str:
        return f"[{index + 1:>{self._width}}/{len(self._labels)}]"

    def changed(self, index: int, item: dict[str, Any]) -> None:
        status = str(item.get("status"))
        provider = clean(item.get("provider") or "")
        if self._progress is not None:
            self._progress.update(self._tasks[index], completed=STEPS.get(status, 0), status=status, detail=provider)
        elif status not in TERMINAL:
            self._out.line(f"{self._tag(index)} {status:<9} {self._labels[index]}")

    def saved(self, index: int, item: dict[str, Any], path: Path) -> None:
        self._finish_one()
        provider = clean(item.get("provider") or "")
        if self._progress is not None:
            self._progress.update(
                self._tasks[index], completed=SAVED, status="succeeded", detail=f"{provider} → {path}"
            )
            return
        self._out.line(f"{self._tag(index)} succeeded {provider} -> {path}  ({self._done}/{len(self._labels)} done)")

    def ended_badly(self, index: int, item: dict[str, Any], message: str, hint: str | None) -> None:
        self._finish_one()
        status = str(item.get("status"))
        explained = f"{self._tag(index)} {status}: {message}" + (f"\n      hint: {hint}" if hint else "")
        if self._progress is not None:
            code = clean((item.get("error") or {}).get("code") or "")
            self._progress.update(self._tasks[index], completed=SAVED, status=status, detail=code)
            self._progress.console.print(Text(explained, style=STYLES.get(status, "")), soft_wrap=True)
            return
        self._out.line(f"{explained}  ({self._done}/{len(self._labels)} done)")

    def _finish_one(self) -> None:
        self._done += 1
        if self._progress is not None and self._overall is not None:
            total = len(self._labels)
            self._progress.update(self._overall, completed=self._done, detail=f"{self._done}/{total}")

    def finished(self, status: str) -> None:
        if self._progress is not None and self._overall is not None:
            self._progress.update(self._overall, status=status)
