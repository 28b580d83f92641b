"""Damaged copies of real clips, made by the tests (never stored): cut with the MP4 index in
front ("faststart", as streaming sites serve them), bits flipped inside the media data, or the
file cut short."""

from __future__ import annotations

import random
import struct
from pathlib import Path


def faststart_head(src: Path, dst: Path, seconds: float) -> Path:
    """Copy (no re-encoding) the video and audio packets of ``src`` up to ``seconds`` into an
    MP4 whose index comes before its media data."""
    from tests.test_video import clip_head

    return clip_head(src, dst, seconds, options={"movflags": "faststart"})


def mdat_span(data: bytes) -> tuple[int, int]:
    """Start and end offsets of the payload of the top-level ``mdat`` box of an MP4."""
    i = 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[i + 8 : i + 16])[0]
            header = 16
        elif size == 0:
            size = len(data) - i
        if kind == b"mdat":
            return i + header, i + size
        if size < header:
            break
        i += size
    raise ValueError("no mdat box")


def flip_bytes(src: Path, dst: Path, seed: int, places: int = 40, width: int = 3) -> Path:
    """XOR ``width`` bytes at ``places`` random places in the middle 60% of the media data:
    bit errors the H.264 decoder conceals (the file still plays, with smeared pictures)."""
    data = bytearray(src.read_bytes())
    a, b = mdat_span(bytes(data))
    lo, hi = a + (b - a) * 20 // 100, a + (b - a) * 80 // 100
    rng = random.Random(seed)
    for _ in range(places):
        p = rng.randrange(lo, hi - width)
        for k in range(width):
            data[p + k] ^= rng.randrange(1, 256)
    dst.write_bytes(bytes(data))
    return dst


def cut_short(src: Path, dst: Path, fraction: float) -> Path:
    """The first ``fraction`` of the file's bytes."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst
