"""Time-sortable ids (ULID layout), so a user's jobs list newest-first straight from the key order."""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_ms: int | None = None) -> str:
    value = ((now_ms if now_ms is not None else time.time_ns() // 1_000_000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


JOB_ID_PATTERN = r"^img_[0-9A-HJKMNP-TV-Z]{26}$"
BATCH_ID_PATTERN = r"^bat_[0-9A-HJKMNP-TV-Z]{26}$"
VIDEO_ID_PATTERN = r"^vid_[0-9A-HJKMNP-TV-Z]{26}$"
