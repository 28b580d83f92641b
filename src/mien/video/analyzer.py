"""Video mode: faces of every (selected) frame, tracked, and one summary per track.

:class:`VideoAnalyzer` is the explicit video mode of the library:

* :meth:`VideoAnalyzer.process` takes one upright RGB frame and its timestamp (ms, strictly
  increasing from call to call, else :class:`ValueError`) and returns its :class:`Faces` with
  ``track_ids`` set; :meth:`VideoAnalyzer.summaries` then gives one :class:`TrackSummary` per
  track; :meth:`VideoAnalyzer.reset` starts a new video.
* :meth:`VideoAnalyzer.analyze_video` does all of it for a file: it yields a
  :class:`FrameResult` per selected frame, then the :class:`TrackSummary` records, then one
  :class:`VideoResult`.

Detection in video mode is one CenterFace pass per frame on a copy whose longer side is
``detect_side`` px (512 by default, because the pass costs grow with the pixels: measured
frames/s in docs/benchmarks.md; faces that are small in the frame are found less often on the
copy, so raise it, or set 0 for the full frame, when they matter), mapped back to the frame's
pixels (:class:`mien.detect.frame.FrameDetector`). ``all_passes=True`` runs the still-image
plan (upscaled, mirrored and tiled passes, :mod:`mien.detect.detector`) on the full frame
instead. Frames of a file are detected ahead of the tracker, on one-thread sessions working on
alternate frames (CPU) or in batches (GPU): :mod:`mien.video.lanes`.
Landmarks, head pose, quality and attributes, when asked for, run on the full-size frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mien.analyzer import FaceAnalyzer
from mien.detect.detections import Detections
from mien.detect.detector import DetectionPlan
from mien.detect.frame import FrameDetector
from mien.detect.search import FrameSearch
from mien.errors import MediaError
from mien.media.video import FrameSelection, VideoFrame, VideoLimits, VideoReader
from mien.options import AnalyzerOptions
from mien.track.tracker import Tracker, TrackerOptions
from mien.types import ErrorInfo, Faces
from mien.video.lanes import DetectionLanes
from mien.video.records import FrameResult, TrackStats, TrackSummary, VideoResult

VideoRecord = FrameResult | TrackSummary | VideoResult


@dataclass(frozen=True)
class VideoOptions:
    """How a video is read and followed (the face analysis itself is :class:`AnalyzerOptions`).

    * ``every_n`` / ``sample_fps``: which frames are analysed (see
      :class:`mien.media.video.FrameSelection`; at most one of them).
    * ``detect_side``: longer side (px) of the copy the detector runs on (0: the full frame).
    * ``all_passes``: run the still-image detection plan on the full frame (slow, thorough).
      These two are validated as, and read through, :attr:`search` (a :class:`FrameSearch`).
    * ``tracker``: how tracks are matched and how long a missed face is kept.
    * ``limits``: largest frames accepted.
    """

    every_n: int = 1
    sample_fps: float | None = None
    detect_side: int = 512
    all_passes: bool = False
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    limits: VideoLimits = field(default_factory=VideoLimits)
    search: FrameSearch = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        FrameSelection(self.every_n, self.sample_fps)  # validates
        object.__setattr__(self, "search", FrameSearch(self.detect_side, self.all_passes))

    @property
    def selection(self) -> FrameSelection:
        return FrameSelection(self.every_n, self.sample_fps)


class VideoAnalyzer:
    """Analyses the frames of one video at a time, with face tracks; reuse for many videos."""

    def __init__(
        self,
        options: AnalyzerOptions | None = None,
        video: VideoOptions | None = None,
        *,
        analyzer: FaceAnalyzer | None = None,
        **overrides: Any,
    ) -> None:
        if analyzer is not None:
            self.analyzer = analyzer
        else:
            if options is None:
                options = AnalyzerOptions(**overrides)
            elif overrides:
                options = replace(options, **overrides)
            self.analyzer = FaceAnalyzer(options)
        self.options = self.analyzer.options
        self.video = video or VideoOptions()
        o = self.options
        self.frames = FrameDetector(
            self.analyzer.detector, DetectionPlan.for_options(o), self.video.search
        )
        self._detection_only = set(o.features) <= {"detection"}
        self.models = self.analyzer.models
        self._lanes: DetectionLanes | None = None  # made by the first analyze_video
        self.reset()

    def reset(self) -> None:
        """Forget tracks and timestamps: the next frame starts a new video."""
        self.tracker = Tracker(self.video.tracker)
        self._stats: dict[int, TrackStats] = {}
        self._frame_no = 0

    # -- frame by frame -------------------------------------------------------------------

    def process(
        self, rgb: npt.NDArray[np.uint8], timestamp_ms: float, frame_index: int | None = None
    ) -> Faces:
        """Faces of one upright RGB frame, with ``track_ids``; timestamps must increase.

        ``frame_index`` is the frame's number in its source (default: one more than the last
        frame processed), used by track summaries; a live source that skips frames passes it.
        """
        image = np.asarray(rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"rgb must be an (H, W, 3) uint8 array, got {image.dtype} {image.shape}"
            )
        index = self._frame_no if frame_index is None else int(frame_index)
        return self._process(self.frames.frame(image, index, timestamp_ms))

    def detect(self, frame: VideoFrame) -> Detections:
        """Detections of one frame in its full-size pixels (no tracking)."""
        return self.frames.detect(frame)

    def _process(self, frame: VideoFrame, det: Detections | None = None) -> Faces:
        if det is None:
            det = self.detect(frame)
        ids = self.tracker.update(det.boxes, det.scores, frame.timestamp_ms)
        if self._detection_only or frame.rgb is None:
            faces = Faces(
                boxes=det.boxes,
                scores=np.clip(det.scores, 0.0, 1.0),
                landmarks=det.points if "landmarks" in self.options.features else None,
            )
        else:
            faces = self.analyzer.describe(frame.rgb, det)
        faces = replace(faces, track_ids=ids)
        for i, tid in enumerate(ids):
            stats = self._stats.get(int(tid))
            if stats is None:
                stats = self._stats[int(tid)] = TrackStats(int(tid))
            stats.add(faces, i, frame.index, frame.timestamp_ms)
        self._frame_no = frame.index + 1
        return faces

    def pop_summary(self, track_id: int, source: str = "<video>") -> TrackSummary | None:
        """The summary of one track, which is then forgotten (for long or endless streams:
        call it when the track has ended); None for an unknown id."""
        stats = self._stats.pop(int(track_id), None)
        want_pose = "head_pose" in self.options.features
        return None if stats is None else stats.summary(source, want_pose)

    def summaries(self, source: str = "<video>") -> list[TrackSummary]:
        """One summary per track seen since the last :meth:`reset`, by track id."""
        want_pose = "head_pose" in self.options.features
        return [self._stats[k].summary(source, want_pose) for k in sorted(self._stats)]

    # -- whole files ----------------------------------------------------------------------

    def analyze_video(
        self,
        path: str | os.PathLike[str],
        *,
        on_error: Literal["raise", "record"] = "raise",
        on_open: Callable[[VideoReader], None] | None = None,
    ) -> Iterator[VideoRecord]:
        """Yield a :class:`FrameResult` per selected frame, then the :class:`TrackSummary`
        records, then a :class:`VideoResult`.

        A video that cannot be opened raises its :class:`MediaError` (``on_error="record"``:
        yields only a :class:`VideoResult` with the error). Damage found part-way (corrupt
        packets, a cut file) keeps the frames analysed before it: they and the summaries are
        yielded, then the error is raised (``"record"``: put in the :class:`VideoResult`).
        ``on_open`` is called with the open reader (its ``info``) before the first frame.
        """
        source = os.fspath(path)
        self.reset()
        try:
            reader = VideoReader(
                path,
                selection=self.video.selection,
                limits=self.video.limits,
                full=self.video.search.full_frame or not self._detection_only,
                scaled_side=self.video.search.scaled_side,
            )
        except MediaError as exc:
            if on_error == "raise":
                raise
            yield VideoResult(source, models=self.models, error=ErrorInfo(exc.code, exc.message))
            return
        analysed = 0
        error: MediaError | None = None
        with reader:
            if on_open is not None:
                on_open(reader)
            if self._lanes is None:
                plan = DetectionPlan.for_options(self.options)
                self._lanes = DetectionLanes(self.frames, self.options, plan, self.video.search)
            try:
                for frame, det in self._lanes.detected(reader):
                    faces = self._process(frame, det)
                    analysed += 1
                    yield FrameResult(
                        source, frame.index, frame.timestamp_ms, frame.width, frame.height, faces
                    )
            except MediaError as exc:
                error = exc
            if error is None:
                error = reader.error
            info = reader.info
            decoded = reader.frames_decoded
        self.tracker.finish()
        summaries = self.summaries(source)
        yield from summaries
        if error is not None and on_error == "raise":
            raise error
        yield VideoResult(
            source,
            width=info.width,
            height=info.height,
            fps=info.fps,
            rotation=info.rotation,
            frames_decoded=decoded,
            frames_analysed=analysed,
            tracks=len(summaries),
            models=self.models,
            error=None if error is None else ErrorInfo(error.code, error.message),
        )


def analyze_video(
    path: str | os.PathLike[str],
    options: AnalyzerOptions | None = None,
    video: VideoOptions | None = None,
    **kwargs: Any,
) -> Iterator[VideoRecord]:
    """Analyse one video with a one-off :class:`VideoAnalyzer` (see its ``analyze_video``)."""
    yield from VideoAnalyzer(options, video).analyze_video(path, **kwargs)
