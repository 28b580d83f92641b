"""What live redaction needs on top of the video tracker: predicted and last known boxes.

The tracks themselves come from :class:`mien.track.Tracker` (through
:class:`mien.video.VideoAnalyzer`: ids by association, constant-velocity prediction, a track
ends after ``max_missed`` searched frames without its face). :class:`LiveTracks` reads it so
that live redaction can

* cover a face where it is *predicted* in frames that were not searched (analysis behind) or
  where the detector missed it (:meth:`LiveTracks.missing`, :meth:`LiveTracks.predicted`), and
* keep covering the *last known* area of every face detected in the last ``hold_ms`` whatever
  the detector says, also when it fails (:meth:`LiveTracks.held`).

It keeps boxes and scores only, never pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from mien.track.tracker import Tracker

Box = npt.NDArray[np.float32]


class LiveTracks:
    def __init__(self, tracker: Tracker, *, hold_ms: float = 2000.0) -> None:
        self.tracker = tracker
        self.hold_ms = hold_ms
        self._last: dict[int, tuple[Box, float, float]] = {}  # id -> (box, score, ms)
        self._open: set[int] = set()

    def observe(
        self, ids: npt.ArrayLike, boxes: npt.ArrayLike, scores: npt.ArrayLike, timestamp_ms: float
    ) -> tuple[list[int], list[int]]:
        """Record one searched frame (after the tracker's update): (started ids, ended ids)."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        s = np.asarray(scores, np.float32).reshape(-1)
        started: list[int] = []
        for i, tid in enumerate(np.asarray(ids, np.int64).reshape(-1).tolist()):
            self._last[tid] = (b[i].copy(), float(s[i]), float(timestamp_ms))
            if tid not in self._open:
                self._open.add(tid)
                started.append(tid)
        ended = [t.track_id for t in self.tracker.ended if t.track_id in self._open]
        self._open.difference_update(ended)
        return started, ended

    def open_tracks(self) -> list[int]:
        return sorted(self._open)

    def close_all(self) -> list[int]:
        done = sorted(self._open)
        self._open.clear()
        return done

    def missing(self, timestamp_ms: float) -> list[tuple[int, Box, float]]:
        """Tracks missed in the latest searched frame (coasting), at their predicted box."""
        return [(t.track_id, _box(box), t.score) for t, box in self.tracker.coasting(timestamp_ms)]

    def predicted(self, timestamp_ms: float) -> list[tuple[int, Box, float]]:
        """Every live track at its predicted box (for a frame that was not searched)."""
        return [(t.track_id, _box(t.predict(timestamp_ms)), t.score) for t in self.tracker.tracks]

    def held(self, timestamp_ms: float) -> list[tuple[int, Box, float]]:
        """Last detected box of every track detected within ``hold_ms``."""
        for t in [t for t, v in self._last.items() if timestamp_ms - v[2] > self.hold_ms]:
            del self._last[t]
        return [(t, box, score) for t, (box, score, _) in self._last.items()]


def _box(box: npt.ArrayLike) -> Box:
    return np.asarray(box, np.float32).reshape(4)
