"""Real, tiny videos made in pure Python (Pillow for the frames): an MP4 and a WebM that players and parsers accept.

The video doubles (SiliconFlow's `video/status`, fal and Replicate video models) serve these, so the worker's
container validation meets real files rather than a few magic bytes:

- `mp4(...)`: ISO BMFF `ftyp` (isom) + `moov` (`mvhd` with the duration, one `trak` with `tkhd`, `mdhd`, `hdlr`
  `vide`, an `mp4v` sample entry whose `esds` says JPEG, object type 0x6C, and a full sample table) + `mdat` holding
  one baseline JPEG per frame. `moov` comes before `mdat` ("fast start"), as generation services deliver it.
- `webm(...)`: EBML header (DocType `webm`) + `Segment` with `Info` (TimestampScale 1 ms, `Duration`), `Tracks`
  (one `V_VP8` track) and one `Cluster` of keyframe `SimpleBlock`s. Each frame is a real VP8 keyframe, taken from
  the `VP8 ` chunk of a lossy WebP that Pillow encodes (a lossy WebP is exactly one VP8 keyframe in RIFF).
- `html_error_page()`: what a broken CDN serves with `Content-Type: video/mp4` (the not-a-video case of issue 14).

Variants real services produce, for the container check: `mp4(moov_first=False)` (`moov` after `mdat`, as a
writer that does not rewrite its file leaves it), `mp4(mdat_padding=n)` (n unreferenced bytes at the end of `mdat`:
a large file of the same honest duration), `mp4_fragmented(...)` (fragmented MP4: an empty `moov` with `mvex`, then
`moof` + `mdat` pairs that carry the timing) and `webm(duration=False, unknown_sizes=True)` (a live recorder's
WebM: no `Duration`, `Segment` and `Cluster` of unknown size).

`mp4_boxes(data)` walks the box tree back, for tests that assert what a file holds.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterator

from PIL import Image, ImageDraw

MP4_TIMESCALE = 1000  # movie and media time in milliseconds
_IDENTITY_MATRIX = struct.pack(">9i", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def _frame(width: int, height: int, index: int, seed: str) -> Image.Image:
    """A frame whose content moves with `index`, so consecutive frames differ as in real footage."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    image = Image.new("RGB", (width, height), (digest[0], digest[1], digest[2]))
    draw = ImageDraw.Draw(image)
    side = max(2, min(width, height) // 4)
    x = (index * max(1, width // 8)) % max(1, width - side)
    draw.rectangle([x, height // 3, x + side, height // 3 + side], fill=(255 - digest[0], 200, digest[3]))
    return image


# MP4 -------------------------------------------------------------------------------------------------------------


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _descriptor(tag: int, payload: bytes) -> bytes:
    # MPEG-4 descriptors (ISO 14496-1): tag, then the size as 7-bit groups; these are all < 128 bytes.
    assert len(payload) < 128
    return bytes([tag, len(payload)]) + payload


def _esds_jpeg(bitrate: int) -> bytes:
    decoder_config = _descriptor(
        0x04,
        bytes([0x6C, (0x04 << 2) | 1])  # object type: JPEG (ISO 10918-1); stream type: visual
        + (0).to_bytes(3, "big")
        + struct.pack(">II", bitrate, bitrate),
    )
    es = _descriptor(0x03, struct.pack(">HB", 1, 0) + decoder_config + _descriptor(0x06, b"\x02"))
    return _full_box(b"esds", 0, 0, es)


def _stbl(width: int, height: int, sizes: list[int], delta: int, mdat_offset: int | None, bitrate: int) -> bytes:
    """The sample table; with no mdat_offset, an empty one (a fragmented file describes its samples in `moof`)."""
    sample_entry = _box(
        b"mp4v",
        b"\x00" * 6,
        struct.pack(">H", 1),  # data_reference_index
        b"\x00" * 16,
        struct.pack(">HH", width, height),
        struct.pack(">II", 0x00480000, 0x00480000),  # 72 dpi
        b"\x00" * 4,
        struct.pack(">H", 1),  # frame_count per sample
        bytes([4]) + b"jpeg".ljust(31, b"\x00"),  # compressor name, a Pascal string in 32 bytes
        struct.pack(">Hh", 0x0018, -1),
        _esds_jpeg(bitrate),
    )
    stsd = _full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry)
    if mdat_offset is None:
        empty = struct.pack(">I", 0)
        return _box(
            b"stbl",
            stsd,
            *(_full_box(kind, 0, 0, empty) for kind in (b"stts", b"stsc")),
            _full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
            _full_box(b"stco", 0, 0, empty),
        )
    return _box(
        b"stbl",
        stsd,
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, len(sizes), delta)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(sizes), 1)),
        _full_box(b"stsz", 0, 0, struct.pack(">II", 0, len(sizes)), b"".join(struct.pack(">I", s) for s in sizes)),
        _full_box(b"stco", 0, 0, struct.pack(">II", 1, mdat_offset)),
    )


def _moov(width: int, height: int, sizes: list[int], fps: int, mdat_offset: int | None) -> bytes:
    """With no mdat_offset, the moov of a fragmented file: durations 0, empty tables, and `mvex` for the fragments."""
    delta = MP4_TIMESCALE // fps
    fragmented = mdat_offset is None
    duration = 0 if fragmented else delta * len(sizes)
    bitrate = sum(sizes) * 8 * MP4_TIMESCALE // max(1, delta * len(sizes))
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, MP4_TIMESCALE, duration),
        struct.pack(">IH", 0x00010000, 0x0100),  # rate 1.0, volume 1.0
        b"\x00" * 10,
        _IDENTITY_MATRIX,
        b"\x00" * 24,
        struct.pack(">I", 2),  # next_track_ID
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        0x000003,  # enabled, in movie
        struct.pack(">IIII", 0, 0, 1, 0),
        struct.pack(">I", duration),
        b"\x00" * 8,
        struct.pack(">hhhH", 0, 0, 0, 0),
        _IDENTITY_MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, MP4_TIMESCALE, duration), struct.pack(">HH", 0x55C4, 0))
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I", 0), b"vide", b"\x00" * 12, b"VideoHandler\x00")
    minf = _box(
        b"minf",
        _full_box(b"vmhd", 0, 1, struct.pack(">HHHH", 0, 0, 0, 0)),
        _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))),
        _stbl(width, height, sizes, delta, mdat_offset, bitrate),
    )
    # trex: track 1, sample description 1, default sample duration, size and flags
    mvex = _box(b"mvex", _full_box(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, delta, 0, 0))) if fragmented else b""
    return _box(b"moov", mvhd, _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf)), mvex)


