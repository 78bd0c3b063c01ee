"""The streaming video check: what it accepts (MP4 either way round, fragmented MP4, WebM, live WebM), what it rejects
and why, and that it reads chunk by chunk without holding media payloads."""

from __future__ import annotations

import hashlib
import random
import struct
import tracemalloc

import pytest
from imagegen.errors import UpstreamError
from imagegen.media import video_check
from imagegen.media.video_check import MAX_METADATA_BYTES, InvalidVideo, VideoCheck, VideoInfo

from tests.doubles import video

MiB = 1024 * 1024


def check(data: bytes, declared: str = "video/mp4", *, chunk: int = 4096) -> VideoInfo:
    checker = VideoCheck(declared)
    view = memoryview(data)
    for start in range(0, len(data), chunk):
        checker.feed(view[start : start + chunk])
    return checker.finish()


def reason(data: bytes, declared: str = "video/mp4", *, chunk: int = 4096) -> str:
    with pytest.raises(InvalidVideo) as caught:
        check(data, declared, chunk=chunk)
    return caught.value.reason


# --- MP4 surgery: real files from tests/doubles/video.py, changed in one place ------------------------------------


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def locate(data: bytes, *path: bytes) -> tuple[int, int]:
    """Payload start and end of the first box at `path` (b"moov", b"trak", ...)."""
    start, end = 0, len(data)
    for kind in path:
        offset = start
        while True:
            size, found = struct.unpack_from(">I4s", data, offset)
            if found == kind:
                start, end = offset + 8, offset + size
                break
            offset += size
            assert offset < end, f"no {kind!r} on the path {path}"
    return start, end


def patched(data: bytes, path: tuple[bytes, ...], at: int, new: bytes) -> bytes:
    start, _ = locate(data, *path)
    return data[: start + at] + new + data[start + at + len(new) :]


def top_boxes(data: bytes) -> dict[bytes, bytes]:
    return {kind: box(kind, payload) for kind, payload in video.mp4_boxes(data)}


MVHD = (b"moov", b"mvhd")
TKHD = (b"moov", b"trak", b"tkhd")
MDHD = (b"moov", b"trak", b"mdia", b"mdhd")
HDLR = (b"moov", b"trak", b"mdia", b"hdlr")
STCO = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stco")


def zero_duration_mp4(**options: object) -> bytes:
    data = video.mp4(**options)  # type: ignore[arg-type]
    data = patched(data, MVHD, 16, bytes(4))  # version 0: duration after flags, two times and the timescale
    return patched(data, MDHD, 16, bytes(4))


# --- WebM pieces, for files the double does not make ---------------------------------------------------------------


def element(element_id: int, payload: bytes) -> bytes:
    # An 8-byte size for every element: valid EBML, and the payload can change without re-encoding the length.
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + _size(len(payload)) + payload


def _size(size: int) -> bytes:
    return (size | (1 << 56)).to_bytes(8, "big")


EBML_HEADER = element(0x1A45DFA3, element(0x4282, b"webm"))
INFO = element(0x1549A966, element(0x2AD7B1, (1_000_000).to_bytes(3, "big")) + element(0x4489, struct.pack(">d", 40)))
VIDEO_TRACK = element(
    0x1654AE6B,
    element(
        0xAE,
        element(0xD7, b"\x01")
        + element(0x83, b"\x01")
        + element(0xE0, element(0xB0, b"\x40") + element(0xBA, b"\x30")),
    ),
)
CLUSTER = element(0x1F43B675, element(0xE7, b"\x00") + element(0xA3, b"\x81\x00\x00\x80" + b"frame-data"))


UNKNOWN = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # the 8-byte "unknown size"


def segment(*children: bytes) -> bytes:
    return EBML_HEADER + element(0x18538067, b"".join(children))


# --- accepted ---------------------------------------------------------------------------------------------------------


