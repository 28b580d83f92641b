"""Reading and writing videos with PyAV, safely and frame by frame.

:class:`VideoReader` streams the frames of one video stream (never the whole file in memory):

* **Timestamps** come from each frame's ``pts`` in the stream's time base, in milliseconds since
  the stream's ``start_time`` (so variable frame rate is kept); they are made strictly
  increasing (a frame whose timestamp does not advance gets the previous one plus one frame
  interval). ``index`` counts decoded frames from 0, whether or not they are selected.
* **Rotation** metadata (the display matrix side data written by phones, also what ffmpeg makes
  of a ``rotate`` tag) is applied: frames come out upright, as a player shows them. Only
  rotations by multiples of 90° are applied; mirroring flags are ignored.
* **Selection**: ``every_n=N`` keeps frames 0, N, 2N...; ``sample_fps=F`` keeps the first frame
  at or after each multiple of 1/F seconds. Frames that are not selected are decoded (they are
  needed for the next ones) but not converted to RGB.
* Decoding runs in a background thread, overlapped with whatever the caller does with the
  previous frames (bounded queue: a few frames in memory at most).
* **Errors** are :class:`mien.errors.MediaError` subclasses naming the source: ``NotFound``,
  ``InvalidVideo`` (not a video, corrupt, truncated header), ``NoVideoStream`` (audio only...),
  ``EmptyVideo`` (a video stream without a decodable frame), ``VideoTooLarge`` (a frame side or
  area over :class:`VideoLimits`). Damage *after* some frames were decoded (corrupt packets, a
  cut file) does not lose them: iteration stops or skips, and :attr:`VideoReader.error` then
  holds an ``InvalidVideo`` error describing it (``strict=True`` raises it at the end instead).
  A file that ends before the header's frame count or duration is reported the same way
  ("truncated").
* **Damage signals**: each frame carries the reasons it may not show what was recorded
  (:attr:`VideoFrame.damage`, from :class:`mien.media.damage.DamageWatch`: a frame the decoder
  flagged as corrupt, a packet before it that failed to decode, a timestamp gap, or damage
  before it with no clean key frame since). Redaction treats such frames as suspect.

:class:`VideoWriter` encodes RGB frames (H.264 with libx264 when this PyAV build has it, the
input's codec where an encoder for it exists, mpeg4 otherwise) at the input's time base and
frame timestamps, copies the audio packets of the input without re-encoding when the output
container accepts their codec, and writes to a temporary file in the output folder that is
renamed into place only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av
import av.logging
import numpy as np
import numpy.typing as npt

from mien.errors import (
    EmptyVideoError,
    InvalidVideoError,
    NoVideoStreamError,
    OutputError,
    SourceNotFoundError,
    UnsupportedMediaError,
    VideoTooLargeError,
)
from mien.media.damage import DamageWatch
from mien.media.discover import VIDEO_SUFFIXES, is_video_path
from mien.media.regular import fd_path, open_regular
from mien.media.write import check_output_path, commit_output

__all__ = [
    "VIDEO_SUFFIXES",
    "FrameSelection",
    "VideoFrame",
    "VideoInfo",
    "VideoLimits",
    "VideoReader",
    "VideoWriter",
    "is_video_path",
    "probe_video",
]

log = logging.getLogger("mien")

#: Corrupt packets tolerated before decoding gives up on a file.
MAX_DECODE_ERRORS: Final[int] = 50


@dataclass(frozen=True)
class VideoLimits:
    """Upper bounds on a video's frames, checked from the header and again on every frame."""

    max_side: int = 8192
    """Largest allowed frame width or height (after rotation)."""
    max_pixels: int = 8192 * 4352
    """Largest allowed ``width * height`` of one frame (8K is 7680 x 4320)."""


@dataclass(frozen=True)
class FrameSelection:
    """Which decoded frames are handed out: every ``every_n``-th, or ``sample_fps`` per second."""

    every_n: int = 1
    sample_fps: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.every_n, int) or self.every_n < 1:
            raise ValueError(f"every_n must be an integer >= 1, got {self.every_n!r}")
        if self.sample_fps is not None:
            fps = float(self.sample_fps)
            if not (math.isfinite(fps) and fps > 0):
                raise ValueError(f"sample_fps must be a positive number, got {self.sample_fps!r}")
            if self.every_n != 1:
                raise ValueError("choose either every_n or sample_fps, not both")
            object.__setattr__(self, "sample_fps", fps)


