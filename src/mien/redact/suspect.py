"""Suspect frames: where redaction cannot vouch that every face is covered, and what it does.

Redaction fails closed (docs/redaction.md, "Fail closed"). A frame is *suspect* when

* the decoder says it may be damaged (:mod:`mien.media.damage`: ``corrupt_frame``,
  ``decode_error``, ``timestamp_gap``, ``after_damage``);
* the detector could not search it (``not_searched``: it failed on the frame, or a live session
  had to skip it);
* a face being followed shrank abruptly (``track_shrank``: its box fell below
  :data:`SHRINK_AREA` of the track's recent size, which real motion rarely does and damage or a
  partial detection often does) or vanished inside the picture (``track_vanished``: a face
  detected at least :data:`VANISH_MIN_HITS` times was lost while clear of the picture's edges,
  with no scene cut since its last detection (:func:`scene_cut`), so it may still be there);
* the picture size changed (``size_changed``: what was known of the faces is in the old
  geometry).

What happens to it is the caller's choice (:data:`ON_SUSPECT`):

* ``"cover"`` (default): besides the usual regions, cover every *known* region grown
  :data:`SUSPECT_GROWTH` times (faces detected in the frame, live tracks, faces that vanished
  within :data:`VANISH_HOLD_MS`), or the whole frame when nothing is known;
* ``"fail"``: stop with :class:`mien.errors.SuspectFramesError`; nothing is written;
* ``"keep"``: write the frame as the usual regions cover it.

Whatever the choice, every suspect frame is listed in the report with its reasons and what was
done (:class:`SuspectFrame`), and the CLI exits 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from mien.media.damage import DAMAGE_REASONS
from mien.redact.draw import redact_regions
from mien.redact.options import RedactOptions

__all__ = [
    "CUT_DIFF",
    "NOT_SEARCHED",
    "ON_SUSPECT",
    "SHRINK_AREA",
    "SIZE_CHANGED",
    "SUSPECT_GROWTH",
    "SUSPECT_REASONS",
    "TRACK_SHRANK",
    "TRACK_VANISHED",
    "VANISH_HOLD_MS",
    "VANISH_MIN_HITS",
    "OnSuspect",
    "SuspectAction",
    "SuspectFrame",
    "cover_whole_frame",
    "grow_boxes",
    "scene_cut",
    "thumbnail",
    "validate_on_suspect",
    "whole_frame_box",
]

OnSuspect = Literal["cover", "fail", "keep"]
ON_SUSPECT: Final[tuple[str, ...]] = ("cover", "fail", "keep")

SuspectAction = Literal["covered_regions", "covered_frame", "kept"]

NOT_SEARCHED: Final[str] = "not_searched"
TRACK_SHRANK: Final[str] = "track_shrank"
TRACK_VANISHED: Final[str] = "track_vanished"
SIZE_CHANGED: Final[str] = "size_changed"

#: Every reason a frame can be suspect, with its sentence (the decoder's first).
SUSPECT_REASONS: Final[dict[str, str]] = {
    **DAMAGE_REASONS,
    NOT_SEARCHED: "the detector could not search this frame",
    TRACK_SHRANK: "a followed face's box shrank abruptly",
    TRACK_VANISHED: "a followed face was lost inside the picture",
    SIZE_CHANGED: "the picture size changed",
}

#: Known regions of a suspect frame are grown this many times (side) around their centres,
#: on top of the redaction's own ``scale``: a damaged picture may have moved or smeared them.
SUSPECT_GROWTH: Final[float] = 1.5
#: A track's box whose area falls below this share of its recent largest is "shrunk".
SHRINK_AREA: Final[float] = 0.5
#: How long the last region of a face that vanished inside the picture stays covered.
VANISH_HOLD_MS: Final[float] = 1000.0
#: Detections a track needs before its loss counts as a vanished face (not a flicker).
VANISH_MIN_HITS: Final[int] = 3
#: Mean absolute grey-level difference (0-255) of two consecutive 32x18 thumbnails above which
#: the picture changed as a whole (a scene cut). Measured on the clips of ../shared/data
#: pyfeat_media: cuts 75-145, camera motion at most 6, frames damaged by bit errors at most 13.
CUT_DIFF: Final[float] = 30.0


def validate_on_suspect(value: str) -> OnSuspect:
    """``value`` if it is one of :data:`ON_SUSPECT`, else ValueError."""
    if value not in ON_SUSPECT:
        raise ValueError(f"on_suspect must be one of {', '.join(ON_SUSPECT)}, got {value!r}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class SuspectFrame:
    """One suspect frame of a redacted video or stream: where, why, and what was done."""

    frame_index: int
    timestamp_ms: float
    reasons: tuple[str, ...]
    action: SuspectAction

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame_index": int(self.frame_index),
            "timestamp_ms": round(float(self.timestamp_ms), 3),
            "reasons": list(self.reasons),
            "action": self.action,
        }


def grow_boxes(boxes: npt.ArrayLike, factor: float = SUSPECT_GROWTH) -> npt.NDArray[np.float64]:
    """Boxes ``(N, 4)`` grown ``factor`` times (side) around their centres (not clipped)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    c = (b[:, :2] + b[:, 2:]) / 2
    half = np.abs(b[:, 2:] - b[:, :2]) * factor / 2
    return np.concatenate([c - half, c + half], axis=1)


def whole_frame_box(width: int, height: int) -> npt.NDArray[np.float64]:
    """The ``(1, 4)`` box of the whole picture."""
    return np.array([[0.0, 0.0, float(width), float(height)]])


def cover_whole_frame(rgb: npt.NDArray[np.uint8], options: RedactOptions) -> npt.NDArray[np.uint8]:
    """A copy of ``rgb`` covered edge to edge by ``options.method`` (for a suspect frame in
    which nothing is known)."""
    h, w = rgb.shape[:2]
    return redact_regions(rgb, whole_frame_box(w, h), replace(options, shape="box", scale=1.0))


def thumbnail(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """A 32x18 grey thumbnail of a picture, for :func:`scene_cut`."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.float32)


def scene_cut(before: npt.NDArray[np.float32] | None, after: npt.NDArray[np.float32]) -> bool:
    """Whether the picture changed as a whole between two consecutive thumbnails."""
    return before is not None and float(np.abs(after - before).mean()) > CUT_DIFF
