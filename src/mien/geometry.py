"""Pairwise box geometry (pure NumPy), shared by detection (NMS) and tracking (matching).

Boxes are pixel ``[x1, y1, x2, y2]`` rows; ``dtype`` is the precision the caller computes in
(float32 for the detector's boxes, float64 for the tracker's Kalman-predicted ones).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

_F = TypeVar("_F", np.float32, np.float64)


def areas_and_intersections(
    a: npt.ArrayLike, b: npt.ArrayLike, dtype: type[_F]
) -> tuple[npt.NDArray[_F], npt.NDArray[_F], npt.NDArray[_F]]:
    """Areas of ``a`` (N,), of ``b`` (M,) and their pairwise intersections (N, M)."""
    x = np.asarray(a, dtype=dtype).reshape(-1, 4)
    y = np.asarray(b, dtype=dtype).reshape(-1, 4)
    ix1 = np.maximum(x[:, None, 0], y[None, :, 0])
    iy1 = np.maximum(x[:, None, 1], y[None, :, 1])
    ix2 = np.minimum(x[:, None, 2], y[None, :, 2])
    iy2 = np.minimum(x[:, None, 3], y[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_x = (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    area_y = (y[:, 2] - y[:, 0]) * (y[:, 3] - y[:, 1])
    return area_x, area_y, inter


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike, dtype: type[_F]) -> npt.NDArray[_F]:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), as an (N, M) array."""
    area_a, area_b, inter = areas_and_intersections(a, b, dtype)
    union = area_a[:, None] + area_b[None, :] - inter
    out: npt.NDArray[_F] = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(
        dtype, copy=False
    )
    return out
