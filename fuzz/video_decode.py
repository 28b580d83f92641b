"""Fuzz target: probing and decoding videos (:func:`mien.media.video.probe_video`, ``VideoReader``).

The bytes are written to a scratch file whose suffix follows the container the first bytes claim
to be (``.mp4`` for ISO-BMFF and anything unknown, ``.mkv``/``.webm`` for EBML, ``.avi`` for RIFF,
``.mpg``, ``.ts``, ``.flv``, ``.ogv``), as a user's file would have. Then ``probe_video`` and, when
it succeeds, a ``VideoReader`` with small :class:`VideoLimits` reads at most
:data:`MAX_FRAMES` frames, with audio packets, a scaled copy, and (chosen by the input's length)
threaded or not and every frame / every 2nd / 7 per second.

Expected: a :class:`mien.errors.MediaError` (the reader's documented failures), or frames that
keep the reader's contract: upright ``(H, W, 3)`` uint8 frames within the limits whose size
matches the frame's ``width``/``height``, strictly increasing timestamps and increasing indices.
Anything else (another exception, a hang, memory out of proportion) is a finding.

Seeds: a few frames of ../shared/data/pyfeat_media clips, scaled to 64 x 36 px and encoded with
PyAV as H.264 MP4 (one with a 90° display matrix), H.264 MKV with AAC audio, VP9 WebM, MPEG-4
AVI and MJPEG MOV; synthetic frames when ../shared/data is absent.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av
import numpy as np

from fuzz._common import shared
from mien.errors import MediaError
from mien.media.video import FrameSelection, VideoFrame, VideoLimits, VideoReader, probe_video

#: Small limits: an accepted frame holds at most one megapixel.
LIMITS: Final = VideoLimits(max_side=1024, max_pixels=1024 * 1024)

#: Frames read per input at most (the reader is closed early after that).
MAX_FRAMES: Final = 24

MAX_LEN: Final = 64 * 1024
PER_INPUT_SECONDS: Final = 20.0

DICTIONARY: Final = (
    b"ftypisom",
    b"ftypqt  ",
    b"moov",
    b"mvhd",
    b"trak",
    b"tkhd",
    b"mdia",
    b"mdhd",
    b"minf",
    b"stbl",
    b"stsd",
    b"stts",
    b"stsz",
    b"stco",
    b"co64",
    b"stss",
    b"ctts",
    b"elst",
    b"avcC",
    b"mdat",
    b"\x1a\x45\xdf\xa3",  # EBML
    b"\x18\x53\x80\x67",  # Segment
    b"\x1f\x43\xb6\x75",  # Cluster
    b"\xa3",  # SimpleBlock
    b"webm",
    b"matroska",
    b"RIFF",
    b"AVI ",
    b"LIST",
    b"hdrl",
    b"avih",
    b"strh",
    b"strf",
    b"movi",
    b"idx1",
    b"00dc",
    b"\x00\x00\x00\x01\x67",  # H.264 SPS NAL
    b"\x00\x00\x00\x01\x68",  # PPS
    b"\x00\x00\x00\x01\x65",  # IDR slice
)

_W, _H = 64, 36
_FPS = 12


def _source_frames(count: int) -> list[np.ndarray]:
    """``count`` small RGB frames from a real clip, or synthetic ones without ../shared/data."""
    path = shared("pyfeat_media", "single_face.mp4")
    if path is None:
        yy, xx = np.mgrid[0:_H, 0:_W]
        planes = [
            [(xx * 4 + 9 * k) % 256, (yy * 7) % 256, np.full_like(xx, 40 * k)] for k in range(count)
        ]
        return [np.stack(p, -1).astype(np.uint8) for p in planes]
    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24", width=_W, height=_H))
            if len(out) == count:
                break
    return out


def _encode(
    fmt: str,
    codec: str,
    frames: list[np.ndarray],
    *,
    rotation: int = 0,
    audio: str | None = None,
    pix_fmt: str = "yuv420p",
) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as c:
        s: Any = c.add_stream(codec, rate=_FPS)
        s.width, s.height, s.pix_fmt = _W, _H, pix_fmt
        if codec == "libx264":
            s.codec_context.options = {"preset": "ultrafast", "crf": "35"}
        if rotation:
            s.set_display_rotation(rotation)
        a: Any = None
        if audio is not None:
            a = c.add_stream(audio, rate=8000)
            a.layout = "mono"
        for k, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = k
            f.time_base = Fraction(1, _FPS)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            samples = a.codec_context.frame_size or 1024
            t = np.arange(samples * 2) / 8000.0
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(2):
                af = av.AudioFrame.from_ndarray(
                    tone[None, k * samples : (k + 1) * samples], format="fltp", layout="mono"
                )
                af.sample_rate = 8000
                af.pts = k * samples
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return buf.getvalue()


@functools.cache
def _seeds() -> tuple[bytes, ...]:
    frames = _source_frames(5)
    return (
        _encode("mp4", "libx264", frames),
        _encode("mp4", "libx264", frames[:3], rotation=90),
        _encode("matroska", "libx264", frames[:3], audio="aac"),
        _encode("webm", "libvpx-vp9", frames[:3]),
        _encode("avi", "mpeg4", frames[:3]),
        _encode("mov", "mjpeg", frames[:2], pix_fmt="yuvj420p"),
    )


def seeds() -> list[bytes]:
    """Tiny clips (64 x 36 px, 2-5 frames) in MP4, MKV, WebM, AVI and MOV."""
    return list(_seeds())


def _suffix(data: bytes) -> str:
    head = data[:16]
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm" if b"webm" in data[:64] else ".mkv"
    if head[:4] == b"RIFF":
        return ".avi"
    if head.startswith(b"\x00\x00\x01\xba"):
        return ".mpg"
    if head[:1] == b"\x47":
        return ".ts"
    if head.startswith(b"FLV"):
        return ".flv"
    if head.startswith(b"OggS"):
        return ".ogv"
    if head[4:8] == b"ftyp" and head[8:10] == b"qt":
        return ".mov"
    return ".mp4"


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="mien-fuzz-video-"))


def _selection(n: int) -> FrameSelection:
    return (FrameSelection(), FrameSelection(every_n=2), FrameSelection(sample_fps=7.0))[n % 3]


def fuzz_one(data: bytes) -> bool:
    """Probe and read ``data`` as a video: True when frames were read (contract checked), False
    on a MediaError; anything else raised is a finding."""
    path = _scratch() / f"input{_suffix(data)}"
    for old in _scratch().iterdir():
        os.unlink(old)
    path.write_bytes(data)
    try:
        info = probe_video(path, LIMITS)
    except MediaError:
        return False
    if not (0 < info.width <= LIMITS.max_side and 0 < info.height <= LIMITS.max_side):
        raise AssertionError(f"probe accepted a {info.width}x{info.height} video")
    if info.rotation not in (0, 90, 180, 270):
        raise AssertionError(f"rotation {info.rotation}")
    info.to_dict()
    try:
        with VideoReader(
            path,
            selection=_selection(len(data)),
            limits=LIMITS,
            scaled_side=32,
            audio=True,
            threaded=len(data) % 2 == 1,
        ) as reader:
            prev_ts: float | None = None
            prev_index = -1
            seen = 0
            for item in reader:
                if not isinstance(item, VideoFrame):
                    continue  # an audio packet
                _check_frame(item, prev_ts, prev_index)
                prev_ts, prev_index = item.timestamp_ms, item.index
                seen += 1
                if seen >= MAX_FRAMES:
                    break
    except MediaError:
        return False
    return seen > 0


def _check_frame(f: VideoFrame, prev_ts: float | None, prev_index: int) -> None:
    if f.rgb is None or f.rgb.dtype != np.uint8 or f.rgb.shape != (f.height, f.width, 3):
        shape = None if f.rgb is None else (f.rgb.dtype, f.rgb.shape)
        raise AssertionError(f"frame {f.index}: rgb {shape} for a {f.width}x{f.height} frame")
    if max(f.width, f.height) > LIMITS.max_side or f.width * f.height > LIMITS.max_pixels:
        raise AssertionError(f"frame {f.index}: {f.width}x{f.height} is over the limits")
    if f.scaled is None or f.scaled.ndim != 3 or max(f.scaled.shape[:2]) > 32:
        shape = None if f.scaled is None else f.scaled.shape
        raise AssertionError(f"frame {f.index}: scaled copy {shape}")
    if f.index <= prev_index:
        raise AssertionError(f"frame index {f.index} after {prev_index}")
    if not np.isfinite(f.timestamp_ms) or (prev_ts is not None and f.timestamp_ms <= prev_ts):
        raise AssertionError(f"frame {f.index}: timestamp {f.timestamp_ms} after {prev_ts}")
