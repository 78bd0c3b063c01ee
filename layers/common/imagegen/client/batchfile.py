"""Batch files for `imagegen batch`: the body of POST /v1/batches, a JSON list of prompts, or one prompt a line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_ITEMS = 50  # the API's limit, checked here too so a long file fails before anything is sent
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|webp)$", re.IGNORECASE)  # the right one is added from the content type


class BatchFileError(Exception):
    """The file cannot be read as a batch; the message names the file and the problem."""


@dataclass(frozen=True)
class BatchPlan:
    body: dict[str, Any]  # what POST /v1/batches gets
    names: list[str]  # one output file stem per item, in order


def load(path: Path, defaults: dict[str, Any] | None = None) -> BatchPlan:
    """Reads a batch file; `defaults` (from the command line) win over the file's own defaults."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchFileError(f"cannot read {path}: {exc.__class__.__name__}") from exc
    if path.suffix.lower() == ".json":
        body = _from_json(path, text)
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        body = {"items": [{"prompt": prompt} for prompt in prompts]}
    items = body["items"]
    if not items:
        raise BatchFileError(f"{path}: no prompts in it")
    if len(items) > MAX_ITEMS:
        raise BatchFileError(f"{path}: {len(items)} items; a batch holds at most {MAX_ITEMS}")
    names = _names(path, items)
    if defaults:
        body["defaults"] = {**(body.get("defaults") or {}), **defaults}
    return BatchPlan(body=body, names=names)


def _from_json(path: Path, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BatchFileError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, list):
        data = {"items": data}
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise BatchFileError(f'{path}: expected {{"items": [...]}} (the body of POST /v1/batches) or a list of prompts')
    if "defaults" in data and not isinstance(data["defaults"], dict):
        raise BatchFileError(f"{path}: defaults must be an object")
    items = []
    for index, item in enumerate(data["items"]):
        if isinstance(item, str):
            item = {"prompt": item}
        if not isinstance(item, dict):
            raise BatchFileError(f"{path}: items.{index} must be a prompt or an object with a prompt")
        items.append(dict(item))
    return {**data, "items": items}


def _names(path: Path, items: list[dict[str, Any]]) -> list[str]:
    """Output stems: an item's "name" (ours, removed before sending), else NN-first-words-of-the-prompt."""
    width = max(2, len(str(len(items))))
    names: list[str] = []
    for index, item in enumerate(items):
        given = item.pop("name", None)
        if given is not None and (not isinstance(given, str) or not _UNSAFE.sub("", given).strip(".")):
            raise BatchFileError(f"{path}: items.{index}.name must be a file name (letters, digits, . _ -)")
        if given:
            name = _IMAGE_SUFFIX.sub("", _UNSAFE.sub("-", given)).strip(".-") or f"{index + 1:0{width}d}"
        else:
            prompt = item["prompt"] if isinstance(item.get("prompt"), str) else ""
            slug = _UNSAFE.sub("-", prompt.lower()).strip(".-")[:40].rstrip(".-")
            name = f"{index + 1:0{width}d}-{slug}" if slug else f"{index + 1:0{width}d}"
        if name in names:
            raise BatchFileError(f"{path}: items.{index}.name {name!r} is used twice")
        names.append(name)
    return names
