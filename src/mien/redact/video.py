"""Redacting the faces of a video: detect, track, fill the gaps, cover, re-encode with audio.

Detection alone flickers: a face found in frame 10 and 12 but missed in frame 11 leaks in
frame 11. :func:`redact_video` therefore covers, in every frame:

* every face detected in it (``source="detected"``);
* the predicted box of every track that was detected recently but missed in this frame
  (constant-velocity prediction, for up to ``tracker.max_missed`` frames; ``"tracked"``);
* when such a track is found again, the boxes of the missed frames are replaced by boxes
  interpolated between the detections before and after the gap (``"interpolated"``), and a
  track seen for the first time is also covered in the ``backfill`` frames before it
  (``"tracked"``), because detection usually finds a face a little after it enters the picture.

By default the detector looks at every other frame (``detect_every=2``); the frames between get
boxes interpolated between the detections on either side the same way, which halves the
detector's cost; on the clips of bench/video.py every labelled face frame was still covered
(a comparison with ``detect_every=1`` on harder footage has not been run). To do all that the
frames wait in a short look-ahead buffer (``(max_missed + 1) * detect_every`` frames) before
they are written. Frames without any covered area are passed to the encoder as decoded (no RGB round
trip). Detection runs once per frame on a copy whose longer side is ``detect_side`` px (1280 by
default, so 720p is searched at full size), at the redaction threshold
(:data:`mien.redact.options.REDACT_THRESHOLD`) unless ``analyzer_options`` say otherwise.

The output is written through :class:`mien.media.video.VideoWriter`: the input's codec where an
encoder exists (else H.264), its time base and frame timestamps (variable frame rate kept),
upright pixels (rotation applied, no rotation metadata), and the audio packets copied as they
are. It appears at ``output`` only when the whole video was redacted: a damaged input, a full
disk or Ctrl-C leave nothing there.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mien.media.discover import VIDEO_SUFFIXES
from mien.media.video import VideoFrame, VideoLimits, VideoReader, VideoWriter
from mien.media.write import OutputError, check_output_file
from mien.options import AnalyzerOptions
from mien.redact.draw import redact_regions
from mien.redact.options import RedactOptions
from mien.redact.report import CoveredRegion, RedactionReport
from mien.track.tracker import Tracker, TrackerOptions

__all__ = ["VideoRedactOptions", "redact_video"]


@dataclass(frozen=True)
class VideoRedactOptions:
    """How faces are found and followed in a video being redacted.

    * ``detect_side``: longer side (px) of the copy the detector runs on (0: full frame).
    * ``detect_every``: run the detector on every N-th frame only; the frames between get the
      boxes interpolated between the detections before and after them (1: every frame).
    * ``tracker``: matching, and for how many detector runs a missed face stays covered
      (``max_missed``; with ``detect_every=2`` the default 4 is 8 frames).
    * ``backfill``: frames before a track's first detection that are covered too (at most
      ``max_missed``).
    * ``codec``: encoder name (e.g. ``"libx264"``); None: the input's codec where possible.
    * ``limits``: largest frames accepted.
    """

    detect_side: int = 1280
    detect_every: int = 2
    tracker: TrackerOptions = field(default_factory=lambda: TrackerOptions(max_missed=4))
    backfill: int = 3
    codec: str | None = None
    limits: VideoLimits = field(default_factory=VideoLimits)

    def __post_init__(self) -> None:
        if not isinstance(self.detect_side, int) or not (
            self.detect_side == 0 or 64 <= self.detect_side <= 8192
        ):
            raise ValueError(f"detect_side must be 0 or in 64..8192, got {self.detect_side!r}")
        if not isinstance(self.detect_every, int) or not 1 <= self.detect_every <= 4:
            raise ValueError(f"detect_every must be an integer in 1..4, got {self.detect_every!r}")
        if self.tracker.max_missed < self.detect_every:
            raise ValueError("tracker.max_missed must be at least detect_every")
        if not isinstance(self.backfill, int) or not 0 <= self.backfill <= self.tracker.max_missed:
            raise ValueError(
                f"backfill must be an integer in 0..max_missed ({self.tracker.max_missed})"
            )


@dataclass
class _Pending:
    frame: VideoFrame
    regions: dict[int, CoveredRegion]


def _box(b: npt.ArrayLike) -> tuple[float, float, float, float]:
    a = np.asarray(b, np.float64).reshape(4)
    return (float(a[0]), float(a[1]), float(a[2]), float(a[3]))


class _Redactor:
    """The per-video state: tracker, look-ahead buffer, writer and report regions."""

    def __init__(self, options: RedactOptions, vopts: VideoRedactOptions) -> None:
        self.options = options
        self.vopts = vopts
        self.tracker = Tracker(vopts.tracker)
        self.buffer: deque[_Pending] = deque()
        self.last_detected: dict[int, tuple[npt.NDArray[np.float64], float, float]] = {}
        self.regions: list[CoveredRegion] = []
        self.frames_written = 0
        self.writer: VideoWriter | None = None
        self.writer_rotation = 0

    def add(self, frame: VideoFrame, boxes: npt.NDArray[np.float32], scores: Any) -> None:
        ts = frame.timestamp_ms
        ids = self.tracker.update(boxes, scores, ts)
        regions: dict[int, CoveredRegion] = {}
        for b, s, tid in zip(boxes, scores, ids, strict=True):
            t = int(tid)
            box = np.asarray(b, np.float64)
            previous = self.last_detected.get(t)
            if previous is None:
                self._backfill(t, box, float(s))
            else:
                self._interpolate(t, previous, box, float(s), ts)
            self.last_detected[t] = (box, ts, float(s))
            regions[t] = CoveredRegion(_box(box), float(s), "detected", frame.index, ts, t)
        for track, predicted in self.tracker.coasting(ts):
            regions[track.track_id] = CoveredRegion(
                _box(predicted), track.score, "tracked", frame.index, ts, track.track_id
            )
        for track in self.tracker.ended:
            self.last_detected.pop(track.track_id, None)
        self._push(_Pending(frame, regions))

    def skip(self, frame: VideoFrame) -> None:
        """A frame the detector does not look at: every live track's predicted box, replaced
        by an interpolated one when the track is detected again."""
        ts = frame.timestamp_ms
        regions = {
            t.track_id: CoveredRegion(
                _box(t.predict(ts)), t.score, "tracked", frame.index, ts, t.track_id
            )
            for t in self.tracker.tracks
        }
        self._push(_Pending(frame, regions))

    def _push(self, pending: _Pending) -> None:
        self.buffer.append(pending)
        limit = (self.vopts.tracker.max_missed + 1) * self.vopts.detect_every
        while len(self.buffer) > limit:
            self._emit(self.buffer.popleft())

    def _backfill(self, tid: int, box: npt.NDArray[np.float64], score: float) -> None:
        if not self.vopts.backfill:
            return
        for pending in list(self.buffer)[-self.vopts.backfill :]:
            if tid not in pending.regions:
                f = pending.frame
                pending.regions[tid] = CoveredRegion(
                    _box(box), score, "tracked", f.index, f.timestamp_ms, tid
                )

    def _interpolate(
        self,
        tid: int,
        previous: tuple[npt.NDArray[np.float64], float, float],
        box: npt.NDArray[np.float64],
        score: float,
        ts: float,
    ) -> None:
        b0, t0, s0 = previous
        span = ts - t0
        for pending in self.buffer:
            r = pending.regions.get(tid)
            f = pending.frame
            if r is None or r.source != "tracked" or not t0 < f.timestamp_ms < ts or span <= 0:
                continue
            w = (f.timestamp_ms - t0) / span
            pending.regions[tid] = CoveredRegion(
                _box(b0 + (box - b0) * w),
                min(s0, score),
                "interpolated",
                f.index,
                f.timestamp_ms,
                tid,
            )

    def _emit(self, pending: _Pending) -> None:
        assert self.writer is not None
        frame = pending.frame
        regions = sorted(pending.regions.values(), key=lambda r: r.track_id or 0)
        self.regions.extend(regions)
        if not regions and frame.frame is not None and frame.rgb is None:
            rotation = self.writer_rotation
            if rotation == 0:
                self.writer.write_frame(frame.frame, frame.pts)
                self.frames_written += 1
                return
        rgb = frame.rgb if frame.rgb is not None else _rgb_of(frame, self.writer_rotation)
        boxes = np.array([r.box for r in regions], np.float32).reshape(-1, 4)
        out = redact_regions(rgb, boxes, self.options) if len(boxes) else rgb
        self.writer.write_rgb(out, frame.pts)
        self.frames_written += 1

    def flush(self) -> None:
        while self.buffer:
            self._emit(self.buffer.popleft())


def _rgb_of(frame: VideoFrame, rotation: int) -> npt.NDArray[np.uint8]:
    rgb: npt.NDArray[np.uint8] = frame.frame.to_ndarray(format="rgb24")
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb


def redact_video(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    analyzer_options: AnalyzerOptions | None = None,
    options: RedactOptions | None = None,
    video: VideoRedactOptions | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> RedactionReport:
    """Cover every face of the video ``source`` and write it to ``output`` (format from its
    suffix: .mp4 .mov .mkv .webm .avi ...); returns the audit report (one region per covered
    face per frame).

    Raises :class:`mien.errors.MediaError` subclasses when the input cannot be read or is
    damaged anywhere (``NotFound``, ``InvalidVideo``, ``NoVideoStream``, ``EmptyVideo``,
    ``VideoTooLarge``) and :class:`mien.media.write.OutputError` when the output cannot be
    written; in every failure case nothing is left at ``output``. ``progress(frames_done,
    frames_expected)`` is called after each decoded frame.
    """
    from mien.redact.image import redaction_analyzer_options
    from mien.video.analyzer import VideoAnalyzer, VideoOptions

    name = os.fspath(source)
    out_path = check_output_file(output, VIDEO_SUFFIXES, "video", name)
    opts = options if options is not None else RedactOptions()
    vopts = video if video is not None else VideoRedactOptions()
    an_opts = redaction_analyzer_options(analyzer_options)
    detector = VideoAnalyzer(
        an_opts,
        VideoOptions(detect_side=vopts.detect_side, limits=vopts.limits),
    )
    red = _Redactor(opts, vopts)
    audio_waiting: list[Any] = []
    with VideoReader(
        name,
        limits=vopts.limits,
        full=not vopts.detect_side,
        scaled_side=vopts.detect_side or None,
        keep_frames=True,
        audio=True,
        strict=True,
    ) as reader:
        expected = reader.info.frames
        writer: VideoWriter | None = None
        first_index = 0
        try:
            for item in reader:
                if not isinstance(item, VideoFrame):
                    if writer is None:
                        audio_waiting.append(item)
                    else:
                        writer.write_audio(item)
                    continue
                if writer is None:
                    writer = VideoWriter(
                        out_path,
                        reader.info,
                        audio_stream=reader.audio_stream,
                        codec=vopts.codec,
                    )
                    red.writer = writer
                    red.writer_rotation = reader.info.rotation
                    first_index = item.index
                    for packet in audio_waiting:
                        writer.write_audio(packet)
                    audio_waiting.clear()
                if (item.index - first_index) % vopts.detect_every == 0:
                    det = detector.detect(item)
                    red.add(item, det.boxes, det.scores)
                else:
                    red.skip(item)
                if progress is not None:
                    progress(reader.frames_decoded, expected)
            if writer is None:  # pragma: no cover - the reader raises EmptyVideo first
                raise OutputError(f"cannot write {out_path}: no frame")
            red.flush()
            writer.finish()
        except BaseException:
            if writer is not None:
                writer.__exit__(RuntimeError, None, None)
            raise
        info = reader.info
    extra = {
        **info.to_dict(),
        "frames_decoded": reader.frames_decoded,
        "output_codec": writer.codec,
        "audio_kept": writer.has_audio,
        **({"audio_note": writer.audio_note} if writer.audio_note else {}),
        "detect_side": vopts.detect_side,
        "detect_every": vopts.detect_every,
        "max_missed": vopts.tracker.max_missed,
        "backfill": vopts.backfill,
    }
    return RedactionReport(
        source=name,
        output=os.fspath(output),
        kind="video",
        regions=tuple(red.regions),
        frames=red.frames_written,
        width=info.width,
        height=info.height,
        options=opts,
        threshold=an_opts.threshold,
        models=detector.models,
        extra=extra,
    )