class TestAccepted:
    @pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 30])
    def test_given_a_fast_start_mp4_when_checked_in_chunks_of_any_size_then_its_facts_come_back(
        self, chunk: int
    ) -> None:
        # Given the double's MP4: 6 frames at 10 fps, 64x48, moov before mdat
        data = video.mp4(64, 48, frames=6, fps=10)
        # When it is checked, fed in chunks of `chunk` bytes
        info = check(data, chunk=chunk)
        # Then every fact is the file's own
        assert info == VideoInfo("video/mp4", 0.6, 64, 48, len(data), hashlib.sha256(data).hexdigest())

    def test_given_an_mp4_with_moov_after_mdat_when_checked_then_it_is_valid(self) -> None:
        # Given an MP4 whose movie header comes last (as a writer that does not rewrite its file leaves it)
        data = video.mp4(80, 64, frames=12, fps=20, moov_first=False)
        assert list(top_boxes(data)) == [b"ftyp", b"mdat", b"moov"]
        # When checked
        info = check(data, chunk=1000)
        # Then it is as valid as the fast-start layout
        assert (info.content_type, info.duration_s, info.width, info.height, info.bytes) == (
            "video/mp4",
            0.6,
            80,
            64,
            len(data),
        )

    def test_given_an_mp4_with_a_large_padded_mdat_when_checked_then_its_duration_is_that_of_its_frames(self) -> None:
        data = video.mp4(frames=5, fps=10, mdat_padding=3 * MiB)
        info = check(data, chunk=65536)
        assert (info.duration_s, info.bytes, info.sha256) == (0.5, len(data), hashlib.sha256(data).hexdigest())

    def test_given_an_mp4_whose_mdat_has_a_64_bit_size_when_checked_then_it_is_valid(self) -> None:
        # Given ftyp + mdat (with the 16-byte header that files over 4 GB need) + moov, sample offsets moved to match
        boxes = top_boxes(video.mp4(moov_first=False))
        mdat_payload = boxes[b"mdat"][8:]
        large_mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(mdat_payload)) + mdat_payload
        moov = patched(boxes[b"moov"], STCO, 8, struct.pack(">I", len(boxes[b"ftyp"]) + 16))
        data = boxes[b"ftyp"] + large_mdat + moov
        # When checked, Then the 64-bit size is honoured
        assert check(data).duration_s == 0.6

    def test_given_an_mp4_whose_last_box_has_size_zero_when_checked_then_it_runs_to_the_end(self) -> None:
        # Given moov first, then an mdat of size 0 ("to the end of the file", as a streaming writer leaves it)
        boxes = top_boxes(video.mp4())
        data = boxes[b"ftyp"] + boxes[b"moov"] + struct.pack(">I4s", 0, b"mdat") + boxes[b"mdat"][8:]
        # When checked, Then valid
        assert check(data, chunk=100).duration_s == 0.6

    def test_given_an_mp4_whose_mvhd_duration_is_zero_when_its_track_has_one_then_the_track_gives_it(self) -> None:
        # Given a movie header that says 0 (some writers leave it) over a media header that says 600 ms
        data = patched(video.mp4(frames=6, fps=10), MVHD, 16, bytes(4))
        # When checked, Then the track's duration is the video's
        assert check(data).duration_s == 0.6

    def test_given_a_fragmented_mp4_when_checked_then_the_fragments_give_the_duration(self) -> None:
        # Given a fragmented MP4: its moov says 0, its moof boxes time 7 frames at 10 fps in 4 fragments
        data = video.mp4_fragmented(64, 48, frames=7, fps=10, per_fragment=2)
        assert list(video.mp4_boxes(data))[2][0] == b"moof"
        # When checked
        info = check(data, chunk=333)
        # Then the duration is the fragments' 0.7 s, and the size comes from the track header
        assert (info.content_type, info.duration_s, info.width, info.height) == ("video/mp4", 0.7, 64, 48)

    def test_given_an_mp4_whose_track_header_has_no_size_when_checked_then_width_and_height_are_none(self) -> None:
        data = patched(video.mp4(), TKHD, 76, bytes(8))
        info = check(data)
        assert (info.width, info.height, info.duration_s) == (None, None, 0.6)

    @pytest.mark.parametrize("chunk", [1, 5, 4096])
    def test_given_a_webm_when_checked_then_its_facts_come_back(self, chunk: int) -> None:
        data = video.webm(96, 64, frames=8, fps=10)
        info = check(data, "video/webm", chunk=chunk)
        assert info == VideoInfo("video/webm", 0.8, 96, 64, len(data), hashlib.sha256(data).hexdigest())

    def test_given_a_live_recorder_webm_when_checked_then_the_blocks_give_the_duration(self) -> None:
        # Given a WebM as MediaRecorder writes it: no Duration, Segment and Cluster of unknown size
        data = video.webm(frames=6, fps=10, duration=False, unknown_sizes=True)
        # When checked
        info = check(data, "video/webm", chunk=3)
        # Then the duration is first to last frame plus one frame interval: 6 frames at 10 fps
        assert (info.duration_s, info.width, info.height) == (pytest.approx(0.6), 64, 48)

    @pytest.mark.parametrize("declared", ["Video/MP4", "video/mp4; codecs=avc1.42E01E", " video/mp4 "])
    def test_given_a_declared_type_with_case_or_parameters_when_checked_then_it_counts_as_video_mp4(
        self, declared: str
    ) -> None:
        assert check(video.mp4(), declared).content_type == "video/mp4"


