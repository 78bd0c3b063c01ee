"""Request bodies read strictly: UTF-8 only, and standard JSON only, so that nothing we store or echo is NaN."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

# Python's json module reads NaN, Infinity and -Infinity, and turns 1e400 into inf: none of them is JSON (RFC 8259),
# and a job that stored one would be echoed back in every list and webhook as non-standard JSON.
NOT_FINITE = "must be a finite number (NaN and infinities are not JSON)"
# int() refuses more than 4300 digits with a ValueError that json.loads does not turn into a decode error.
TOO_LONG = "is too long a number"
_MAX_INT_DIGITS = 64


class BodyNotUtf8(Exception):
    """The body's bytes are not UTF-8, so they cannot be JSON text (RFC 8259 section 8.1)."""


class BadNumbers(Exception):
    """Numbers JSON does not have: one (field path, reason) per occurrence."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(", ".join(path for path, _ in problems))
        self.problems = problems


class _Refused:
    """Stands in the parsed value for a number that was refused, until its path is known."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def json_or_unlabelled(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is read as JSON: application/json, any +json type, or none given."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    return not media_type or media_type == "application/json" or media_type.endswith("+json")


def raw_body(event: Mapping[str, Any]) -> bytes | None:
    """The request body's bytes as the client sent them (API Gateway base64-encodes binary media types)."""
    body = event.get("body")
    if body is None or body == "":
        return None
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            return str(body).encode()
    return str(body).encode()


def body_text(event: Mapping[str, Any]) -> str | None:
    """The body as text; BodyNotUtf8 when its bytes are not UTF-8."""
    data = raw_body(event)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyNotUtf8 from exc


def loads(text: str) -> Any:
    """json.loads that refuses NaN, infinities and absurdly long integers (BadNumbers names each field);
    malformed JSON raises json.JSONDecodeError as usual."""
    value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    problems = [(".".join(path) or "body", refused.reason) for path, refused in _refused(value, ())]
    if problems:
        raise BadNumbers(problems)
    return value


def _constant(_: str) -> _Refused:
    return _Refused(NOT_FINITE)


def _float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused(NOT_FINITE)


def _int(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _Refused(TOO_LONG)
    return int(text)


def _refused(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], _Refused]]:
    if isinstance(value, _Refused):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _refused(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _refused(item, (*path, str(index)))
