"""What every observable-attribute analyzer shares: the per-image face context, and the protocol.

An attribute analyzer gets a :class:`FaceContext` (the picture and everything already known of
its faces) and returns one :class:`mien.types.AttributeColumn` — a value and a calibrated
confidence per face, or ``None`` with a reason when the face cannot be judged (too small, too
turned, no mesh...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mien.analyzers.align import aligned_crop
from mien.types import AttributeColumn, ModelInfo


@dataclass
class FaceContext:
    """One picture and its faces, with aligned crops computed once and shared between analyzers.

    ``mesh`` rows are NaN for faces that got no mesh (too small); ``head_pose`` rows likewise.
    """

    rgb: npt.NDArray[np.uint8]
    boxes: npt.NDArray[np.float32]
    landmarks: npt.NDArray[np.float32]
    mesh: npt.NDArray[np.float32]
    head_pose: npt.NDArray[np.float32]
    _crops: dict[tuple[int, int, float, float], npt.NDArray[np.uint8]] = field(
        default_factory=dict, repr=False
    )

    def __len__(self) -> int:
        return len(self.boxes)

    def has_mesh(self, i: int) -> bool:
        return bool(np.isfinite(self.mesh[i]).all())

    def face_size(self, i: int) -> float:
        b = self.boxes[i]
        return float(max(b[2] - b[0], b[3] - b[1]))

    def inter_eye(self, i: int) -> float:
        return float(np.hypot(*(self.landmarks[i, 1] - self.landmarks[i, 0])))

    def crop(
        self, i: int, size: int, eye_y: float = 0.40, eye_distance: float = 0.36
    ) -> npt.NDArray[np.uint8]:
        """Aligned RGB crop of face ``i`` (cached): eyes level at fixed places, see align.py."""
        key = (i, size, eye_y, eye_distance)
        out = self._crops.get(key)
        if out is None:
            lm = self.landmarks[i]
            out = aligned_crop(self.rgb, lm[0], lm[1], size, eye_y, eye_distance)
            self._crops[key] = out
        return out


class AttributeAnalyzer(Protocol):
    """Computes one attribute for every face of a :class:`FaceContext`."""

    name: str
    models: tuple[ModelInfo, ...]

    def __call__(self, ctx: FaceContext) -> AttributeColumn: ...


def column(n: int, judge: Callable[[int], tuple[Any, float] | tuple[None, str]]) -> AttributeColumn:
    """Build a column from ``judge(i)`` -> ``(value, confidence)`` or ``(None, reason)``."""
    values: list[Any] = []
    conf = np.full(n, np.nan, np.float32)
    reasons: list[str | None] = []
    for i in range(n):
        value, second = judge(i)
        if value is None:
            values.append(None)
            reasons.append(str(second))
        else:
            values.append(value)
            conf[i] = float(second)
            reasons.append(None)
    return AttributeColumn(values=tuple(values), confidence=conf, reasons=tuple(reasons))