# --- rejected, each with its reason -------------------------------------------------------------------------------


class TestNotAVideo:
    def test_given_an_html_page_served_as_video_mp4_when_the_first_chunk_arrives_then_it_is_rejected_at_once(
        self,
    ) -> None:
        # Given the error page a broken CDN serves as video/mp4
        checker = VideoCheck("video/mp4")
        # When its first 16 bytes arrive
        with pytest.raises(InvalidVideo) as caught:
            checker.feed(video.html_error_page()[:16])
        # Then it is rejected then, with the reason; more bytes or finish() give the same answer
        assert caught.value.reason == "the body is an HTML or XML document, not a video"
        with pytest.raises(InvalidVideo) as again:
            checker.finish()
        assert again.value is caught.value

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b'{"error": "quota exceeded"}', "the body is JSON, not a video"),
            (b"  \r\n<?xml version='1.0'?><Error/>", "the body is an HTML or XML document, not a video"),
            (bytes(range(200, 240)), "the body is not an MP4 or WebM container (it starts with bytes c8c9cacb)"),
            (b"", "empty body"),
            (b"\x00\x00\x00", "truncated: the body ended at byte 3 inside the file signature"),
            (
                b"\x89PNG\r\n\x1a\n" + bytes(64),
                "the body is not an MP4 or WebM container (it starts with bytes 89504e47)",
            ),
        ],
    )
    def test_given_a_body_that_is_no_container_when_checked_then_the_reason_says_what_it_is(
        self, body: bytes, expected: str
    ) -> None:
        assert reason(body) == expected

    def test_given_invalid_video_when_raised_then_it_is_a_502_naming_the_reason(self) -> None:
        with pytest.raises(InvalidVideo) as caught:
            check(b"<html></html>")
        error = caught.value
        assert isinstance(error, UpstreamError)
        assert (error.status, error.code, error.details) == (
            502,
            "invalid_video",
            {"reason": "the body is an HTML or XML document, not a video"},
        )
        assert error.message == "the result is not a valid video: the body is an HTML or XML document, not a video"


class TestDeclaredType:
    @pytest.mark.parametrize(
        ("body", "declared", "expected"),
        [
            (video.mp4(), "video/webm", "declared video/webm but the body is an MP4 (ISO BMFF) container"),
            (video.webm(), "video/mp4", "declared video/mp4 but the body is a WebM (Matroska) container"),
        ],
    )
    def test_given_a_body_of_the_other_type_when_checked_then_rejected(
        self, body: bytes, declared: str, expected: str
    ) -> None:
        assert reason(body, declared) == expected

    @pytest.mark.parametrize("declared", ["image/png", "video/quicktime", "application/octet-stream", ""])
    def test_given_a_declared_type_that_is_not_mp4_or_webm_when_the_check_starts_then_rejected(
        self, declared: str
    ) -> None:
        with pytest.raises(InvalidVideo, match="is not video/mp4 or video/webm") as caught:
            VideoCheck(declared)
        assert caught.value.reason == f"declared type {declared or '(none)'} is not video/mp4 or video/webm"

    def test_given_a_matroska_file_declared_as_webm_when_checked_then_its_doctype_disagrees(self) -> None:
        data = video.webm().replace(b"\x42\x82\x84webm", b"\x42\x82\x84mkv2", 1)
        assert reason(data, "video/webm") == (
            "declared video/webm but the body is a Matroska file of DocType 'mkv2', not 'webm'"
        )


