"""Streaming check that a body is a real MP4 or WebM video, made while it passes by on its way to storage.

A provider's "video" can be an HTML error page served as video/mp4, a file cut short by a dropped connection, or a
container that says nothing plays. `VideoCheck` reads the container structure (ISO BMFF boxes, Matroska/EBML
elements) chunk by chunk: headers and the small metadata (`moov`, `Info`, `Tracks`) are held, media payloads
(`mdat`, the frames in a `Cluster`) are skipped by their declared size and never buffered. Pure Python: Lambda has no
ffmpeg, and a structural check is what tells a real file from a wrong one.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Final

from imagegen.errors import UpstreamError

MP4: Final = "video/mp4"
WEBM: Final = "video/webm"
# moov, Info and Tracks are held whole to be read; a 10-minute MP4's moov is a few hundred KB (one table row per
# frame), so this leaves room for long videos while a hostile size cannot make the worker hold the file.
MAX_METADATA_BYTES: Final = 8 * 1024 * 1024
# Boxes or EBML elements walked in one body; a real video has thousands. Bounds the CPU a body of tiny ones costs.
MAX_ELEMENTS: Final = 1_000_000

_NAMES: Final = {MP4: "an MP4 (ISO BMFF) container", WEBM: "a WebM (Matroska) container"}
_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"
# What an MP4 may start with: `ftyp` (ISO BMFF), or the box layouts of QuickTime-era writers that put it later.
_MP4_FIRST_BOXES: Final = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"})


class InvalidVideo(UpstreamError):
    """The provider's result is not a usable video; `reason` is short, says why, and is safe to show."""

    code = "invalid_video"

    def __init__(self, reason: str) -> None:
        super().__init__(f"the result is not a valid video: {reason}", details={"reason": reason})
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    content_type: str  # MP4 or WEBM
    duration_s: float
    width: int | None  # None when the container does not say
    height: int | None
    bytes: int
    sha256: str


@dataclass(frozen=True)
class _Summary:
    content_type: str
    duration_s: float
    width: int | None
    height: int | None


# --- the streaming driver ------------------------------------------------------------------------------------------
# A parser is a generator that asks for bytes (`_Read`: exactly n bytes, handed back whole) or skips them (`_Skip`:
# counted, never kept), so it reads like a parser of a whole file while the driver feeds it chunks of any size.


@dataclass(frozen=True)
class _Read:
    size: int
    what: str  # named in the reason when the body ends inside it
    at_end_ok: bool = False  # an empty read here is the clean end of the body (the parser gets b"")
    peek: bool = False  # the bytes are read again by the next request


@dataclass(frozen=True)
class _Skip:
    size: int | None  # None: up to the end of the body
    what: str


_Request = _Read | _Skip
_Parser = Generator[_Request, bytes, _Summary]