def _jpeg_frames(width: int, height: int, frames: int, fps: int, seed: str) -> list[bytes]:
    if frames < 1 or fps < 1 or MP4_TIMESCALE % fps:
        raise ValueError("frames >= 1 and fps must divide 1000")
    samples = []
    for index in range(frames):
        buffer = io.BytesIO()
        _frame(width, height, index, seed).save(buffer, format="JPEG", quality=80)
        samples.append(buffer.getvalue())
    return samples


_FTYP = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso2", b"mp41")


def mp4(
    width: int = 64,
    height: int = 48,
    *,
    frames: int = 6,
    fps: int = 10,
    seed: str = "",
    moov_first: bool = True,
    mdat_padding: int = 0,
) -> bytes:
    """A playable MP4 (Motion-JPEG in `mp4v`) of `frames / fps` seconds; even sides keep every decoder happy.

    `moov_first=False` puts the movie header after the media; `mdat_padding` appends that many zero bytes to `mdat`
    after the last frame, where no sample points, so the file grows and its duration stays what the frames make.
    """
    samples = _jpeg_frames(width, height, frames, fps, seed)
    sizes = [len(sample) for sample in samples]
    mdat = bytearray(struct.pack(">I", 8 + sum(sizes) + mdat_padding) + b"mdat")
    for sample in samples:
        mdat += sample
    mdat += bytes(mdat_padding)
    if not moov_first:
        return _FTYP + bytes(mdat) + _moov(width, height, sizes, fps, len(_FTYP) + 8)
    # moov's size does not depend on the offset it records (a fixed-width field): measure it, then write it.
    moov_size = len(_moov(width, height, sizes, fps, 0))
    return _FTYP + _moov(width, height, sizes, fps, len(_FTYP) + moov_size + 8) + bytes(mdat)


def mp4_fragmented(
    width: int = 64, height: int = 48, *, frames: int = 6, fps: int = 10, per_fragment: int = 2, seed: str = ""
) -> bytes:
    """A fragmented MP4 (as DASH/HLS packagers and live encoders write): `moov` has no samples and says duration 0;
    each `moof` (`tfhd`, `tfdt`, `trun` with per-sample durations and sizes) times the frames of the `mdat` after it."""
    samples = _jpeg_frames(width, height, frames, fps, seed)
    delta = MP4_TIMESCALE // fps
    ftyp = _box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"isom", b"mp41")
    out = bytearray(ftyp + _moov(width, height, [len(s) for s in samples], fps, None))
    for number, first in enumerate(range(0, frames, per_fragment), start=1):
        chunk = samples[first : first + per_fragment]

        def moof(data_offset: int, chunk: list[bytes] = chunk, number: int = number, first: int = first) -> bytes:
            runs = b"".join(struct.pack(">II", delta, len(sample)) for sample in chunk)
            return _box(
                b"moof",
                _full_box(b"mfhd", 0, 0, struct.pack(">I", number)),
                _box(
                    b"traf",
                    _full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 1)),  # default-base-is-moof, track 1
                    _full_box(b"tfdt", 1, 0, struct.pack(">Q", first * delta)),
                    # data offset present, sample duration present, sample size present
                    _full_box(b"trun", 0, 0x000301, struct.pack(">Ii", len(chunk), data_offset), runs),
                ),
            )

        # The data offset counts from the start of moof to the first sample: moof's own size, then mdat's header.
        out += moof(len(moof(0)) + 8) + _box(b"mdat", *chunk)
    return bytes(out)


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each box between start and end; containers are not entered (call again on a payload)."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size < 8 or offset + size > end:
            raise ValueError(f"box {kind!r} at {offset} has a bad size {size}")
        yield kind, data[offset + 8 : offset + size]
        offset += size
    if offset != end:
        raise ValueError(f"{end - offset} trailing bytes after the last box")