class TestTruncated:
    def test_given_an_mp4_cut_inside_mdat_when_finished_then_truncated_naming_the_box(self) -> None:
        data = video.mp4()
        mdat_at = locate(data, b"mdat")[0] - 8
        cut = data[:-100]
        assert reason(cut) == (
            f"truncated: the body ended at byte {len(cut)} inside box 'mdat' at byte {mdat_at} "
            f"({len(data) - mdat_at} bytes)"
        )

    def test_given_an_mp4_with_moov_last_cut_inside_moov_when_finished_then_truncated_naming_moov(self) -> None:
        data = video.mp4(moov_first=False)
        cut = data[:-20]
        assert reason(cut).startswith(f"truncated: the body ended at byte {len(cut)} inside box 'moov' at byte ")

    def test_given_a_valid_mp4_with_bytes_appended_when_finished_then_the_stray_bytes_are_a_truncated_box(
        self,
    ) -> None:
        data = video.mp4()
        assert reason(data + b"\x00\x01\x02") == (
            f"truncated: the body ended at byte {len(data) + 3} inside the box header at byte {len(data)}"
        )

    def test_given_a_webm_cut_inside_its_last_frame_when_finished_then_truncated(self) -> None:
        cut = video.webm()[:-10]
        assert reason(cut, "video/webm").startswith(f"truncated: the body ended at byte {len(cut)} inside element 0xA3")

    def test_given_a_webm_cut_between_elements_of_a_sized_segment_when_finished_then_truncated(self) -> None:
        # Given a Segment that declares more than arrives, cut exactly after a whole Cluster child
        data = segment(INFO, VIDEO_TRACK, CLUSTER, CLUSTER)
        cut = data[: -len(CLUSTER)]
        # When finished, Then the sized Segment is not complete
        segment_at = len(EBML_HEADER)
        assert reason(cut, "video/webm") == (
            f"truncated: the body ended at byte {len(cut)} inside the element header at byte {len(cut)} "
            f"in Segment at byte {segment_at} (which ends at byte {len(data)})"
        )


class TestZeroDuration:
    def test_given_an_mp4_whose_headers_say_zero_when_its_moov_arrives_then_rejected_before_the_media(self) -> None:
        # Given an MP4 whose movie and media headers both say 0 s, moov first
        data = zero_duration_mp4()
        moov_end = locate(data, b"moov")[1]
        checker = VideoCheck("video/mp4")
        # When the bytes up to the end of moov arrive, Then it is rejected there, before mdat streams by
        with pytest.raises(InvalidVideo) as caught:
            checker.feed(data[:moov_end])
        assert caught.value.reason == "zero duration (the movie header and its tracks say the video lasts 0 s)"

    def test_given_a_zero_duration_mp4_with_moov_last_when_finished_then_rejected(self) -> None:
        assert reason(zero_duration_mp4(moov_first=False)) == (
            "zero duration (the movie header and its tracks say the video lasts 0 s)"
        )

    def test_given_a_fragmented_mp4_without_fragments_when_finished_then_zero_duration(self) -> None:
        boxes = list(video.mp4_boxes(video.mp4_fragmented()))
        data = b"".join(box(kind, payload) for kind, payload in boxes if kind in (b"ftyp", b"moov", b"mdat"))
        assert reason(data).startswith("zero duration")

    def test_given_a_webm_whose_info_says_zero_when_checked_then_rejected(self) -> None:
        data = video.webm()
        at = data.index(b"\x44\x89\x88") + 3  # Duration, an 8-byte float
        assert reason(data[:at] + struct.pack(">d", 0.0) + data[at + 8 :], "video/webm") == (
            "zero duration (Info says the video lasts 0.0)"
        )

    def test_given_a_webm_without_duration_and_one_frame_when_checked_then_zero_duration(self) -> None:
        data = video.webm(frames=1, duration=False)
        assert reason(data, "video/webm") == "zero duration (Info has none and the blocks span 0 s)"


