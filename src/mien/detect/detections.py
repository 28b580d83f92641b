"""The detector's result: boxes, scores and five points per face, as one indexable type.

Every stage that narrows or moves detections (non-maximum suppression, the passes of a shrunk,
upscaled or tiled picture, a video frame's copy, ``min_face`` / ``max_faces``) does it with
the methods here, so the three arrays cannot fall out of step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Detections:
    """Detected faces in the pixel frame of one picture, usually best score first.

    ``boxes`` (N, 4) float32 ``x1, y1, x2, y2``; ``scores`` (N,) float32; ``points``
    (N, 5, 2) float32 in CenterFace order (image-left eye first). Indexing with an int, a
    slice, a boolean mask or an index array gives the :class:`Detections` of those faces.
    """

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    points: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        n = self.boxes.shape[0] if self.boxes.ndim == 2 else -1
        if (
            self.boxes.shape != (n, 4)
            or self.scores.shape != (n,)
            or self.points.shape != (n, 5, 2)
        ):
            raise ValueError(
                "detections need boxes (N, 4), scores (N,) and points (N, 5, 2), got "
                f"{self.boxes.shape}, {self.scores.shape} and {self.points.shape}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32),
        )

    @classmethod
    def merge(cls, parts: Iterable[Detections]) -> Detections:
        """The detections of all ``parts``, in order (of different passes over one picture)."""
        found = [p for p in parts if len(p)]
        if not found:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in found]),
            np.concatenate([p.scores for p in found]),
            np.concatenate([p.points for p in found]),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, index: int | slice | npt.NDArray[Any]) -> Detections:
        key: Any = [int(index)] if isinstance(index, int | np.integer) else index
        return Detections(self.boxes[key], self.scores[key], self.points[key])

    def map_back(self, scale: float, dx: float = 0.0, dy: float = 0.0) -> Detections:
        """Detections of a copy of a picture resized by ``scale`` and cut at ``(dx, dy)``, in
        the pixels of the picture: divided by ``scale``, then shifted."""
        shift2 = np.array([dx, dy], np.float32)
        shift4 = np.array([dx, dy, dx, dy], np.float32)
        return Detections(self.boxes / scale + shift4, self.scores, self.points / scale + shift2)

    def clip(self, width: int, height: int) -> Detections:
        """Boxes cut to a ``width`` x ``height`` picture (points are left where they are)."""
        if not len(self):
            return self
        b = self.boxes.copy()
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
        return Detections(b.astype(np.float32), self.scores, self.points.astype(np.float32))

    def larger_than(self, min_side: float) -> Detections:
        """The faces whose box's longer side is at least ``min_side`` px (all for 0)."""
        if min_side <= 0 or not len(self):
            return self
        w = self.boxes[:, 2] - self.boxes[:, 0]
        h = self.boxes[:, 3] - self.boxes[:, 1]
        return self[np.maximum(w, h) >= min_side]

    def top(self, k: int | None) -> Detections:
        """The first ``k`` faces (the ``k`` best when sorted by score; all for None)."""
        return self if k is None else self[:k]
