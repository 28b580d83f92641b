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

**Fail closed.** Where redaction cannot vouch that every face is covered, the frame is
*suspect* (:mod:`mien.redact.suspect`): the decoder flagged it as damaged or predicted from
damaged pictures, the detector failed on it, a followed face's box shrank abruptly or the face
vanished inside the picture, or the picture size changed. Damaged frames are always searched by
the detector (never only interpolated). By default (``on_suspect="cover"``) a suspect frame is
covered where faces are known, grown (the frame's faces, the live tracks' predicted boxes, and
for :data:`~mien.redact.suspect.VANISH_HOLD_MS` the last box of a face that vanished inside the
picture), or edge to edge when nothing is known; every suspect frame is listed in the report
(``suspect_frames``) and the CLI exits 1. A box that shrinks never counts as coverage: the
track's recent size is covered instead.

**Threads.** Decoding (the reader's thread), detection + tracking (the caller's thread) and
covering + encoding (:class:`mien.redact.encoder.EncodeStage`, fed through a bounded queue, audio
packets included) overlap; an error in any of them ends the job with that error, stops the
others and leaves no output. The report's ``extra["stage_ms_per_frame"]`` says how long each
stage took per frame. ``VideoRedactOptions.global_every`` (off by default) searches the whole
frame only on every N-th searched frame and around the followed faces between (measured in
docs/benchmarks.md: on crowd clips it saves little, as the windows join).

The output is written through :class:`mien.media.video.VideoWriter`: the input's codec where an
encoder exists (else H.264), its time base and frame timestamps (variable frame rate kept),
upright pixels (rotation applied, no rotation metadata), and the audio packets copied as they
are; frames whose size differs from the first frame's are scaled to it after covering. It
appears at ``output`` only when the video was redacted to its end: a truncated or unreadable
input (the file ends before its header's frame count or duration, too many corrupt packets), a
full disk, ``on_suspect="fail"`` meeting a suspect frame, or Ctrl-C leave nothing there.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from mien.detect.search import FrameSearch
from mien.errors import OutputError, SuspectFramesError
from mien.media.discover import VIDEO_SUFFIXES
from mien.media.video import VideoFrame, VideoLimits, VideoReader, VideoWriter
from mien.media.write import check_output_file
from mien.options import AnalyzerOptions
from mien.redact.draw import redact_regions
from mien.redact.encoder import EncodeStage
from mien.redact.options import RedactOptions
from mien.redact.report import CoveredRegion, RedactionReport
from mien.redact.suspect import (
    NOT_SEARCHED,
    SHRINK_AREA,
    SIZE_CHANGED,
    SUSPECT_REASONS,
    TRACK_SHRANK,
    TRACK_VANISHED,
    VANISH_HOLD_MS,
    VANISH_MIN_HITS,
    OnSuspect,
    SuspectAction,
    SuspectFrame,
    cover_whole_frame,
    grow_boxes,
    scene_cut,
    thumbnail,
    validate_on_suspect,
    whole_frame_box,
)
from mien.track.tracker import Track, Tracker, TrackerOptions

__all__ = ["VideoRedactOptions", "redact_video"]

log = logging.getLogger("mien")

#: A track's reference size is its largest detection in this much stream time before now.
REFERENCE_MS = 1000.0


@dataclass(frozen=True)
class VideoRedactOptions:
    """How faces are found and followed in a video being redacted.

    * ``detect_side``: longer side (px) of the copy the detector runs on (0: full frame);
      validated as, and read through, :attr:`search` (a :class:`FrameSearch`).
    * ``detect_every``: run the detector on every N-th frame only; the frames between get the
      boxes interpolated between the detections before and after them (1: every frame).
      Frames the decoder flags as damaged are always searched.
    * ``tracker``: matching, and for how many detector runs a missed face stays covered
      (``max_missed``; with ``detect_every=2`` the default 4 is 8 frames).
    * ``backfill``: frames before a track's first detection that are covered too (at most
      ``max_missed``), with the first detection's box; at the track's second detection, when
      its motion is known, each such box also reaches back along that motion.
    * ``global_every``: search the whole frame on every N-th searched frame only (and on
      damaged frames and size changes); the searched frames between are searched only around
      the faces being followed (:meth:`FrameDetector.detect_around` on their predicted boxes and
      the held boxes of vanished faces). A face that enters the picture is then found at most
      ``global_every * detect_every - 1`` frames after a full search would have found it, and
      ``backfill`` must reach back that many frames (1: every searched frame whole, the default).
    * ``on_suspect``: what to do with a suspect frame (:mod:`mien.redact.suspect`):
      ``"cover"`` (default) its known regions grown, or all of it; ``"fail"``: stop with
      :class:`mien.errors.SuspectFramesError` and write nothing; ``"keep"``: write it as the
      usual regions cover it. Suspect frames are reported in every case.
    * ``codec``: encoder name (e.g. ``"libx264"``); None: the input's codec where possible.
    * ``limits``: largest frames accepted.
    """

    detect_side: int = 1280
    detect_every: int = 2
    tracker: TrackerOptions = field(default_factory=lambda: TrackerOptions(max_missed=4))
    backfill: int = 3
    global_every: int = 1
    on_suspect: OnSuspect = "cover"
    codec: str | None = None
    limits: VideoLimits = field(default_factory=VideoLimits)
    search: FrameSearch = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "search", FrameSearch(self.detect_side))
        if not isinstance(self.detect_every, int) or not 1 <= self.detect_every <= 4:
            raise ValueError(f"detect_every must be an integer in 1..4, got {self.detect_every!r}")
        if self.tracker.max_missed < self.detect_every:
            raise ValueError("tracker.max_missed must be at least detect_every")
        if not isinstance(self.backfill, int) or not 0 <= self.backfill <= self.tracker.max_missed:
            raise ValueError(
                f"backfill must be an integer in 0..max_missed ({self.tracker.max_missed})"
            )
        if not isinstance(self.global_every, int) or not 1 <= self.global_every <= 4:
            raise ValueError(f"global_every must be an integer in 1..4, got {self.global_every!r}")
        if self.backfill < self.late_frames:
            raise ValueError(
                f"backfill must be at least global_every * detect_every - 1 ({self.late_frames})"
            )
        validate_on_suspect(self.on_suspect)

    @property
    def late_frames(self) -> int:
        """How many frames later than a whole-frame search a new face may be found."""
        return self.global_every * self.detect_every - 1 if self.global_every > 1 else 0