class TestImpossibleSizes:
    def test_given_a_box_smaller_than_its_header_when_checked_then_impossible_size(self) -> None:
        data = video.mp4()
        moov_at = locate(data, b"moov")[0] - 8
        bad = data[:moov_at] + struct.pack(">I", 4) + data[moov_at + 4 :]
        assert reason(bad) == f"box 'moov' at byte {moov_at} has an impossible size 4"

    def test_given_a_64_bit_size_smaller_than_its_header_when_checked_then_impossible_size(self) -> None:
        ftyp = top_boxes(video.mp4())[b"ftyp"]
        assert reason(ftyp + struct.pack(">I4sQ", 1, b"mdat", 12)) == (
            f"box 'mdat' at byte {len(ftyp)} has an impossible size 12"
        )

    def test_given_a_box_inside_moov_that_overruns_it_when_checked_then_impossible_size(self) -> None:
        data = video.mp4()
        start, _ = locate(data, *MVHD)
        bad = data[: start - 8] + struct.pack(">I", 1 << 20) + data[start - 4 :]
        assert reason(bad).startswith("box 'mvhd' in 'moov' has an impossible size 1048576")

    def test_given_a_moov_larger_than_the_metadata_cap_when_its_header_arrives_then_rejected_unread(self) -> None:
        # Given a box header that announces a moov over the cap
        ftyp = top_boxes(video.mp4())[b"ftyp"]
        header = struct.pack(">I4s", MAX_METADATA_BYTES + 9, b"moov")
        checker = VideoCheck("video/mp4")
        # When only its header has arrived, Then it is rejected: nothing of it was going to be buffered
        with pytest.raises(InvalidVideo) as caught:
            checker.feed(ftyp + header)
        assert caught.value.reason == (
            f"box 'moov' at byte {len(ftyp)} ({MAX_METADATA_BYTES + 9} bytes) is larger than the "
            f"{MAX_METADATA_BYTES} bytes allowed for metadata"
        )

    def test_given_a_box_with_a_non_text_type_when_checked_then_malformed(self) -> None:
        ftyp = top_boxes(video.mp4())[b"ftyp"]
        assert reason(ftyp + struct.pack(">I", 16) + b"\x00\xff\x10\x01" + bytes(8)) == (
            f"the box at byte {len(ftyp)} has a malformed type 00ff1001"
        )

    def test_given_a_trun_that_lists_more_samples_than_it_holds_when_checked_then_rejected(self) -> None:
        data = video.mp4_fragmented(frames=2, per_fragment=2)
        at = data.index(b"trun") + 8  # after the version and flags: the sample count
        bad = data[:at] + struct.pack(">I", 1_000_000) + data[at + 4 :]
        assert reason(bad).startswith("'trun' lists 1000000 samples but holds")

    def test_given_a_webm_element_that_overruns_its_parent_when_checked_then_impossible_size(self) -> None:
        # Given an Info whose declared size passes the end of the (sized) Segment around it
        info = INFO[:4] + _size(1 << 20) + INFO[12:]
        data = EBML_HEADER + element(0x18538067, info + VIDEO_TRACK + CLUSTER)
        info_at = len(EBML_HEADER) + 12
        assert (
            reason(data, "video/webm")
            == f"Info at byte {info_at} has an impossible size 1048576: it overruns its parent"
        )

    def test_given_an_unknown_size_cluster_in_a_sized_segment_when_a_block_overruns_the_segment_then_rejected(
        self,
    ) -> None:
        # Given a sized Segment whose last Cluster has an unknown size, and a block that claims more than is left
        block = element(0xA3, b"\x81\x00\x28\x80" + b"frame-data")
        long_block = block[:1] + _size(1 << 20) + block[9:]
        cluster = b"\x1f\x43\xb6\x75" + UNKNOWN + element(0xE7, b"\x00") + long_block
        data = segment(INFO, VIDEO_TRACK, cluster)
        # When checked, Then the Segment's size bounds the block even through the unsized Cluster
        block_at = len(data) - len(long_block)
        assert reason(data, "video/webm") == (
            f"element 0xA3 at byte {block_at} has an impossible size 1048576: it overruns its parent"
        )

    def test_given_an_unknown_size_cluster_that_fills_a_sized_segment_when_checked_then_valid(self) -> None:
        # Given a sized Segment whose last Cluster has an unknown size and runs to the Segment's end
        frames = element(0xA3, b"\x81\x00\x00\x80" + b"frame-data") + element(0xA3, b"\x81\x00\x28\x80" + b"frame-2")
        cluster = b"\x1f\x43\xb6\x75" + UNKNOWN + element(0xE7, b"\x00") + frames
        # When checked, Then it is valid: the Cluster ended with the Segment
        assert check(segment(INFO, VIDEO_TRACK, CLUSTER, cluster), "video/webm").duration_s == 0.04

    def test_given_a_webm_element_of_unknown_size_that_cannot_have_one_when_checked_then_rejected(self) -> None:
        info = INFO[:4] + UNKNOWN + INFO[12:]
        data = EBML_HEADER + element(0x18538067, info + VIDEO_TRACK + CLUSTER)
        assert reason(data, "video/webm") == (
            f"Info at byte {len(EBML_HEADER) + 12} has an unknown size, which only a Segment or Cluster may have"
        )

    def test_given_a_webm_with_a_zero_byte_where_an_element_starts_when_checked_then_not_a_valid_integer(
        self,
    ) -> None:
        data = segment(INFO, b"\x00" * 4, VIDEO_TRACK, CLUSTER)
        at = len(EBML_HEADER) + 12 + len(INFO)
        assert reason(data, "video/webm") == (
            f"the element ID at byte {at} is not a valid EBML variable-length integer"
        )

    def test_given_more_elements_than_the_cap_when_checked_then_rejected(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Given a cap of 10 boxes and an MP4 followed by many empty 'free' boxes
        monkeypatch.setattr(video_check, "MAX_ELEMENTS", 10)
        data = video.mp4() + struct.pack(">I4s", 8, b"free") * 20
        # When checked, Then it stops at the cap
        assert reason(data) == "more than 10 boxes or elements"


class TestMissingParts:
    def test_given_an_mp4_without_moov_when_finished_then_no_movie_header(self) -> None:
        boxes = top_boxes(video.mp4())
        assert reason(boxes[b"ftyp"] + boxes[b"mdat"]) == "no 'moov' box (the movie header)"

    def test_given_an_mp4_without_mdat_when_finished_then_no_media_data(self) -> None:
        boxes = top_boxes(video.mp4())
        assert reason(boxes[b"ftyp"] + boxes[b"moov"]) == "no 'mdat' box (the media data)"

    def test_given_an_mp4_with_two_movie_headers_when_checked_then_rejected(self) -> None:
        boxes = top_boxes(video.mp4())
        moov_at = len(boxes[b"ftyp"]) + len(boxes[b"moov"])
        data = boxes[b"ftyp"] + boxes[b"moov"] + boxes[b"moov"] + boxes[b"mdat"]
        assert reason(data) == f"box 'moov' at byte {moov_at} is a second movie header"

    def test_given_an_mp4_with_only_a_sound_track_when_checked_then_no_video_track(self) -> None:
        data = patched(video.mp4(), HDLR, 8, b"soun")
        assert reason(data) == "no video track ('trak' with a 'vide' handler)"

    def test_given_a_movie_fragment_before_the_movie_header_when_checked_then_rejected(self) -> None:
        boxes = list(video.mp4_boxes(video.mp4_fragmented(frames=2, per_fragment=2)))
        ftyp, moov, moof, mdat = (box(kind, payload) for kind, payload in boxes)
        assert reason(ftyp + moof + moov + mdat) == (
            f"box 'moof' at byte {len(ftyp)} is a movie fragment before the movie header"
        )

    def test_given_a_webm_whose_only_track_is_audio_when_checked_then_no_video_track(self) -> None:
        data = video.webm()
        data = data.replace(b"\x83\x81\x01", b"\x83\x81\x02", 1)  # TrackType: audio
        video_at = data.index(b"V_VP8") + 5
        data = data[:video_at] + b"\xec" + data[video_at + 1 :]  # the Video element becomes a Void
        assert reason(data, "video/webm") == "no video track in Tracks"

    def test_given_a_webm_without_clusters_when_finished_then_no_media_data(self) -> None:
        assert reason(segment(INFO, VIDEO_TRACK), "video/webm") == "no Cluster (the media data)"

    def test_given_a_webm_without_info_when_finished_then_no_timing(self) -> None:
        assert reason(segment(VIDEO_TRACK, CLUSTER), "video/webm") == "no Info element (the timing)"

    def test_given_a_webm_with_a_second_segment_when_checked_then_rejected(self) -> None:
        data = segment(INFO, VIDEO_TRACK, CLUSTER)
        second = element(0x18538067, INFO + VIDEO_TRACK + CLUSTER)
        assert reason(data + second, "video/webm") == f"Segment at byte {len(data)} is a second Segment"

    def test_given_the_crafted_webm_pieces_when_whole_then_they_are_valid(self) -> None:
        # The pieces the rejections above break make a structurally valid WebM when whole (40 ms, 64x48; the frame
        # bytes are no real VP8, which a container check does not decode)
        info = check(segment(INFO, VIDEO_TRACK, CLUSTER), "video/webm")
        assert (info.duration_s, info.width, info.height) == (0.04, 64, 48)


class TestStreaming:
    def test_given_a_large_mdat_when_streamed_through_then_the_check_holds_no_payload(self) -> None:
        # Given a 64 MiB MP4 (moov last, so the check must walk past all of mdat before the metadata)
        data = video.mp4(moov_first=False, mdat_padding=64 * MiB)
        view = memoryview(data)
        checker = VideoCheck("video/mp4")
        # When it is fed in 64 KiB chunks under tracemalloc
        tracemalloc.start()
        try:
            for start in range(0, len(data), 65536):
                checker.feed(view[start : start + 65536])
            info = checker.finish()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # Then it is valid, and what the check allocated stayed far below one chunk's worth of the payload
        assert (info.bytes, info.duration_s) == (len(data), 0.6)
        assert peak < 256 * 1024

    def test_given_a_check_not_finished_when_info_is_read_then_it_says_so(self) -> None:
        checker = VideoCheck("video/mp4")
        checker.feed(video.mp4())
        with pytest.raises(RuntimeError, match="has not finished"):
            _ = checker.info
        assert checker.finish() == checker.info

    def test_given_a_finished_check_when_fed_again_then_it_refuses(self) -> None:
        checker = VideoCheck("video/mp4")
        checker.feed(video.mp4())
        checker.finish()
        with pytest.raises(RuntimeError, match="has finished"):
            checker.feed(b"more")


class TestDamagedFiles:
    @pytest.mark.parametrize("seed", range(4))
    def test_given_files_damaged_at_random_in_their_headers_when_checked_then_each_is_a_video_or_invalid(
        self, seed: int
    ) -> None:
        # Given real files of every layout, each with a few bytes changed, cut or inserted near its metadata
        rng = random.Random(seed)
        originals = [
            (video.mp4(), "video/mp4"),
            (video.mp4(moov_first=False), "video/mp4"),
            (video.mp4_fragmented(), "video/mp4"),
            (video.webm(), "video/webm"),
            (video.webm(duration=False, unknown_sizes=True), "video/webm"),
        ]
        outcomes = {"valid": 0, "invalid": 0}
        for _ in range(100):
            original, declared = rng.choice(originals)
            data = bytearray(original)
            for _ in range(rng.randint(1, 6)):
                at = rng.choice([rng.randrange(700), len(data) - 1 - rng.randrange(700)]) % len(data)
                roll = rng.random()
                if roll < 0.6:
                    data[at] = rng.randrange(256)
                elif roll < 0.8:
                    del data[at : at + rng.randint(1, 40)]
                else:
                    data[at:at] = rng.randbytes(rng.randint(1, 16))
            # When checked in chunks
            try:
                info = check(bytes(data), declared, chunk=rng.choice([1, 13, 4096]))
            except InvalidVideo as exc:
                outcomes["invalid"] += 1
                assert exc.reason
                continue
            # Then it is either a video with a positive duration, or InvalidVideo: never another exception
            outcomes["valid"] += 1
            assert info.duration_s > 0 and info.bytes == len(data)
        assert outcomes["invalid"] > outcomes["valid"] > 0
