"""The video doubles' files are real containers: the structure a validator walks, with the declared duration."""

from __future__ import annotations

import struct

import pytest

from tests.doubles import video


def test_given_the_mp4_maker_when_walked_then_the_box_tree_holds_a_video_track_of_the_declared_length():
    data = video.mp4(64, 48, frames=5, fps=10)

    top = dict(video.mp4_boxes(data))
    trak = dict(video.mp4_boxes(dict(video.mp4_boxes(top[b"moov"]))[b"trak"]))
    mdia = dict(video.mp4_boxes(trak[b"mdia"]))
    stbl = dict(video.mp4_boxes(dict(video.mp4_boxes(mdia[b"minf"]))[b"stbl"]))
    sample_sizes = stbl[b"stsz"][12:]
    chunk_offset = struct.unpack(">I", stbl[b"stco"][8:12])[0]

    assert list(top) == [b"ftyp", b"moov", b"mdat"]
    assert top[b"ftyp"][:4] == b"isom"
    assert mdia[b"hdlr"][8:12] == b"vide"
    assert video.mp4_duration_seconds(data) == 0.5
    assert len(sample_sizes) // 4 == 5
    assert data[chunk_offset : chunk_offset + 2] == b"\xff\xd8"  # the first sample is where stco says: a JPEG


def test_given_the_webm_maker_when_read_then_ebml_declares_webm_with_a_duration_and_vp8_frames():
    data = video.webm(64, 48, frames=4, fps=10)

    assert data[:4] == b"\x1a\x45\xdf\xa3"
    assert b"\x42\x82\x84webm" in data  # DocType "webm"
    duration_at = data.index(b"\x44\x89\x88") + 3  # Duration, an 8-byte float
    assert struct.unpack(">d", data[duration_at : duration_at + 8])[0] == 400.0
    assert b"V_VP8" in data
    assert data.count(b"\x9d\x01\x2a") == 4  # one VP8 keyframe start code per frame


def test_given_the_html_page_when_checked_then_it_is_no_mp4():
    page = video.html_error_page()

    assert page.startswith(b"<!DOCTYPE html>")
    with pytest.raises((ValueError, KeyError)):
        video.mp4_duration_seconds(page)