class VideoCheck:
    """Feed the body with `feed(chunk)`, then call `finish()`; each raises InvalidVideo as soon as the bytes show it.

    Holds at most one pending request's bytes: a box or element header, or a metadata element (MAX_METADATA_BYTES).
    """

    def __init__(self, declared_type: str) -> None:
        self.declared_type = _declared(declared_type)
        self._parser = _parse(self.declared_type)
        self._buffer = bytearray()
        self._skipped = 0
        self._sha256 = hashlib.sha256()
        self._bytes = 0
        self._error: InvalidVideo | None = None
        self._info: VideoInfo | None = None
        self._request = self._settle(next(self._parser))

    @property
    def info(self) -> VideoInfo:
        if self._info is None:
            raise RuntimeError("the check has not finished: call finish() after the last chunk")
        return self._info

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        if self._info is not None:
            raise RuntimeError("the check has finished")
        self._sha256.update(chunk)
        self._bytes += len(chunk)
        try:
            self._consume(memoryview(chunk))
        except InvalidVideo as exc:
            self._error = exc
            raise

    def finish(self) -> VideoInfo:
        if self._error is not None:
            raise self._error
        if self._info is None:
            try:
                summary = self._drain()
            except InvalidVideo as exc:
                self._error = exc
                raise
            self._info = VideoInfo(
                content_type=summary.content_type,
                duration_s=summary.duration_s,
                width=summary.width,
                height=summary.height,
                bytes=self._bytes,
                sha256=self._sha256.hexdigest(),
            )
        return self._info

    def _consume(self, view: memoryview) -> None:
        while view:
            request = self._request
            if isinstance(request, _Skip):
                if request.size is None:
                    return  # everything to the end is skipped
                take = min(request.size - self._skipped, len(view))
                self._skipped += take
                view = view[take:]
                if self._skipped == request.size:
                    self._skipped = 0
                    self._advance(b"")
                continue
            take = min(request.size - len(self._buffer), len(view))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) == request.size:
                data = bytes(self._buffer)
                self._buffer.clear()
                self._advance(data)
                if request.peek:
                    self._consume(memoryview(data))

    def _advance(self, data: bytes) -> None:
        try:
            self._request = self._settle(self._parser.send(data))
        except StopIteration:
            # Parsers return only when told the body has ended, which only finish() does.
            raise RuntimeError("the video parser stopped before the end of the body") from None

    def _settle(self, request: _Request) -> _Request:
        # A request for no bytes needs none: answer it at once, so that only requests that wait for input remain.
        while request.size == 0:
            request = self._parser.send(b"")
        return request

    def _drain(self) -> _Summary:
        try:
            while True:
                request = self._request
                ended_cleanly = (isinstance(request, _Skip) and request.size is None) or (
                    isinstance(request, _Read) and request.at_end_ok and not self._buffer
                )
                if not ended_cleanly:
                    raise InvalidVideo(f"truncated: the body ended at byte {self._bytes} inside {request.what}")
                self._request = self._settle(self._parser.send(b""))
        except StopIteration as stop:
            summary: _Summary = stop.value
            return summary


def _declared(content_type: str) -> str:
    declared = content_type.split(";", 1)[0].strip().lower()
    if declared not in (MP4, WEBM):
        raise InvalidVideo(f"declared type {declared or '(none)'} is not {MP4} or {WEBM}")
    return declared


def _parse(declared: str) -> _Parser:
    head = yield _Read(8, "the file signature", at_end_ok=True, peek=True)
    if not head:
        raise InvalidVideo("empty body")
    actual = _sniff(head)
    if actual != declared:
        raise InvalidVideo(f"declared {declared} but the body is {_NAMES[actual]}")
    return (yield from (_mp4() if actual == MP4 else _webm()))


def _sniff(head: bytes) -> str:
    if head.startswith(_EBML_MAGIC):
        return WEBM
    if head[4:8] in _MP4_FIRST_BOXES:
        return MP4
    text = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if text.startswith(b"<"):
        raise InvalidVideo("the body is an HTML or XML document, not a video")
    if text[:1] in (b"{", b"["):
        raise InvalidVideo("the body is JSON, not a video")
    raise InvalidVideo(f"the body is not an MP4 or WebM container (it starts with bytes {head[:4].hex()})")


def _count(elements: int) -> int:
    if elements >= MAX_ELEMENTS:
        raise InvalidVideo(f"more than {MAX_ELEMENTS} boxes or elements")
    return elements + 1


# --- MP4 (ISO/IEC 14496-12) ----------------------------------------------------------------------------------------


def _mp4() -> _Parser:
    movie: _Movie | None = None
    has_mdat = False
    offset = boxes = 0
    while True:
        header = yield _Read(8, f"the box header at byte {offset}", at_end_ok=True)
        if not header:
            break
        boxes = _count(boxes)
        size, kind = struct.unpack(">I4s", header)
        name = _box_name(kind, offset)
        header_size = 8
        if size == 1:
            size = struct.unpack(">Q", (yield _Read(8, f"the 64-bit size of {name}")))[0]
            header_size = 16
        has_mdat = has_mdat or kind == b"mdat"
        if size == 0:  # "extends to the end of the file": the last box, typically an mdat written as it streamed
            if kind in _MP4_METADATA:
                raise InvalidVideo(f"{name} has size 0 (to the end of the file), which a metadata box cannot have")
            yield _Skip(None, name)
            continue
        if size < header_size:
            raise InvalidVideo(f"{name} has an impossible size {size}")
        what = f"{name} ({size} bytes)"
        if kind in _MP4_METADATA:
            if size - header_size > MAX_METADATA_BYTES:
                raise InvalidVideo(f"{what} is larger than the {MAX_METADATA_BYTES} bytes allowed for metadata")
            data = yield _Read(size - header_size, what)
            movie = _read_metadata(movie, kind, data, name)
        else:
            yield _Skip(size - header_size, what)
        offset += size
    if movie is None:
        raise InvalidVideo("no 'moov' box (the movie header)")
    if not has_mdat:
        raise InvalidVideo("no 'mdat' box (the media data)")
    return movie.summary()


