"""Real encoded images for the doubles: varied pictures of a given size, blank ones, and a branded placeholder."""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageDraw


def picture(width: int, height: int, seed: str = "", fmt: str = "PNG") -> bytes:
    """A non-uniform image whose content depends on `seed` (what a working model would send)."""
    digest = hashlib.sha256(seed.encode()).digest()
    image = Image.new("RGB", (width, height), (digest[0], digest[1], digest[2]))
    draw = ImageDraw.Draw(image)
    for i in range(8):
        b = digest[i * 3 : i * 3 + 4]
        x, y = b[0] * width // 256, b[1] * height // 256
        r = max(4, min(width, height) // 6)
        draw.rectangle([x - r, y - r, x + r, y + r], fill=(b[2], 255 - b[0], b[3]))
    draw.line([(0, 0), (width, height)], fill=(255, 255, 255), width=max(1, width // 64))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def blank(width: int, height: int, colour: tuple[int, int, int] = (0, 0, 0), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def branded_placeholder(width: int = 1024, height: int = 1024) -> bytes:
    """Stands in for the branded 'rate limited' JPEG proposed for Pollinations' legacy host (PR #13102)."""
    image = Image.new("RGB", (width, height), (18, 18, 30))
    draw = ImageDraw.Draw(image)
    draw.rectangle([width // 8, height // 3, width * 7 // 8, height * 2 // 3], fill=(240, 240, 240))
    draw.text((width // 6, height // 2 - 10), "pollinations.ai - queue full, get a key", fill=(18, 18, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
