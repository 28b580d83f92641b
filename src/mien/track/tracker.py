"""A small multi-face tracker: constant-velocity prediction, overlap/distance matching.

Per frame (:meth:`Tracker.update`):

1. every live track predicts its box at the frame's timestamp (last detected box moved by its
   smoothed velocity, in pixels per millisecond, so variable frame rates and sampled frames are
   handled; the move is capped at one box size);
2. predictions and detections are matched greedily by :func:`mien.track.assign.affinity`
   (IoU first, then near centres for fast motion);
3. a matched track takes the detection's box and updates its velocity; a detection without a
   track starts a new one (ids count up from 1 within one tracker), moving as the median of
   the tracks followed in this frame when there are at least :data:`COMMON_MOTION_TRACKS` of
   them (in a camera pan every face moves alike, and a small face may move more than its own
   size between searched frames: started still, it would not be matched again); a track
   without a detection is *missed* and ends after ``max_missed`` consecutive missed frames.

Tracks missed in the latest frame are *coasting*: :meth:`Tracker.coasting` gives their
predicted boxes, which video redaction covers so a face stays hidden through detection gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mien.track.assign import affinity, greedy_assign

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Tracks followed in a frame (each detected three times or more) needed before their median
#: motion is given to the new tracks of that frame.
COMMON_MOTION_TRACKS = 3


@dataclass(frozen=True)
class TrackerOptions:
    """How tracks are matched and how long they live.

    * ``max_missed``: processed frames in a row a track survives without a detection.
    * ``min_iou``: least overlap of a predicted and a detected box to match them.
    * ``max_distance``: or, centres at most this many box sizes apart (sizes within 2x).
    * ``smoothing``: weight of the newest velocity measurement (0..1).
    """

    max_missed: int = 5
    min_iou: float = 0.2
    max_distance: float = 1.0
    smoothing: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.max_missed, int) or self.max_missed < 0:
            raise ValueError(f"max_missed must be an integer >= 0, got {self.max_missed!r}")
        if not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"min_iou must lie in (0, 1], got {self.min_iou}")
        if self.max_distance < 0:
            raise ValueError(f"max_distance must be >= 0, got {self.max_distance}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"smoothing must lie in (0, 1], got {self.smoothing}")


@dataclass
class Track:
    """One followed face: its last detected box and how it moves."""

    track_id: int
    box: FloatArray
    score: float
    last_ms: float
    first_ms: float
    velocity: FloatArray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1
    missed: int = 0

    def predict(self, timestamp_ms: float) -> FloatArray:
        """The box expected at ``timestamp_ms`` (moved at most one box size)."""
        dt = max(0.0, timestamp_ms - self.last_ms)
        move = self.velocity * dt
        size = max(self.box[2] - self.box[0], self.box[3] - self.box[1], 1.0)
        longest = float(np.abs(move).max()) if move.size else 0.0
        if longest > size:
            move = move * (size / longest)
        out: FloatArray = self.box + move
        if out[2] < out[0]:
            out[[0, 2]] = out[[2, 0]]
        if out[3] < out[1]:
            out[[1, 3]] = out[[3, 1]]
        return out


class Tracker:
    """Gives detections stable track ids across the frames of one video.

    Timestamps must increase from call to call (:class:`ValueError` otherwise).
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self._tracks: list[Track] = []
        self._next_id = 1
        self._last_ms: float | None = None
        self.ended: list[Track] = []
        """Tracks that ended in the latest :meth:`update` (for summaries)."""

    @property
    def tracks(self) -> list[Track]:
        """The live tracks (matched in the latest frame or coasting)."""
        return list(self._tracks)

    def update(self, boxes: npt.ArrayLike, scores: npt.ArrayLike, timestamp_ms: float) -> IntArray:
        """Match this frame's detections (boxes (N, 4), scores (N,)) to tracks; returns the
        track id of each detection, in the order given."""
        ts = float(timestamp_ms)
        if not np.isfinite(ts):
            raise ValueError(f"timestamp_ms must be finite, got {timestamp_ms!r}")
        if self._last_ms is not None and ts <= self._last_ms:
            raise ValueError(
                f"timestamps must increase: got {ts} ms after {self._last_ms} ms "
                "(use a new tracker for a new video)"
            )
        self._last_ms = ts
        det = np.asarray(boxes, np.float64).reshape(-1, 4)
        sc = np.asarray(scores, np.float64).reshape(-1)
        if sc.shape[0] != det.shape[0]:
            raise ValueError(f"{det.shape[0]} boxes but {sc.shape[0]} scores")
        ids = np.zeros(det.shape[0], np.int64)
        predicted = np.array([t.predict(ts) for t in self._tracks]).reshape(-1, 4)
        pairs = greedy_assign(
            affinity(predicted, det, self.options.min_iou, self.options.max_distance)
        )
        matched_tracks: set[int] = set()
        for ti, di in pairs:
            track = self._tracks[ti]
            self._observe(track, det[di], float(sc[di]), ts)
            ids[di] = track.track_id
            matched_tracks.add(ti)
        matched_dets = {di for _, di in pairs}
        self.ended = []
        alive: list[Track] = []
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.missed += 1
                if track.missed > self.options.max_missed:
                    self.ended.append(track)
                    continue
            alive.append(track)
        prior = self._common_motion(matched_tracks)
        for di in range(det.shape[0]):
            if di in matched_dets:
                continue
            track = Track(self._next_id, det[di].copy(), float(sc[di]), ts, ts, prior.copy())
            self._next_id += 1
            alive.append(track)
            ids[di] = track.track_id
        self._tracks = alive
        return ids

    def _common_motion(self, matched: set[int]) -> FloatArray:
        """The velocity a new track starts with: the median of the tracks matched in this frame
        that had been followed before (a camera pan moves every face alike), when there are at
        least :data:`COMMON_MOTION_TRACKS` of them; else none."""
        moving = [
            t.velocity for i, t in enumerate(self._tracks) if i in matched and t.hits > 2
        ]
        if len(moving) < COMMON_MOTION_TRACKS:
            return np.zeros(4)
        v = np.asarray(moving, np.float64)
        med: FloatArray = np.median(v, axis=0)
        return med

    def _observe(self, track: Track, box: FloatArray, score: float, ts: float) -> None:
        dt = ts - track.last_ms
        if dt > 0:
            measured = (box - track.box) / dt
            a = self.options.smoothing if track.hits > 1 else 1.0
            track.velocity = a * measured + (1.0 - a) * track.velocity
        track.box = box.copy()
        track.score = score
        track.last_ms = ts
        track.hits += 1
        track.missed = 0

    def coasting(self, timestamp_ms: float | None = None) -> list[tuple[Track, FloatArray]]:
        """Tracks missed in the latest frame, with their predicted boxes at ``timestamp_ms``
        (default: the latest frame's)."""
        ts = self._last_ms if timestamp_ms is None else float(timestamp_ms)
        if ts is None:
            return []
        return [(t, t.predict(ts)) for t in self._tracks if t.missed > 0]

    def finish(self) -> list[Track]:
        """End every live track (at the end of a video) and return them."""
        done, self._tracks = self._tracks, []
        self.ended = done
        return done