_MP4_METADATA: Final = frozenset({b"moov", b"moof"})  # held and read; every other box is skipped by its size


def _read_metadata(movie: _Movie | None, kind: bytes, data: bytes, name: str) -> _Movie:
    if kind == b"moov":
        if movie is not None:
            raise InvalidVideo(f"{name} is a second movie header")
        movie = _read_moov(data)
        if not movie.fragmented:
            movie.summary()  # the whole timing is known now: a zero duration fails before the media streams by
        return movie
    if movie is None:
        raise InvalidVideo(f"{name} is a movie fragment before the movie header")
    _read_moof(movie, data)
    return movie


def _box_name(kind: bytes, offset: int) -> str:
    # Four-character codes are printable ASCII; anything else is not a box header (garbage, or a wrong size before).
    if not all(0x20 <= byte <= 0x7E for byte in kind):
        raise InvalidVideo(f"the box at byte {offset} has a malformed type {kind.hex()}")
    return f"box '{kind.decode('ascii')}' at byte {offset}"


def _boxes(data: bytes, start: int, end: int, where: str) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end]; sizes are checked against the parent."""
    offset = start
    while offset < end:
        if end - offset < 8:
            if any(data[offset:end]):  # a zero terminator is QuickTime's; anything else is debris
                raise InvalidVideo(f"{end - offset} stray bytes at the end of {where}")
            return
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1 and end - offset >= 16:
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise InvalidVideo(
                f"box '{kind.decode('latin-1')}' in {where} has an impossible size {size} "
                f"({end - offset} bytes left in its parent)"
            )
        yield kind, offset + header, offset + size
        offset += size


def _children(data: bytes, start: int, end: int, where: str) -> dict[bytes, tuple[int, int]]:
    """The first box of each type among the children: the boxes read here appear once per parent."""
    found: dict[bytes, tuple[int, int]] = {}
    for kind, child_start, child_end in _boxes(data, start, end, where):
        found.setdefault(kind, (child_start, child_end))
    return found


def _full_box(data: bytes, start: int, end: int, name: str, need: int) -> tuple[int, int]:
    """(version, flags) of a full box whose payload must hold `need` bytes after them."""
    if end - start < 4 + need:
        raise InvalidVideo(f"'{name}' is malformed ({end - start} bytes)")
    return data[start], int.from_bytes(data[start + 1 : start + 4], "big")


@dataclass
class _Track:
    track_id: int = 0
    handler: bytes = b""
    width: int | None = None
    height: int | None = None
    timescale: int = 0  # mdhd: media time units per second
    duration: int = 0  # mdhd, in media time units
    default_sample_duration: int = 0  # trex: for fragments whose tfhd and trun do not say
    fragments_end: int = 0  # where the last movie fragment read ends, in media time units

    def seconds(self) -> float:
        return max(self.duration, self.fragments_end) / self.timescale if self.timescale else 0.0


@dataclass
class _Movie:
    timescale: int
    duration: int  # mvhd, in movie time units; 0 when unknown
    fragment_duration: int  # mehd: a fragmented movie's whole length, when its writer knew it
    fragmented: bool  # mvex present: moof boxes follow with the media's timing
    tracks: dict[int, _Track]
    video: _Track

    def summary(self) -> _Summary:
        # Some writers leave mvhd at 0 and fill in the tracks; fragmented files time their fragments instead.
        ticks = self.duration or self.fragment_duration
        seconds = ticks / self.timescale if ticks else max(track.seconds() for track in self.tracks.values())
        if not seconds > 0:
            raise InvalidVideo("zero duration (the movie header and its tracks say the video lasts 0 s)")
        return _Summary(MP4, seconds, self.video.width, self.video.height)


def _read_moov(moov: bytes) -> _Movie:
    children = _children(moov, 0, len(moov), "'moov'")
    if b"mvhd" not in children:
        raise InvalidVideo("no 'mvhd' box (the movie header's timing)")
    timescale, duration = _timing(moov, *children[b"mvhd"], "mvhd")
    if not timescale:
        raise InvalidVideo("'mvhd' has a timescale of 0")
    tracks: dict[int, _Track] = {}
    for kind, start, end in _boxes(moov, 0, len(moov), "'moov'"):
        if kind == b"trak":
            track = _read_trak(moov, start, end)
            tracks.setdefault(track.track_id, track)
    video = next((track for track in tracks.values() if track.handler == b"vide"), None)
    if video is None:
        raise InvalidVideo("no video track ('trak' with a 'vide' handler)")
    mvex = children.get(b"mvex")
    fragment_duration = _read_mvex(moov, *mvex, tracks) if mvex else 0
    return _Movie(timescale, duration, fragment_duration, mvex is not None, tracks, video)


# Where (timescale, duration) sit in mvhd and mdhd, by box version; all-ones is "duration unknown", read as 0.
_TIMING: Final = {0: (">II", 12, 0xFFFFFFFF), 1: (">IQ", 20, 0xFFFFFFFFFFFFFFFF)}


def _timing(data: bytes, start: int, end: int, name: str) -> tuple[int, int]:
    """(timescale, duration) of an mvhd or mdhd box; the duration is 0 when the box says it is unknown."""
    version = data[start] if end > start else -1
    if version not in _TIMING or end - start < _TIMING[version][1] + 8:
        raise InvalidVideo(f"'{name}' is malformed (version {version}, {end - start} bytes)")
    layout, at, unknown = _TIMING[version]
    timescale, duration = struct.unpack_from(layout, data, start + at)
    return int(timescale), 0 if duration == unknown else int(duration)


def _read_trak(moov: bytes, start: int, end: int) -> _Track:
    track = _Track()
    children = _children(moov, start, end, "'trak'")
    if b"tkhd" not in children:
        raise InvalidVideo("a 'trak' without its 'tkhd' (track header)")
    _read_tkhd(track, moov, *children[b"tkhd"])
    if b"mdia" in children:
        mdia = _children(moov, *children[b"mdia"], "'mdia'")
        if b"hdlr" in mdia:
            hdlr_start, hdlr_end = mdia[b"hdlr"]
            _full_box(moov, hdlr_start, hdlr_end, "hdlr", 8)  # pre_defined, then the handler type
            track.handler = moov[hdlr_start + 8 : hdlr_start + 12]
        if b"mdhd" in mdia:
            track.timescale, track.duration = _timing(moov, *mdia[b"mdhd"], "mdhd")
    return track


def _read_tkhd(track: _Track, data: bytes, start: int, end: int) -> None:
    # track_ID follows the creation and modification times (32 or 64 bits each, by version); width and height are
    # 16.16 fixed point after the matrix, at 76 (version 0) or 88 (version 1).
    version, _ = _full_box(data, start, end, "tkhd", 80)
    if version > 1 or end - start < (88 if version else 76) + 8:
        raise InvalidVideo(f"'tkhd' is malformed (version {version}, {end - start} bytes)")
    track.track_id = struct.unpack_from(">I", data, start + (20 if version else 12))[0]
    width, height = (value >> 16 for value in struct.unpack_from(">II", data, start + (88 if version else 76)))
    track.width, track.height = (width, height) if width and height else (None, None)


def _read_mvex(moov: bytes, start: int, end: int, tracks: dict[int, _Track]) -> int:
    """mehd's fragment duration (0 when absent); records each track's default sample duration from trex."""
    fragment_duration = 0
    for kind, child_start, child_end in _boxes(moov, start, end, "'mvex'"):
        if kind == b"mehd":
            version, _ = _full_box(moov, child_start, child_end, "mehd", 4)
            layout = ">Q" if version == 1 else ">I"
            _full_box(moov, child_start, child_end, "mehd", struct.calcsize(layout))
            fragment_duration = int(struct.unpack_from(layout, moov, child_start + 4)[0])
        elif kind == b"trex":
            _full_box(moov, child_start, child_end, "trex", 12)
            track_id, _, default_duration = struct.unpack_from(">III", moov, child_start + 4)
            if track_id in tracks:
                tracks[track_id].default_sample_duration = default_duration
    return fragment_duration


def _read_moof(movie: _Movie, moof: bytes) -> None:
    """Extends each track's timing by the samples of one movie fragment (tfdt, tfhd and trun of each traf)."""
    for kind, start, end in _boxes(moof, 0, len(moof), "'moof'"):
        if kind != b"traf":
            continue
        children = _children(moof, start, end, "'traf'")
        if b"tfhd" not in children:
            raise InvalidVideo("a track fragment without its 'tfhd'")
        track_id, default_duration = _read_tfhd(moof, *children[b"tfhd"])
        track = movie.tracks.get(track_id)
        if track is None:
            raise InvalidVideo(f"a fragment of track {track_id}, which the movie header does not list")
        begin = _read_tfdt(moof, *children[b"tfdt"]) if b"tfdt" in children else track.fragments_end
        default_duration = default_duration or track.default_sample_duration
        samples = sum(
            _trun_duration(moof, run_start, run_end, default_duration)
            for run_kind, run_start, run_end in _boxes(moof, start, end, "'traf'")
            if run_kind == b"trun"
        )
        track.fragments_end = max(track.fragments_end, begin + samples)