@dataclass(frozen=True)
class VideoInfo:
    """What the header says about a video (sizes are after rotation)."""

    source: str
    width: int
    height: int
    rotation: int
    """Degrees counter-clockwise applied to decoded frames to show them upright (0/90/180/270)."""
    fps: float | None
    """Average frame rate, when the container knows it."""
    frames: int | None
    """Frame count from the header (0 or None when unknown; not trusted for anything)."""
    duration_ms: float | None
    codec: str
    time_base: Fraction
    has_audio: bool
    audio_codec: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "fps": None if self.fps is None else round(self.fps, 3),
            "frames": self.frames,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 3),
            "codec": self.codec,
            "audio_codec": self.audio_codec,
        }


@dataclass(frozen=True)
class VideoFrame:
    """One selected frame.

    * ``index``: position among all decoded frames (0-based); ``timestamp_ms``: see module doc.
    * ``rgb``: the upright ``(H, W, 3)`` uint8 frame (None when the reader was asked for the
      scaled copy only); ``scaled``: an upright copy whose longer side is the reader's
      ``scaled_side`` (None when not asked for), ``scale`` its size over the full frame's.
    * ``pts``: the frame's timestamp in the stream's time base (made up from ``timestamp_ms``
      when the stream has none or it does not increase), for writers.
    * ``frame``: the decoded :class:`av.VideoFrame` (not rotated) for writers that pass frames
      through untouched.
    * ``damage``: why the frame may not show what was recorded (:mod:`mien.media.damage`
      reasons; empty for a clean frame).
    """

    index: int
    timestamp_ms: float
    rgb: npt.NDArray[np.uint8] | None
    scaled: npt.NDArray[np.uint8] | None
    scale: float
    width: int
    height: int
    pts: int | None = None
    frame: Any = None
    damage: tuple[str, ...] = ()


def _rotation_of(stream: Any) -> int:
    """Counter-clockwise degrees from the stream's display matrix or ``rotate`` tag."""
    deg: float | None = None
    with contextlib.suppress(Exception):
        tag = stream.metadata.get("rotate")
        if tag is not None:
            deg = -float(tag)  # the tag is clockwise
    return _quarter(deg or 0.0)


def _quarter(deg: float) -> int:
    return round(deg / 90.0) % 4 * 90


def _decoder_options(limits: VideoLimits) -> dict[str, str]:
    """FFmpeg options that make its decoders refuse frames over ``limits`` before allocating
    them (a 1.3 KB file claiming 5991x38532 px cost ~390 MiB while being probed without)."""
    return {"max_pixels": str(limits.max_pixels)}


