"""Who is calling and what they prefer, read from the current API Gateway event."""

from __future__ import annotations

import re
from typing import Any

from imagegen.errors import Unauthorized

_PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d{1,4})(?:$|[;,\s])", re.IGNORECASE)


def user_id(raw_event: dict[str, Any]) -> str:
    authorizer = (raw_event.get("requestContext") or {}).get("authorizer") or {}
    value = authorizer.get("user_id")
    if not isinstance(value, str) or not value:
        # Only reachable if a route is deployed without the authorizer: refuse rather than guess.
        raise Unauthorized("missing or invalid API token", hint="send Authorization: Bearer <token>")
    return value


def header(headers: dict[str, str] | None, name: str) -> str | None:
    wanted = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == wanted:
            return value
    return None


def prefer_wait(headers: dict[str, str] | None, cap: int) -> int | None:
    """Seconds from `Prefer: wait=N` (RFC 7240), capped; None when absent. A preference never fails a request."""
    value = header(headers, "prefer")
    match = _PREFER_WAIT.search(value or "")
    return min(int(match.group(1)), cap) if match else None


def location(raw_event: dict[str, Any], path: str) -> str:
    """`path` as the client must request it: behind a stage or a custom domain's base path the API is not at /.

    API Gateway puts the full request path (with `/api` or a base-path mapping) in requestContext.path and the
    route's path in path; whatever stands before the route's path is the prefix every link needs.
    """
    full = str((raw_event.get("requestContext") or {}).get("path") or "")
    route = str(raw_event.get("path") or "")
    prefix = full[: -len(route)] if route and full.endswith(route) else ""
    return f"{prefix}{path}"
