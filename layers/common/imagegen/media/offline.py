"""The offline `placeholder` drawing: a deterministic PNG with the prompt drawn on it (no network, no key)."""

from __future__ import annotations

import hashlib
import io
import textwrap


def render_placeholder(prompt: str, width: int, height: int, seed: int | None = None) -> bytes:
    # Pillow is imported here, not at module load: only the worker draws, and import time is cold-start time.
    from PIL import Image, ImageDraw

    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    top, bottom = digest[0:3], digest[3:6]
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        mix = y / max(1, height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True)))
    # A few deterministic discs so two prompts differ visibly, not only in tint.
    for index in range(6):
        cx, cy = digest[6 + index] / 255 * width, digest[12 + index] / 255 * height
        radius = (16 + digest[18 + index] % 48) / 512 * min(width, height)
        colour = (digest[(20 + index) % 32], digest[(24 + index) % 32], digest[(28 + index) % 32])
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    lines = textwrap.wrap(prompt, width=max(8, width // 8))[: max(1, height // 14 - 2)]
    y = 8
    for line in lines:
        draw.text((9, y + 1), line, fill=(0, 0, 0))
        draw.text((8, y), line, fill=(255, 255, 255))
        y += 14
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()