@dataclass
class _Pending:
    frame: VideoFrame
    regions: dict[int, CoveredRegion]
    suspect: set[str] = field(default_factory=set)
    known: list[tuple[float, float, float, float]] = field(default_factory=list)
    """Where faces were known at a suspect frame besides its regions (live tracks, vanished
    ones); left empty for a frame that is not suspect."""
    extra: list[CoveredRegion] = field(default_factory=list)
    """Suspect covers found while the frame was added (a shrunk box's recent size)."""
    backfilled: set[int] = field(default_factory=set)
    """Tracks whose region here was backfilled from their first detection (a later frame)."""


@dataclass
class _Hold:
    """The last box of a face that vanished inside the picture, covered until ``until_ms``."""

    box: npt.NDArray[np.float64]
    score: float
    until_ms: float


def _box(b: npt.ArrayLike) -> tuple[float, float, float, float]:
    a = np.asarray(b, np.float64).reshape(4)
    return (float(a[0]), float(a[1]), float(a[2]), float(a[3]))


def _area(b: npt.NDArray[np.float64]) -> float:
    return float(max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0))


def _overlaps(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> bool:
    """Whether the centre of either box lies inside the other."""
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    return bool((b[:2] <= ca).all() and (ca <= b[2:]).all()) or bool(
        (a[:2] <= cb).all() and (cb <= a[2:]).all()
    )


def _inside(box: npt.NDArray[np.float64], width: int, height: int) -> bool:
    """Whether a face box keeps a tenth of its size clear of every edge of the picture (a face
    at an edge may simply have left the picture)."""
    mx, my = (box[2] - box[0]) / 10, (box[3] - box[1]) / 10
    return bool(box[0] >= mx and box[1] >= my and box[2] <= width - mx and box[3] <= height - my)


class _Redactor:
    """The per-video state: tracker, look-ahead buffer, writer, report regions, suspect frames."""

    def __init__(self, options: RedactOptions, vopts: VideoRedactOptions, source: str) -> None:
        self.options = options
        self.vopts = vopts
        self.source = source
        self.tracker = Tracker(vopts.tracker)
        self.buffer: deque[_Pending] = deque()
        self.last_detected: dict[int, tuple[npt.NDArray[np.float64], float, float]] = {}
        self.recent: dict[int, deque[tuple[float, npt.NDArray[np.float64]]]] = {}
        self.holds: dict[int, _Hold] = {}
        self.regions: list[CoveredRegion] = []
        self.suspects: list[SuspectFrame] = []
        self.sink: Callable[[_Job], None] = _no_sink
        """Where the frames leaving the look-ahead buffer go (the encode stage)."""
        self._thumb: npt.NDArray[np.float32] | None = None
        self._cut_ms: float | None = None

    def picture(self, frame: VideoFrame) -> None:
        """Look at every frame's picture before it is added: remembers the last scene cut."""
        rgb = frame.scaled if frame.scaled is not None else frame.rgb
        if rgb is None:
            return
        thumb = thumbnail(rgb)
        if scene_cut(self._thumb, thumb):
            self._cut_ms = frame.timestamp_ms
        self._thumb = thumb

    # -- frames in ---------------------------------------------------------------------------

    def add(
        self,
        frame: VideoFrame,
        boxes: npt.NDArray[np.float32],
        scores: Any,
        reasons: Iterable[str] = (),
    ) -> None:
        """A frame the detector searched, with its detections."""
        ts = frame.timestamp_ms
        pending = _Pending(frame, {}, set(frame.damage) | set(reasons))
        ids = self.tracker.update(boxes, scores, ts)
        dets = np.asarray(boxes, np.float64).reshape(-1, 4)
        for box, s, tid in zip(dets, scores, ids, strict=True):
            t = int(tid)
            previous = self.last_detected.get(t)
            if previous is None:
                self._backfill(t, box, float(s))
            else:
                self._interpolate(t, previous, box, float(s), ts)
            self.last_detected[t] = (box, ts, float(s))
            self._check_size(pending, t, box, float(s))
            self._remember(t, box, ts)
            pending.regions[t] = CoveredRegion(_box(box), float(s), "detected", frame.index, ts, t)
        for track, predicted in self.tracker.coasting(ts):
            t = track.track_id
            self._check_size(pending, t, predicted, track.score)
            pending.regions[t] = CoveredRegion(
                _box(predicted), track.score, "tracked", frame.index, ts, t
            )
        for track in self.tracker.ended:
            self._ended(track, frame, ts)
        self._apply_holds(pending, dets)
        self._push(pending)

    def skip(self, frame: VideoFrame, reasons: Iterable[str] = ()) -> None:
        """A frame the detector does not look at (``detect_every``), or could not search
        (``reasons``): every live track's predicted box, replaced by an interpolated one when
        the track is detected again."""
        ts = frame.timestamp_ms
        pending = _Pending(frame, {}, set(frame.damage) | set(reasons))
        for t in self.tracker.tracks:
            predicted = t.predict(ts)
            self._check_size(pending, t.track_id, predicted, t.score)
            pending.regions[t.track_id] = CoveredRegion(
                _box(predicted), t.score, "tracked", frame.index, ts, t.track_id
            )
        self._apply_holds(pending, np.zeros((0, 4)))
        self._push(pending)

    def followed(self, ts: float) -> npt.NDArray[np.float64]:
        """Where the followed faces are expected at ``ts``: live tracks' predicted boxes and the
        held boxes of faces that vanished inside the picture."""
        boxes = [t.predict(ts) for t in self.tracker.tracks]
        boxes += [h.box for h in self.holds.values()]
        return np.asarray(boxes, np.float64).reshape(-1, 4)

    # -- what makes a frame suspect --------------------------------------------------------

    def _remember(self, tid: int, box: npt.NDArray[np.float64], ts: float) -> None:
        window = self.recent.setdefault(tid, deque())
        window.append((ts, box.copy()))
        while window and window[0][0] < ts - REFERENCE_MS:
            window.popleft()

    def _check_size(
        self, pending: _Pending, tid: int, box: npt.NDArray[np.float64], score: float
    ) -> None:
        """A box below :data:`SHRINK_AREA` of its track's recent largest detection makes the
        frame suspect; that recent size, centred on the box, is the suspect cover."""
        window = self.recent.get(tid)
        if not window:
            return
        ref = max((b for _, b in window), key=_area)
        if _area(np.asarray(box, np.float64)) >= SHRINK_AREA * _area(ref):
            return
        pending.suspect.add(TRACK_SHRANK)
        c = (box[:2] + box[2:]) / 2
        half = (ref[2:] - ref[:2]) / 2
        big = np.concatenate([np.minimum(c - half, box[:2]), np.maximum(c + half, box[2:])])
        f = pending.frame
        pending.extra.append(
            CoveredRegion(_box(big), score, "suspect", f.index, f.timestamp_ms, tid)
        )

    def _ended(self, track: Track, frame: VideoFrame, ts: float) -> None:
        tid = track.track_id
        self.last_detected.pop(tid, None)
        self.recent.pop(tid, None)
        explained = self._cut_ms is not None and self._cut_ms > track.last_ms
        if (
            track.hits >= VANISH_MIN_HITS
            and not explained
            and _inside(track.box, frame.width, frame.height)
        ):
            self.holds[tid] = _Hold(track.box.copy(), track.score, ts + VANISH_HOLD_MS)

    def _apply_holds(self, pending: _Pending, detections: npt.NDArray[np.float64]) -> None:
        """Faces that vanished inside the picture: known (and the frame suspect) until found
        again (a detection on the held box) or until their hold ends."""
        ts = pending.frame.timestamp_ms
        for tid, hold in list(self.holds.items()):
            if ts > hold.until_ms or any(_overlaps(hold.box, d) for d in detections):
                del self.holds[tid]
                continue
            pending.suspect.add(TRACK_VANISHED)
            pending.known.append(_box(hold.box))
        if pending.suspect:  # every reason is known by now; the known areas cover it
            pending.known.extend(_box(t.predict(ts)) for t in self.tracker.tracks)

    # -- look-ahead buffer -------------------------------------------------------------------

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
                pending.backfilled.add(tid)

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
            if r is not None and tid in pending.backfilled and span > 0:
                # Backfilled with the first detection's box, before the face's motion was
                # known: now it is, so the box reaches back along it too (both kept).
                pending.backfilled.discard(tid)
                back = b0 + (box - b0) * ((f.timestamp_ms - t0) / span)
                both = np.concatenate(
                    [np.minimum(back[:2], r.box[:2]), np.maximum(back[2:], r.box[2:])]
                )
                pending.regions[tid] = replace(r, box=_box(both))
                continue
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

    # -- frames out --------------------------------------------------------------------------

    def _suspect_regions(self, pending: _Pending, regions: list[CoveredRegion]) -> SuspectAction:
        """Add the suspect covers of a suspect frame to ``regions``; the action taken."""
        f = pending.frame
        if self.vopts.on_suspect == "fail":
            why = "; ".join(SUSPECT_REASONS.get(r, r) for r in sorted(pending.suspect))
            raise SuspectFramesError(
                f"{self.source}: frame {f.index} ({f.timestamp_ms:.0f} ms) may show an uncovered "
                f"face ({why}); stopped without writing (on_suspect='fail')"
            )
        if self.vopts.on_suspect == "keep":
            return "kept"
        # A live track's predicted box is usually one of the frame's regions already: each
        # known area is grown and reported once.
        known = list(
            dict.fromkeys([r.box for r in regions] + [r.box for r in pending.extra] + pending.known)
        )
        regions.extend(pending.extra)
        if known:
            for box in grow_boxes(known):
                regions.append(
                    CoveredRegion(_box(box), 0.0, "suspect", f.index, f.timestamp_ms, None)
                )
            return "covered_regions"
        regions.append(
            CoveredRegion(
                _box(whole_frame_box(f.width, f.height)[0]),
                0.0,
                "suspect",
                f.index,
                f.timestamp_ms,
                None,
            )
        )
        return "covered_frame"

    def _emit(self, pending: _Pending) -> None:
        """Decide what covers a frame leaving the look-ahead buffer; hand it to :attr:`sink`."""
        frame = pending.frame
        regions = sorted(pending.regions.values(), key=lambda r: r.track_id or 0)
        action: SuspectAction | None = None
        if pending.suspect:
            action = self._suspect_regions(pending, regions)
            self.suspects.append(
                SuspectFrame(
                    frame.index, frame.timestamp_ms, tuple(sorted(pending.suspect)), action
                )
            )
        self.regions.extend(regions)
        boxes = np.array([r.box for r in regions], np.float32).reshape(-1, 4)
        self.sink(_Job(frame, boxes, action))

    def flush(self) -> None:
        while self.buffer:
            self._emit(self.buffer.popleft())


@dataclass
class _Job:
    """One frame for the cover-and-encode stage (``frame`` None: ``audio`` is a packet)."""

    frame: VideoFrame | None
    boxes: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    action: SuspectAction | None = None
    audio: Any = None


class _Encoder:
    """Covers and encodes the frames (runs on the :class:`EncodeStage` thread)."""

    def __init__(
        self, writer: VideoWriter, options: RedactOptions, out_size: tuple[int, int], rotation: int
    ) -> None:
        self.writer = writer
        self.options = options
        self.out_size = out_size
        self.rotation = rotation
        self.frames_written = 0
        self.draw_s = 0.0
        self.encode_s = 0.0

    def __call__(self, job: _Job) -> None:
        frame = job.frame
        if frame is None:
            self.writer.write_audio(job.audio)
            return
        size_ok = (frame.width, frame.height) == self.out_size
        t0 = time.perf_counter()
        as_decoded = frame.frame is not None and frame.rgb is None and self.rotation == 0
        if not len(job.boxes) and size_ok and as_decoded:
            self.writer.write_frame(frame.frame, frame.pts)
            self.frames_written += 1
            self.encode_s += time.perf_counter() - t0
            return
        rgb = frame.rgb if frame.rgb is not None else _rgb_of(frame, self.rotation)
        if job.action == "covered_frame":
            out = cover_whole_frame(rgb, self.options)
        else:
            out = redact_regions(rgb, job.boxes, self.options) if len(job.boxes) else rgb
        if not size_ok:  # covered at its own size, then scaled to the output's
            out = np.ascontiguousarray(cv2.resize(out, self.out_size, interpolation=cv2.INTER_AREA))
        t1 = time.perf_counter()
        self.writer.write_rgb(out, frame.pts)
        self.frames_written += 1
        self.draw_s += t1 - t0
        self.encode_s += time.perf_counter() - t1


def _no_sink(job: _Job) -> None:  # pragma: no cover - replaced before the first frame
    raise RuntimeError("no encode stage")


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
    face per frame, and every suspect frame: check :attr:`RedactionReport.suspect_frames`, or
    :attr:`RedactionReport.complete`, before trusting the output blindly).

    Raises :class:`mien.errors.MediaError` subclasses when the input cannot be read, is cut
    short or is damaged beyond reading (``NotFound``, ``InvalidVideo``, ``NoVideoStream``,
    ``EmptyVideo``, ``VideoTooLarge``), :class:`mien.errors.SuspectFramesError` at the first
    suspect frame when ``video.on_suspect == "fail"``, and
    :class:`mien.media.write.OutputError` when the output cannot be written; in every failure
    case nothing is left at ``output``. ``progress(frames_done, frames_expected)`` is called
    after each decoded frame.
    """
    from mien.analyzer import FaceAnalyzer
    from mien.detect.detector import DetectionPlan
    from mien.detect.frame import FrameDetector
    from mien.redact.image import redaction_analyzer_options

    name = os.fspath(source)
    out_path = check_output_file(output, VIDEO_SUFFIXES, "video", name)
    opts = options if options is not None else RedactOptions()
    vopts = video if video is not None else VideoRedactOptions()
    an_opts = redaction_analyzer_options(analyzer_options)
    # the shrunk copy the reader makes is searched, the faces mapped back to full size
    analyzer = FaceAnalyzer(an_opts)
    detector = FrameDetector(analyzer.detector, DetectionPlan.for_options(an_opts), vopts.search)
    red = _Redactor(opts, vopts, name)
    audio_waiting: list[Any] = []
    size_changes: list[dict[str, int]] = []
    detector_failures = 0
    detect_s = track_s = 0.0
    with VideoReader(
        name,
        limits=vopts.limits,
        full=vopts.search.full_frame,
        scaled_side=vopts.search.scaled_side,
        keep_frames=True,
        audio=True,
    ) as reader:
        expected = reader.info.frames
        writer: VideoWriter | None = None
        encoder: _Encoder | None = None
        stage: EncodeStage | None = None
        first_index = 0
        size: tuple[int, int] | None = None
        try:
            for item in reader:
                if not isinstance(item, VideoFrame):
                    if stage is None:
                        audio_waiting.append(item)
                    else:
                        stage.put(_Job(None, audio=item))
                    continue
                if stage is None:
                    writer = VideoWriter(
                        out_path,
                        reader.info,
                        audio_stream=reader.audio_stream,
                        codec=vopts.codec,
                    )
                    size = (item.width, item.height)
                    encoder = _Encoder(writer, opts, size, reader.info.rotation)
                    stage = EncodeStage(encoder)
                    red.sink = stage.put
                    first_index = item.index
                    for packet in audio_waiting:
                        stage.put(_Job(None, audio=packet))
                    audio_waiting.clear()
                t0 = time.perf_counter()
                red.picture(item)
                reasons: list[str] = []
                if (item.width, item.height) != size:
                    size = (item.width, item.height)
                    reasons.append(SIZE_CHANGED)
                    size_changes.append(
                        {"frame_index": item.index, "width": size[0], "height": size[1]}
                    )
                step, off = divmod(item.index - first_index, vopts.detect_every)
                searched = off == 0
                if searched or item.damage or reasons:
                    whole = step % vopts.global_every == 0 or item.damage or reasons
                    try:
                        if whole:
                            det = detector.detect(item)
                        else:
                            det = detector.detect_around(item, red.followed(item.timestamp_ms))
                    except Exception as exc:  # fail closed: the frame is covered, not lost
                        detector_failures += 1
                        if detector_failures == 1:
                            log.warning(
                                "%s: detection failed on frame %d: %r", name, item.index, exc
                            )
                        t1 = time.perf_counter()
                        red.skip(item, [*reasons, NOT_SEARCHED])
                    else:
                        t1 = time.perf_counter()
                        red.add(item, det.boxes, det.scores, reasons)
                else:
                    t1 = time.perf_counter()
                    red.skip(item)
                detect_s += t1 - t0
                track_s += time.perf_counter() - t1
                if progress is not None:
                    progress(reader.frames_decoded, expected)
            if reader.fatal_error is not None:
                raise reader.fatal_error
            if stage is None or writer is None or encoder is None:  # pragma: no cover
                raise OutputError(f"cannot write {out_path}: no frame")  # EmptyVideo comes first
            red.flush()
            stage.close()
            writer.finish()
        except BaseException:
            if stage is not None:
                stage.abort()
            if writer is not None:
                writer.__exit__(RuntimeError, None, None)
            raise
        info = reader.info
    out_size = encoder.out_size
    frames = max(1, encoder.frames_written)
    stage_ms = {
        "decode": 1000 * reader.decode_seconds / frames,
        "detect": 1000 * detect_s / frames,
        "track": 1000 * track_s / frames,
        "draw": 1000 * encoder.draw_s / frames,
        "encode": 1000 * encoder.encode_s / frames,
    }
    extra = {
        **info.to_dict(),
        "width": out_size[0],
        "height": out_size[1],
        "frames_decoded": reader.frames_decoded,
        "frames_damaged": reader.frames_damaged,
        **({"input_damage": reader.error.message} if reader.error is not None else {}),
        **({"size_changes": size_changes} if size_changes else {}),
        **({"detector_failures": detector_failures} if detector_failures else {}),
        "output_codec": writer.codec,
        "audio_kept": writer.has_audio,
        **({"audio_note": writer.audio_note} if writer.audio_note else {}),
        "detect_side": vopts.detect_side,
        "detect_every": vopts.detect_every,
        "max_missed": vopts.tracker.max_missed,
        "backfill": vopts.backfill,
        "global_every": vopts.global_every,
        "on_suspect": vopts.on_suspect,
        "stage_ms_per_frame": {k: round(v, 3) for k, v in stage_ms.items()},
    }
    return RedactionReport(
        source=name,
        output=os.fspath(output),
        kind="video",
        regions=tuple(red.regions),
        frames=encoder.frames_written,
        width=out_size[0],
        height=out_size[1],
        options=opts,
        threshold=an_opts.threshold,
        models=analyzer.models,
        extra=extra,
        suspect_frames=tuple(red.suspects),
    )