def mp4_duration_seconds(data: bytes) -> float:
    """The movie duration that `mvhd` declares (version 0 or 1)."""
    boxes = dict(mp4_boxes(data))
    mvhd = dict(mp4_boxes(boxes[b"moov"]))[b"mvhd"]
    if mvhd[0] == 1:
        timescale, duration = struct.unpack(">IQ", mvhd[20:32])
    else:
        timescale, duration = struct.unpack(">II", mvhd[12:20])
    return float(duration) / timescale


# WebM ------------------------------------------------------------------------------------------------------------


def _vint_size(size: int) -> bytes:
    for length in range(1, 9):
        if size < (1 << (7 * length)) - 1:
            return (size | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError("element too large")


def _element(element_id: int, payload: bytes) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + _vint_size(len(payload)) + payload


def _uint(element_id: int, value: int) -> bytes:
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _vp8_keyframe(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", lossless=False, quality=60)
    riff = buffer.getvalue()
    offset = 12  # "RIFF" size "WEBP"
    while offset + 8 <= len(riff):
        kind, size = riff[offset : offset + 4], struct.unpack("<I", riff[offset + 4 : offset + 8])[0]
        if kind == b"VP8 ":
            return riff[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    raise RuntimeError("Pillow wrote no VP8 chunk (is its WebP support built in?)")


# The 8-byte size that means "unknown": a live recorder does not know how long a Segment or Cluster will be.
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def _unsized(element_id: int, payload: bytes) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + _UNKNOWN_SIZE + payload


def webm(
    width: int = 64,
    height: int = 48,
    *,
    frames: int = 6,
    fps: int = 10,
    seed: str = "",
    duration: bool = True,
    unknown_sizes: bool = False,
) -> bytes:
    """A WebM of `frames / fps` seconds whose frames are real VP8 keyframes.

    `duration=False` leaves `Info` without `Duration`; `unknown_sizes=True` writes `Segment` and `Cluster` with the
    unknown size, as browsers' MediaRecorder does.
    """
    if frames < 1 or fps < 1:
        raise ValueError("frames and fps must be >= 1")
    frame_ms = 1000 // fps
    header = _element(
        0x1A45DFA3,
        _uint(0x4286, 1)
        + _uint(0x42F7, 1)
        + _uint(0x42F2, 4)
        + _uint(0x42F3, 8)
        + _element(0x4282, b"webm")
        + _uint(0x4287, 2)
        + _uint(0x4285, 2),
    )
    info = _element(
        0x1549A966,
        _uint(0x2AD7B1, 1_000_000)  # TimestampScale: 1 ms
        + (_element(0x4489, struct.pack(">d", float(frame_ms * frames))) if duration else b"")  # TimestampScale units
        + _element(0x4D80, b"imagegen-tests")
        + _element(0x5741, b"imagegen-tests"),
    )
    video = _uint(0xB0, width) + _uint(0xBA, height)
    track = _element(
        0xAE,
        _uint(0xD7, 1) + _uint(0x73C5, 1) + _uint(0x83, 1) + _element(0x86, b"V_VP8") + _element(0xE0, video),
    )
    blocks = b"".join(
        _element(
            0xA3,
            b"\x81" + struct.pack(">hB", index * frame_ms, 0x80) + _vp8_keyframe(_frame(width, height, index, seed)),
        )
        for index in range(frames)
    )
    container = _unsized if unknown_sizes else _element
    cluster = container(0x1F43B675, _uint(0xE7, 0) + blocks)
    return header + container(0x18538067, info + _element(0x1654AE6B, track) + cluster)


def html_error_page() -> bytes:
    """An error page as a misbehaving CDN serves it, here under a video content type."""
    return (
        b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
        b"<body><h1>502 Bad Gateway</h1><p>The origin did not answer. Please try again later.</p></body></html>"
    )
