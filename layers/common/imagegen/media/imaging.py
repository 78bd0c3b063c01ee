"""Image validation: a provider's 200 counts only if it decodes to a usable, non-placeholder image."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# Each side may differ from what the provider was asked for by max(SIZE_TOLERANCE_PX, SIZE_TOLERANCE_RATIO):
# providers snap to their own grids (multiples of 8/16/64) and some scale to fit a pixel budget.
SIZE_TOLERANCE_PX = 64
SIZE_TOLERANCE_RATIO = 0.15
# Grey-level standard deviation (0-255) below which an image is blank or a uniform fill.
MIN_STDDEV = 3.0
# dHash bits that may differ for an image to count as a known placeholder (re-encoding moves a few bits).
PLACEHOLDER_MAX_DISTANCE = 6
MAX_PIXELS = 40_000_000


class InvalidImage(ValueError):
    """Why the bytes are not a usable image; the message is safe to show."""


@dataclass(frozen=True)
class ImageCheck:
    width: int
    height: int
    content_type: str
    sha256: str
    dhash: str


def _dhash(image: object) -> str:
    from PIL import Image

    assert isinstance(image, Image.Image)
    small = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = small.tobytes()  # mode "L": one byte per pixel
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | int(pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return f"{bits:016x}"


def dhash_bytes(data: bytes) -> str:
    """The perceptual (difference) hash of encoded image bytes, as 16 hex digits."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return _dhash(image)


def _matches_placeholder(sha256: str, dhash: str, known: Iterable[str]) -> bool:
    for entry in known:
        entry = entry.strip().lower()
        if len(entry) == 64 and entry == sha256:
            return True
        if len(entry) == 16 and bin(int(entry, 16) ^ int(dhash, 16)).count("1") <= PLACEHOLDER_MAX_DISTANCE:
            return True
    return False


def validate_image(
    data: bytes,
    *,
    expected_width: int | None = None,
    expected_height: int | None = None,
    known_placeholders: Iterable[str] = (),
) -> ImageCheck:
    """Decode and check the bytes; raise InvalidImage with the reason when they are not a usable image.

    known_placeholders holds sha256 hex digests (exact match) and/or 16-hex-digit dHashes (near match).
    """
    # Pillow is imported lazily: it is the heaviest import on the worker's path.
    from PIL import Image, ImageStat, UnidentifiedImageError

    if not data:
        raise InvalidImage("empty body")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            if fmt not in FORMATS:
                raise InvalidImage(f"unsupported image format {fmt or 'unknown'}")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidImage(f"image too large ({width}x{height})")
            image.load()
            stddev = max(ImageStat.Stat(image.convert("L").resize((64, 64))).stddev)
            dhash = _dhash(image)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"does not decode as an image ({type(exc).__name__})") from exc
    for asked, got, side in ((expected_width, width, "width"), (expected_height, height, "height")):
        if asked is not None and abs(got - asked) > max(SIZE_TOLERANCE_PX, asked * SIZE_TOLERANCE_RATIO):
            raise InvalidImage(f"{side} {got} is too far from the {asked} asked for")
    if stddev < MIN_STDDEV:
        raise InvalidImage(f"blank or uniform image (grey stddev {stddev:.1f})")
    sha256 = hashlib.sha256(data).hexdigest()
    if _matches_placeholder(sha256, dhash, known_placeholders):
        raise InvalidImage("a known placeholder image, not a generated one")
    return ImageCheck(width=width, height=height, content_type=FORMATS[fmt], sha256=sha256, dhash=dhash)


@dataclass(frozen=True)
class FittedImage:
    """An image at the size asked for, and the size the provider made it at."""

    data: bytes
    content_type: str
    width: int
    height: int
    source_width: int
    source_height: int


# Encoder settings per format for a resized image: lossless stays lossless, lossy keeps close to the source.
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "PNG": {},
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"quality": 95, "method": 4},
}


def fit_to_size(data: bytes, width: int, height: int) -> FittedImage:
    """The image centre-cropped to width:height and resized (LANCZOS) to exactly width x height, in its own format.

    Providers with fixed size lists make the nearest size they take; the caller asked for this one. An image that is
    already the size asked for keeps its bytes as they are (no re-encode). Raises InvalidImage if it does not decode.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            source = image.size
            if source == (width, height) and fmt in FORMATS:
                return FittedImage(data, FORMATS[fmt], width, height, *source)
            if fmt not in FORMATS:
                raise InvalidImage(f"unsupported image format {fmt or 'unknown'}")
            image.load()
            icc = image.info.get("icc_profile")
            work = _resamplable(image, fmt)
            fitted = ImageOps.fit(work, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"does not decode as an image ({type(exc).__name__})") from exc
    out = io.BytesIO()
    options = dict(_SAVE_OPTIONS[fmt])
    if icc:
        options["icc_profile"] = icc
    fitted.save(out, format=fmt, **options)
    return FittedImage(out.getvalue(), FORMATS[fmt], width, height, *source)


def _resamplable(image: object, fmt: str) -> Any:
    """The image in a mode LANCZOS works in (palette and 1-bit images are not) that its own format can save."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    work = image
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        work = image.convert("RGBA" if has_alpha else "RGB")
    if fmt == "JPEG" and work.mode not in ("RGB", "L"):
        work = work.convert("RGB")
    return work