def _read_tfhd(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(track_ID, default sample duration or 0); the optional fields present are named by the flags."""
    _, flags = _full_box(data, start, end, "tfhd", 4)
    at = start + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
    track_id = struct.unpack_from(">I", data, start + 4)[0]
    if not flags & 0x08:
        return track_id, 0
    if end < at + 4:
        raise InvalidVideo(f"'tfhd' is malformed ({end - start} bytes)")
    return track_id, struct.unpack_from(">I", data, at)[0]


def _read_tfdt(data: bytes, start: int, end: int) -> int:
    version, _ = _full_box(data, start, end, "tfdt", 4)
    layout = ">Q" if version == 1 else ">I"
    _full_box(data, start, end, "tfdt", struct.calcsize(layout))
    return int(struct.unpack_from(layout, data, start + 4)[0])


def _trun_duration(data: bytes, start: int, end: int, default_duration: int) -> int:
    """The summed duration of a track run's samples: each sample's own when the flags say so, else the default."""
    _, flags = _full_box(data, start, end, "trun", 4)
    count = struct.unpack_from(">I", data, start + 4)[0]
    first = start + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)  # data offset, first sample flags
    stride = 4 * bin(flags & 0xF00).count("1")  # duration, size, flags, composition offset: 4 bytes each if present
    if first > end or count * stride > end - first:
        raise InvalidVideo(f"'trun' lists {count} samples but holds {end - start} bytes")
    if not flags & 0x100:
        return count * default_duration
    return sum(struct.unpack_from(">I", data, first + index * stride)[0] for index in range(count))


# --- WebM (Matroska / EBML, RFC 8794 and RFC 9559) -----------------------------------------------------------------

_EBML: Final = 0x1A45DFA3
_SEGMENT: Final = 0x18538067
_INFO: Final = 0x1549A966
_TRACKS: Final = 0x1654AE6B
_CLUSTER: Final = 0x1F43B675
_LEVEL1: Final = frozenset(
    {0x114D9B74, _INFO, _TRACKS, 0x1C53BB6B, _CLUSTER, 0x1254C367, 0x1043A770, 0x1941A469}
)  # SeekHead, Info, Tracks, Cues, Cluster, Tags, Chapters, Attachments
_VOID: Final = 0xEC
_BLOCK_GROUP: Final = 0xA0
_BLOCK: Final = 0xA1
_SIMPLE_BLOCK: Final = 0xA3
_CLUSTER_TIMESTAMP: Final = 0xE7
_ENTERED: Final = frozenset({_SEGMENT, _CLUSTER, _BLOCK_GROUP})  # containers whose children the stream walks
_MAX_TRACKS_TIMED: Final = 16
_EBML_NAMES: Final = {_EBML: "EBML header", _SEGMENT: "Segment", _INFO: "Info", _TRACKS: "Tracks", _CLUSTER: "Cluster"}


@dataclass
class _Open:
    element_id: int
    start: int
    end: int | None  # None: unknown size, ended by the first element that cannot be its child


@dataclass
class _WebmTrack:
    number: int = 0
    kind: int = 0  # TrackType: 1 video, 2 audio
    default_duration_ns: int = 0
    width: int | None = None
    height: int | None = None
    has_video: bool = False


@dataclass
class _WebmState:
    elements: int = 0
    segments: int = 0
    clusters: int = 0
    timestamp_scale: int = 0  # 0 until Info is read
    duration: float | None = None  # in TimestampScale units, when Info says
    video: _WebmTrack | None = None
    tracks_read: bool = False
    cluster_timestamp: int = 0
    # track number -> [first timestamp, last timestamp, blocks]: the length when Info has no Duration
    blocks: dict[int, list[int]] = field(default_factory=dict)


def _webm() -> _Parser:
    state = _WebmState()
    stack: list[_Open] = []
    offset = 0
    while True:
        sized = _close_ended(stack, offset)
        header = yield from _element_header(offset, sized)
        if header is None:
            break
        element_id, size, header_size = header
        state.elements = _count(state.elements)
        while stack and stack[-1].end is None and not _may_contain(stack[-1].element_id, element_id):
            stack.pop()  # an unknown-size Cluster or Segment ends where a sibling or parent-level element starts
        parent = stack[-1].element_id if stack else None
        what = f"{_element_name(element_id)} at byte {offset}"
        start = offset + header_size
        _check_place(state, element_id, parent, what)
        if size is None and element_id not in (_SEGMENT, _CLUSTER):
            raise InvalidVideo(f"{what} has an unknown size, which only a Segment or Cluster may have")
        if size is not None and sized is not None and sized.end is not None and start + size > sized.end:
            raise InvalidVideo(f"{what} has an impossible size {size}: it overruns its parent")
        if element_id in _ENTERED:
            stack.append(_Open(element_id, offset, None if size is None else start + size))
            offset = start
            continue
        assert size is not None
        yield from _webm_leaf(state, element_id, parent, size, f"{what} ({size} bytes)")
        offset = start + size
    return _webm_summary(state)


def _close_ended(stack: list[_Open], offset: int) -> _Open | None:
    """Closes the containers whose size ends at `offset` (and all inside them); returns the innermost sized one
    still open, whose end bounds what follows and before which the body may not end."""
    for index, container in enumerate(stack):
        if container.end is not None and container.end <= offset:
            del stack[index:]
            break
    return next((container for container in reversed(stack) if container.end is not None), None)


def _element_header(offset: int, sized: _Open | None) -> Generator[_Request, bytes, tuple[int, int | None, int] | None]:
    """(ID, size or None when unknown, header length) of the element at `offset`; None at the clean end of the body,
    which is only where no sized container is still open."""
    what = f"the element header at byte {offset}"
    if sized is not None:
        what += f" in {_element_name(sized.element_id)} at byte {sized.start} (which ends at byte {sized.end})"
    first = yield _Read(1, what, at_end_ok=sized is None)
    if not first:
        return None
    id_length = _vint_length(first[0], 4, f"the element ID at byte {offset}")
    element_id = int.from_bytes(first + (yield _Read(id_length - 1, what)), "big")
    size_first = yield _Read(1, what)
    size_length = _vint_length(size_first[0], 8, f"the size of the element at byte {offset}")
    raw = int.from_bytes(size_first + (yield _Read(size_length - 1, what)), "big")
    value = raw ^ (1 << (7 * size_length))  # drop the length marker bit
    unknown = value == (1 << (7 * size_length)) - 1
    return element_id, None if unknown else value, id_length + size_length


def _vint_length(first: int, limit: int, what: str) -> int:
    length = 9 - first.bit_length() if first else 9  # the position of the first set bit
    if length > limit:
        raise InvalidVideo(f"{what} is not a valid EBML variable-length integer")
    return length


def _may_contain(container: int, element_id: int) -> bool:
    if element_id in (_EBML, _SEGMENT):
        return False
    return container != _CLUSTER or element_id not in _LEVEL1


def _check_place(state: _WebmState, element_id: int, parent: int | None, what: str) -> None:
    if parent is None:
        if element_id == _EBML and state.elements > 1:
            raise InvalidVideo(f"{what} is a second EBML header")
        if element_id == _SEGMENT:
            if state.segments:
                raise InvalidVideo(f"{what} is a second Segment")
            state.segments += 1
        elif element_id not in (_EBML, _VOID):
            raise InvalidVideo(f"{what} is outside any Segment")
    elif element_id in (_EBML, _SEGMENT):
        raise InvalidVideo(f"{what} is inside another element")
    elif element_id == _CLUSTER:
        if parent != _SEGMENT:
            raise InvalidVideo(f"{what} is not in the Segment")
        state.clusters += 1
        state.cluster_timestamp = 0
    elif element_id in (_BLOCK_GROUP, _SIMPLE_BLOCK) and parent != _CLUSTER:
        raise InvalidVideo(f"{what} is not in a Cluster")


def _webm_leaf(
    state: _WebmState, element_id: int, parent: int | None, size: int, what: str
) -> Generator[_Request, bytes, None]:
    if element_id == _EBML:
        if size > 4096:
            raise InvalidVideo(f"{what} is too large for an EBML header")
        _check_doctype((yield _Read(size, what)))
    elif element_id in (_INFO, _TRACKS) and parent == _SEGMENT:
        if size > MAX_METADATA_BYTES:
            raise InvalidVideo(f"{what} is larger than the {MAX_METADATA_BYTES} bytes allowed for metadata")
        data = yield _Read(size, what)
        if element_id == _INFO:
            _read_info(state, data)
        else:
            _read_tracks(state, data)
    elif element_id == _CLUSTER_TIMESTAMP and parent == _CLUSTER:
        if size > 8:
            raise InvalidVideo(f"{what} is too large for a timestamp")
        state.cluster_timestamp = int.from_bytes((yield _Read(size, what)), "big")
    elif element_id == _SIMPLE_BLOCK or (element_id == _BLOCK and parent == _BLOCK_GROUP):
        head = yield _Read(min(size, 11), what)  # track number (up to 8 bytes), then a 16-bit relative timestamp
        _note_block(state, head, what)
        yield _Skip(size - len(head), what)
    else:
        yield _Skip(size, what)


def _element_name(element_id: int) -> str:
    return _EBML_NAMES.get(element_id, f"element 0x{element_id:X}")


def _elements(data: bytes, start: int, end: int, where: str) -> Iterator[tuple[int, int, int]]:
    """(ID, payload start, payload end) of each child element in data[start:end]; sizes must be known and fit."""
    offset = start
    while offset < end:
        id_length = _vint_length(data[offset], 4, f"an element ID in {where}")
        size_at = offset + id_length
        if size_at >= end:
            raise InvalidVideo(f"an element header runs past the end of {where}")
        size_length = _vint_length(data[size_at], 8, f"an element size in {where}")
        payload = size_at + size_length
        if payload > end:
            raise InvalidVideo(f"an element header runs past the end of {where}")
        element_id = int.from_bytes(data[offset:size_at], "big")
        size = int.from_bytes(data[size_at:payload], "big") ^ (1 << (7 * size_length))
        if size == (1 << (7 * size_length)) - 1 or payload + size > end:
            raise InvalidVideo(f"{_element_name(element_id)} in {where} has an impossible size {size}")
        yield element_id, payload, payload + size
        offset = payload + size


def _uint(data: bytes, start: int, end: int, name: str) -> int:
    if end - start > 8:
        raise InvalidVideo(f"{name} is longer than 8 bytes")
    return int.from_bytes(data[start:end], "big")


def _check_doctype(header: bytes) -> None:
    doctype = "matroska"  # the EBML default when DocType is absent
    for element_id, start, end in _elements(header, 0, len(header), "the EBML header"):
        if element_id == 0x4282:
            doctype = header[start:end].rstrip(b"\x00").decode("ascii", "replace")
    if doctype != "webm":
        raise InvalidVideo(f"declared {WEBM} but the body is a Matroska file of DocType {doctype!r}, not 'webm'")


def _read_info(state: _WebmState, info: bytes) -> None:
    if state.timestamp_scale:
        raise InvalidVideo("a second Info element")
    state.timestamp_scale = 1_000_000  # nanoseconds per unit, the default
    for element_id, start, end in _elements(info, 0, len(info), "Info"):
        if element_id == 0x2AD7B1:  # TimestampScale
            state.timestamp_scale = _uint(info, start, end, "TimestampScale")
            if not state.timestamp_scale:
                raise InvalidVideo("Info has a TimestampScale of 0")
        elif element_id == 0x4489:  # Duration, a float in TimestampScale units
            layout = {0: None, 4: ">f", 8: ">d"}.get(end - start, "bad")
            if layout == "bad":
                raise InvalidVideo(f"Info's Duration is {end - start} bytes, not a 4- or 8-byte float")
            state.duration = struct.unpack_from(layout, info, start)[0] if layout else 0.0
    if state.duration is not None and not (math.isfinite(state.duration) and state.duration > 0):
        raise InvalidVideo(f"zero duration (Info says the video lasts {state.duration})")


def _read_tracks(state: _WebmState, tracks: bytes) -> None:
    if state.tracks_read:
        raise InvalidVideo("a second Tracks element")
    state.tracks_read = True
    for element_id, start, end in _elements(tracks, 0, len(tracks), "Tracks"):
        if element_id != 0xAE:  # TrackEntry
            continue
        track = _read_track_entry(tracks, start, end)
        if state.video is None and (track.kind == 1 or track.has_video):
            state.video = track


def _read_track_entry(data: bytes, start: int, end: int) -> _WebmTrack:
    track = _WebmTrack()
    for element_id, child_start, child_end in _elements(data, start, end, "a TrackEntry"):
        if element_id == 0xD7:
            track.number = _uint(data, child_start, child_end, "TrackNumber")
        elif element_id == 0x83:
            track.kind = _uint(data, child_start, child_end, "TrackType")
        elif element_id == 0x23E383:
            track.default_duration_ns = _uint(data, child_start, child_end, "DefaultDuration")
        elif element_id == 0xE0:  # Video
            track.has_video = True
            for video_id, video_start, video_end in _elements(data, child_start, child_end, "Video"):
                if video_id == 0xB0:
                    track.width = _uint(data, video_start, video_end, "PixelWidth") or None
                elif video_id == 0xBA:
                    track.height = _uint(data, video_start, video_end, "PixelHeight") or None
    return track


def _note_block(state: _WebmState, head: bytes, what: str) -> None:
    length = _vint_length(head[0], 8, f"the track number of {what}") if head else 9
    if len(head) < length + 3:  # track number, 16-bit timestamp, flags
        raise InvalidVideo(f"{what} is too short for a block header")
    track = int.from_bytes(head[:length], "big") ^ (1 << (7 * length))
    timestamp = state.cluster_timestamp + struct.unpack_from(">h", head, length)[0]
    span = state.blocks.get(track)
    if span is not None:
        span[0], span[1], span[2] = min(span[0], timestamp), max(span[1], timestamp), span[2] + 1
    elif len(state.blocks) < _MAX_TRACKS_TIMED:
        state.blocks[track] = [timestamp, timestamp, 1]


def _webm_summary(state: _WebmState) -> _Summary:
    if not state.segments:
        raise InvalidVideo("no Segment")
    if not state.timestamp_scale:
        raise InvalidVideo("no Info element (the timing)")
    if state.video is None:
        raise InvalidVideo("no video track in Tracks")
    if not state.clusters:
        raise InvalidVideo("no Cluster (the media data)")
    units = state.duration if state.duration is not None else _span_of_blocks(state, state.video)
    seconds = units * state.timestamp_scale / 1e9
    if not seconds > 0:
        raise InvalidVideo("zero duration (Info has none and the blocks span 0 s)")
    return _Summary(WEBM, seconds, state.video.width, state.video.height)


def _span_of_blocks(state: _WebmState, video: _WebmTrack) -> float:
    """Without Info's Duration (live recorders omit it): first to last frame of the video track, plus one frame."""
    span = state.blocks.get(video.number)
    if span is None:
        return 0.0
    first, last, count = span
    if video.default_duration_ns:
        frame = video.default_duration_ns / state.timestamp_scale
    else:
        frame = (last - first) / (count - 1) if count > 1 else 0.0
    return last - first + frame