def _open(path: str | os.PathLike[str], limits: VideoLimits) -> Any:
    """Open ``path`` with FFmpeg; only a regular file is opened (a FIFO, socket or device is
    refused without blocking: :mod:`mien.media.regular`). FFmpeg opens the checked descriptor's
    file (``/proc/self/fd/N``), so a file swapped meanwhile cannot make it block. Its probing
    decoders refuse frames larger than ``limits``."""
    name = os.fspath(path)
    fd = open_regular(name)
    try:
        target = fd_path(fd) or name
        return av.open(target, metadata_errors="ignore", options=_decoder_options(limits))
    except av.FFmpegError as exc:
        raise InvalidVideoError(
            f"{name}: not a readable video (corrupt, truncated or another kind of file): "
            f"{_ffmpeg_reason(exc)}"
        ) from exc
    except OSError as exc:
        raise SourceNotFoundError(f"{name}: cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's reason without the path it was given (that is the descriptor's path)."""
    reason = getattr(exc, "strerror", None)
    return str(reason) if reason else str(exc)


def _check_size(name: str, w: int, h: int, limits: VideoLimits) -> None:
    if w <= 0 or h <= 0:
        raise InvalidVideoError(f"{name}: the video stream has no frame size ({w}x{h})")
    if max(w, h) > limits.max_side or w * h > limits.max_pixels:
        raise VideoTooLargeError(
            f"{name}: frames of {w}x{h} px are larger than allowed "
            f"(a side over {limits.max_side} px or over {limits.max_pixels} px per frame)"
        )


def _info(container: Any, name: str, limits: VideoLimits) -> tuple[VideoInfo, Any]:
    videos = list(container.streams.video)
    if not videos:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NoVideoStreamError(f"{name}: has no video stream ({', '.join(kinds)})")
    stream = videos[0]
    if stream.codec_context is None:  # FFmpeg has no decoder (or no codec id) for it
        raise UnsupportedMediaError(
            f"{name}: cannot decode the video stream: {_unknown_codec(name)}"
        )
    cc = stream.codec_context
    rotation = _rotation_of(stream)
    w, h = int(cc.width or 0), int(cc.height or 0)
    if rotation in (90, 270):
        w, h = h, w
    _check_size(name, w, h, limits)
    tb = stream.time_base or Fraction(1, 1000)
    duration_ms: float | None = None
    if stream.duration:
        duration_ms = float(stream.duration * tb * 1000)
    elif container.duration:
        duration_ms = container.duration / 1000.0  # AV_TIME_BASE (µs)
    rate = stream.average_rate or stream.guessed_rate
    audio = list(container.streams.audio)
    info = VideoInfo(
        source=name,
        width=w,
        height=h,
        rotation=rotation,
        fps=float(rate) if rate else None,
        frames=int(stream.frames) if stream.frames else None,
        duration_ms=duration_ms,
        codec=str(cc.name),
        time_base=Fraction(tb),
        has_audio=bool(audio),
        audio_codec=_codec_name(audio[0]) if audio else None,
    )
    return info, stream


def _codec_name(stream: Any) -> str:
    ctx = stream.codec_context
    if ctx is None:  # FFmpeg knows no decoder for this stream's codec
        return "unknown"
    try:
        return str(ctx.codec.canonical_name)
    except Exception:  # an unknown codec still has a context name
        return str(ctx.name)


#: Serialises the brief change of PyAV's log level in :func:`_unknown_codec`.
_LOG_LOCK = threading.Lock()
_UNKNOWN_ID = re.compile(r"Unknown/unsupported AVCodecID (.+?)\.?\s*$")
_STREAM_CODEC = re.compile(r"\(Video: ([^,() ]+)(?: \(([^()/]+?) / 0x[0-9A-Fa-f]+\))?[,)]")


def _unknown_codec(name: str) -> str:
    """Why FFmpeg cannot decode ``name``'s video stream, naming the codec id the container gives
    (FFmpeg says it only in its log: the file is opened once more with the log captured, on
    this error path only)."""
    ids: list[str] = []
    described: list[str] = []
    tags: list[str] = []
    with contextlib.suppress(Exception):
        fd = open_regular(name)
        try:
            with _LOG_LOCK:
                previous = av.logging.get_level()
                av.logging.set_level(av.logging.VERBOSE)
                try:
                    with (
                        av.logging.Capture() as logs,
                        av.open(fd_path(fd) or name, metadata_errors="ignore"),
                    ):
                        pass
                finally:
                    av.logging.set_level(previous)
        finally:
            os.close(fd)
        for _level, _origin, message in logs:
            for line in message.splitlines():
                found = _UNKNOWN_ID.search(line)
                if found:
                    ids.append(found.group(1).strip())
                codec = _STREAM_CODEC.search(line)
                if codec and "Could not find codec parameters" in line:
                    described.append(codec.group(1))
                    if codec.group(2):
                        tags.append(codec.group(2).strip())
    video_ids = [i for i in ids if i.startswith("V_")] or ids
    if video_ids:
        return (
            f"its codec id {', '.join(repr(i) for i in dict.fromkeys(video_ids))} is not known "
            "to FFmpeg"
        )
    known = [d for d in described if d != "none"]
    if known:
        return f"no decoder for its codec {known[0]!r} in this FFmpeg build"
    if tags:  # e.g. an AVI FourCC
        return f"its codec tag {tags[0]!r} is not known to FFmpeg"
    return "its codec is not known to FFmpeg (codec id: none)"


def probe_video(path: str | os.PathLike[str], limits: VideoLimits | None = None) -> VideoInfo:
    """The :class:`VideoInfo` of a video (header only; raises the reader's errors)."""
    lim = limits or VideoLimits()
    container = _open(path, lim)
    try:
        return _info(container, os.fspath(path), lim)[0]
    finally:
        container.close()


_END = object()


class VideoReader:
    """Stream the frames of a video; use as a context manager and iterate once.

    >>> with VideoReader("clip.mp4", selection=FrameSelection(every_n=5)) as reader:
    ...     for frame in reader:
    ...         ...
    ...     reader.error  # None, or the InvalidVideoError of damage found on the way
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        selection: FrameSelection | None = None,
        limits: VideoLimits | None = None,
        full: bool = True,
        scaled_side: int | None = None,
        keep_frames: bool = False,
        audio: bool = False,
        strict: bool = False,
        threaded: bool = True,
        queue_size: int = 4,
    ) -> None:
        """``full``: hand out the full-size RGB frame; ``scaled_side``: also (or only) a copy
        whose longer side is at most this many px; ``keep_frames``: attach the decoded
        :class:`av.VideoFrame`; ``audio``: also yield the audio packets (as ``av.Packet``, in
        file order) for remuxing; ``strict``: raise damage found after the first frames instead
        of recording it in :attr:`error`."""
        self.name = os.fspath(path)
        self.selection = selection or FrameSelection()
        self.limits = limits or VideoLimits()
        self.full = full
        self.scaled_side = scaled_side
        self.keep_frames = keep_frames
        self.audio = audio
        self.strict = strict
        self.threaded = threaded
        self._container = _open(path, self.limits)
        try:
            self.info, self._stream = _info(self._container, self.name, self.limits)
        except BaseException:
            self._container.close()
            raise
        self._audio_stream = (
            self._container.streams.audio[0] if (audio and self._container.streams.audio) else None
        )
        self.error: InvalidVideoError | None = None
        self._skipped_only = False
        self.frames_decoded = 0
        self.decode_errors = 0
        self.packets_read = 0
        self.frames_damaged = 0
        """Decoded frames that carried a damage reason (selected or not)."""
        self.decode_seconds = 0.0
        """Time spent decoding packets and converting frames (for stage profiles)."""
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._used = False
        self._decoder_set = False

    # -- context / lifecycle ---------------------------------------------------------------

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.05)
            self._thread = None
        self._container.close()

    @property
    def fatal_error(self) -> InvalidVideoError | None:
        """:attr:`error` unless it only says that corrupt packets were skipped (the frames
        after them are decoded and carry ``damage`` reasons): a read failure, too many corrupt
        packets, or a file cut short."""
        return None if self._skipped_only else self.error

    @property
    def audio_stream(self) -> Any:
        """The input audio stream whose packets are yielded (None without audio)."""
        return self._audio_stream

    # -- iteration -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        """Yield :class:`VideoFrame` objects (and ``av.Packet`` audio packets when asked)."""
        if self._used:
            raise RuntimeError("a VideoReader can be iterated only once")
        self._used = True
        if not self.threaded:
            yield from self._produce()
            self._finish()
            return
        self._thread = threading.Thread(target=self._run, name="mien-video-decode", daemon=True)
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
        self._finish()

    def _finish(self) -> None:
        if self.frames_decoded == 0 and self.error is None:
            raise EmptyVideoError(f"{self.name}: the video stream holds no frame")
        if self.frames_decoded == 0 and self.error is not None:
            raise self.error
        if self.strict and self.error is not None:
            raise self.error

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._produce():
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(_END)

    def _decoder(self) -> Any:
        """The video stream, set up (once, before its codec opens) to decode within limits."""
        stream = self._stream
        if not self._decoder_set:
            stream.thread_type = "AUTO"
            stream.codec_context.options = {
                **stream.codec_context.options,
                **_decoder_options(self.limits),
            }
            self._decoder_set = True
        return stream

    def frame_at(self, timestamp_ms: float, max_frames: int = 300) -> VideoFrame | None:
        """The first frame at or after ``timestamp_ms`` (1.5 ms slack: timestamps are stored
        rounded), found by seeking to the key frame before it and decoding at most
        ``max_frames`` frames from there (the last one decoded when none gets there), so the
        cost does not grow with the position in the video. None when nothing decodes there.
        Its ``index`` is -1 (unknown after a seek). For single pictures (thumbnails); do not
        mix with iterating the reader."""
        stream = self._decoder()
        tb = float(self.info.time_base)
        start = stream.start_time or 0
        found: tuple[Any, float] | None = None
        try:
            self._container.seek(
                start + int(timestamp_ms / 1000.0 / tb), stream=stream, backward=True
            )
            for n, frame in enumerate(self._container.decode(stream)):
                if frame.pts is not None:
                    found = (frame, (frame.pts - start) * tb * 1000.0)
                    if found[1] >= timestamp_ms - 1.5:
                        break
                if n + 1 >= max_frames:
                    break
        except av.FFmpegError:
            return None
        if found is None:
            return None
        return self._convert(found[0], -1, found[1], int(found[0].pts))

    def _produce(self) -> Iterator[Any]:
        stream = self._decoder()
        streams = [stream] + ([self._audio_stream] if self._audio_stream is not None else [])
        tb = float(self.info.time_base)
        start = stream.start_time if stream.start_time is not None else None
        step_ms = 1000.0 / self.info.fps if self.info.fps else 40.0
        prev_ts: float | None = None
        next_sample = 0.0
        watch = DamageWatch(step_ms=step_ms if self.info.fps else None)
        demux = self._container.demux(*streams)
        while not self._stop.is_set():
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                self._damage(f"cannot read past frame {self.frames_decoded}: {exc}")
                break
            if packet.stream.type == "audio":
                if packet.dts is not None and packet.size:
                    yield packet
                continue
            if packet.size:
                self.packets_read += 1
            t0 = time.perf_counter()
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                self.decode_errors += 1
                watch.packet_failed()
                if self.decode_errors > MAX_DECODE_ERRORS:
                    self._damage(f"too many corrupt packets ({exc})")
                    break
                continue
            finally:
                self.decode_seconds += time.perf_counter() - t0
            for frame in frames:
                index = self.frames_decoded
                self.frames_decoded += 1
                if start is None and frame.pts is not None:
                    start = frame.pts
                pts = frame.pts
                if pts is not None:
                    ts = (pts - (start or 0)) * tb * 1000.0
                else:
                    ts = (prev_ts + step_ms) if prev_ts is not None else 0.0
                if pts is None or (prev_ts is not None and ts <= prev_ts):
                    if prev_ts is not None and ts <= prev_ts:
                        ts = prev_ts + step_ms
                    pts = (start or 0) + round(ts / 1000.0 / tb)  # for writers: keep increasing
                prev_ts = ts
                damage = watch.frame(
                    corrupt=bool(frame.is_corrupt), key=bool(frame.key_frame), timestamp_ms=ts
                )
                if damage:
                    self.frames_damaged += 1
                if not self._selected(index, ts, next_sample):
                    continue
                if self.selection.sample_fps is not None:
                    period = 1000.0 / self.selection.sample_fps
                    next_sample = (math.floor(ts / period) + 1) * period
                t0 = time.perf_counter()
                converted = self._convert(frame, index, ts, pts, damage)
                self.decode_seconds += time.perf_counter() - t0
                yield converted
        self._check_truncated(prev_ts, step_ms)
        if self.decode_errors and self.error is None:
            self._damage(f"{self.decode_errors} corrupt packet(s) were skipped")
            self._skipped_only = True

    def _selected(self, index: int, ts: float, next_sample: float) -> bool:
        if self.selection.sample_fps is not None:
            return ts >= next_sample - 1e-6
        return index % self.selection.every_n == 0

    def _damage(self, what: str) -> None:
        self.error = InvalidVideoError(
            f"{self.name}: damaged or truncated video ({what}); "
            f"{self.frames_decoded} frame(s) were decoded"
        )

    def _check_truncated(self, last_ts: float | None, step_ms: float) -> None:
        if self.error is not None or last_ts is None or self._stop.is_set():
            return
        declared = self.info.frames
        if declared and self.packets_read < declared:
            # The header (e.g. an MP4 sample table) lists more frames than the file holds.
            self._damage(f"the file ends after {self.packets_read} of {declared} frames")
            return
        d = self.info.duration_ms
        if not d:
            return
        # The last frame should start within a few frame intervals of the declared end.
        if last_ts + step_ms < 0.9 * d - 2 * step_ms:
            self._damage(f"frames end at {last_ts:.0f} ms of a declared {d:.0f} ms")

    def _convert(
        self, frame: Any, index: int, ts: float, pts: int, damage: tuple[str, ...] = ()
    ) -> VideoFrame:
        fw, fh = int(frame.width), int(frame.height)
        rot = self.info.rotation
        if frame.rotation:  # per-frame display matrix (the usual place in FFmpeg >= 7)
            rot = _quarter(float(frame.rotation))
        w, h = (fh, fw) if rot in (90, 270) else (fw, fh)
        if (rot, w, h) != (self.info.rotation, self.info.width, self.info.height):
            # The header did not say (display matrix only on frames) or the size changed.
            self.info = replace(self.info, rotation=rot, width=w, height=h)
        _check_size(self.name, w, h, self.limits)
        rgb = _upright(frame.to_ndarray(format="rgb24"), rot) if self.full else None
        scaled = None
        scale = 1.0
        if self.scaled_side:
            scale = min(1.0, self.scaled_side / max(w, h))
            if scale < 1.0:
                sw, sh = max(2, round(fw * scale)), max(2, round(fh * scale))
                small = frame.to_ndarray(format="rgb24", width=sw, height=sh)
                scaled = _upright(small, rot)
                scale = (scaled.shape[1] / w + scaled.shape[0] / h) / 2
            else:
                scaled = rgb if rgb is not None else _upright(frame.to_ndarray(format="rgb24"), rot)
        return VideoFrame(
            index=index,
            timestamp_ms=ts,
            rgb=rgb,
            scaled=scaled,
            scale=scale,
            width=w,
            height=h,
            pts=pts,
            frame=frame if self.keep_frames else None,
            damage=damage,
        )


def _upright(rgb: npt.NDArray[np.uint8], rotation: int) -> npt.NDArray[np.uint8]:
    if rotation == 0:
        return rgb
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))


# -- writing --------------------------------------------------------------------------------

#: Encoders tried for the input's codec, then the fallbacks, in order.
_ENCODERS: Final[dict[str, tuple[str, ...]]] = {
    "h264": ("libx264",),
    "hevc": ("libx265",),
    "mpeg4": ("mpeg4",),
    "vp9": ("libvpx-vp9",),
    "vp8": ("libvpx",),
    "av1": ("libaom-av1", "libsvtav1"),
}
_FALLBACK: Final[tuple[str, ...]] = ("libx264", "mpeg4")
#: libx264 "superfast": on a 720p crowd clip (bench/crowd_clips.py) it took 10.9 ms of CPU per
#: frame against veryfast's 14.3 (ultrafast 6.9), at a PSNR to the input of 44.2 dB (veryfast
#: 41.9, ultrafast 46.3) and 1.6x veryfast's file size (ultrafast 2.7x).
_ENCODER_OPTIONS: Final[dict[str, dict[str, str]]] = {
    "libx264": {"preset": "superfast", "crf": "20"},
    "libx265": {"preset": "veryfast", "crf": "24", "x265-params": "log-level=error"},
}


def _encoder_for(codec: str, container: Any) -> str:
    supported = getattr(container, "supported_codecs", None) or set()
    for name in (*_ENCODERS.get(codec, ()), *_FALLBACK):
        if name not in av.codecs_available:
            continue
        try:
            base = av.Codec(name, "w").name
        except Exception:
            continue
        if not supported or base in supported or name in supported:
            return name
    raise OutputError(f"cannot write {container.name}: no video encoder for this container")


class VideoWriter:
    """Encode upright RGB frames to ``path`` (format from its suffix), atomically.

    Use as a context manager; the output appears at ``path`` only when the block ends without
    an exception (a temporary file next to it is removed otherwise).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        info: VideoInfo,
        *,
        audio_stream: Any = None,
        codec: str | None = None,
    ) -> None:
        target = Path(path)
        self.path = target
        folder = target.parent if str(target.parent) else Path(".")
        check_output_path(target, kind="video")  # the output rule of mien.media.write
        suffix = target.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise OutputError(
                f"cannot write {target}: unknown video suffix {suffix!r}; use one of "
                f"{', '.join(sorted(VIDEO_SUFFIXES))}"
            )
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=f".part{suffix}", dir=folder
            )
            os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        self._tmp = tmp
        self.audio_note: str | None = None
        try:
            self._out = av.open(tmp, "w", format=_format_for(suffix))
            self.codec = codec or _encoder_for(info.codec, self._out)
            self._video = self._add_video(info)
            self._audio = self._add_audio(audio_stream)
        except BaseException:
            self._discard()
            raise
        self._closed = False
        self.frames_written = 0

    def _add_video(self, info: VideoInfo) -> Any:
        rate = Fraction(info.fps).limit_denominator(100000) if info.fps else Fraction(25)
        stream: Any = self._out.add_stream(self.codec, rate=rate)
        stream.width = info.width - info.width % 2
        stream.height = info.height - info.height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        opts = _ENCODER_OPTIONS.get(self.codec)
        if opts:
            stream.codec_context.options = dict(opts)
        if self.codec == "mpeg4":  # no CRF: a generous bit rate (~0.25 bit per pixel)
            stream.bit_rate = int(stream.width * stream.height * float(rate) * 0.25)
        stream.codec_context.thread_type = "AUTO"
        return stream

    def _add_audio(self, audio_stream: Any) -> Any:
        if audio_stream is None:
            return None
        if audio_stream.codec_context is None:  # FFmpeg does not know its codec
            self.audio_note = "audio (unknown codec) dropped: FFmpeg does not know its codec"
            log.warning("%s: %s", self.path, self.audio_note)
            return None
        name = audio_stream.codec_context.codec.canonical_name
        supported = getattr(self._out, "supported_codecs", None) or set()
        if supported and name not in supported:
            self.audio_note = f"audio ({name}) dropped: {self.path.suffix} cannot hold it"
            log.warning("%s: %s", self.path, self.audio_note)
            return None
        try:
            return self._out.add_stream_from_template(audio_stream)
        except Exception as exc:  # reported; the video is still written
            self.audio_note = f"audio ({name}) dropped: {exc}"
            log.warning("%s: %s", self.path, self.audio_note)
            return None

    @property
    def has_audio(self) -> bool:
        return self._audio is not None

    def write_rgb(self, rgb: npt.NDArray[np.uint8], pts: int | None) -> None:
        """Encode one upright RGB frame at ``pts`` (in the input's time base)."""
        h, w = self._video.height, self._video.width
        if rgb.shape[0] != h or rgb.shape[1] != w:
            rgb = np.ascontiguousarray(rgb[:h, :w])
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        self.write_frame(frame, pts)

    def write_frame(self, frame: Any, pts: int | None) -> None:
        """Encode a decoded :class:`av.VideoFrame` (any pixel format) at ``pts``."""
        frame.pts = pts
        frame.time_base = self._video.time_base
        try:
            for packet in self._video.encode(frame):
                self._out.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from exc
        self.frames_written += 1

    def write_audio(self, packet: Any) -> None:
        """Copy one audio packet of the input (no re-encoding)."""
        if self._audio is None:
            return
        packet.stream = self._audio
        try:
            self._out.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from exc

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._discard()

    def finish(self) -> None:
        """Flush the encoder, close the file and rename it into place."""
        if self._closed:
            return
        try:
            for packet in self._video.encode(None):
                self._out.mux(packet)
            self._out.close()
            self._closed = True
            if self.frames_written == 0:
                raise OutputError(f"cannot write {self.path}: no frame to write")
            commit_output(self._tmp, self.path)  # checked again, 0666 & ~umask, renamed
        except (av.FFmpegError, OSError) as exc:
            self._discard()
            raise OutputError(f"cannot write {self.path}: {exc}") from exc
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self._out.close()
        self._closed = True
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)


def _format_for(suffix: str) -> str | None:
    return {
        ".mp4": "mp4",
        ".m4v": "mp4",
        ".mov": "mov",
        ".mkv": "matroska",
        ".webm": "webm",
        ".avi": "avi",
        ".mpg": "mpeg",
        ".mpeg": "mpeg",
        ".ts": "mpegts",
        ".mts": "mpegts",
        ".wmv": "asf",
        ".flv": "flv",
        ".3gp": "3gp",
        ".ogv": "ogg",
    }.get(suffix)
