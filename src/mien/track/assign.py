"""Matching tracks to detections: box overlap and centre distance, assigned greedily."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mien import geometry

FloatArray = npt.NDArray[np.float64]


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Intersection over union of every box of ``a`` (M, 4) with every box of ``b`` (N, 4)."""
    return geometry.iou_matrix(a, b, np.float64)


def affinity(
    predicted: npt.ArrayLike, detected: npt.ArrayLike, min_iou: float, max_distance: float
) -> FloatArray:
    """How well each predicted track box (M, 4) fits each detection (N, 4); 0 = no match.

    A pair may match when its IoU is at least ``min_iou``, or when the centres lie within
    ``max_distance`` times the mean box size of each other and the sizes differ by at most 2x
    (fast motion, where boxes of consecutive frames barely overlap). The affinity is the IoU
    plus a bonus for near centres, so overlap decides first.
    """
    p = np.asarray(predicted, np.float64).reshape(-1, 4)
    d = np.asarray(detected, np.float64).reshape(-1, 4)
    iou = iou_matrix(p, d)
    pc = (p[:, :2] + p[:, 2:]) / 2
    dc = (d[:, :2] + d[:, 2:]) / 2
    ps = np.sqrt(np.clip((p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]), 1e-6, None))
    ds = np.sqrt(np.clip((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]), 1e-6, None))
    size = (ps[:, None] + ds[None, :]) / 2
    dist = np.linalg.norm(pc[:, None, :] - dc[None, :, :], axis=2) / size
    ratio = np.maximum(ps[:, None] / ds[None, :], ds[None, :] / ps[:, None])
    near = np.clip(1.0 - dist / max(max_distance, 1e-9), 0.0, 1.0)
    ok = (iou >= min_iou) | ((dist <= max_distance) & (ratio <= 2.0))
    out: FloatArray = np.where(ok, iou + 0.5 * near + 1e-6, 0.0)
    return out


def greedy_assign(score: npt.ArrayLike) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` taken best score first, each row and column at most once; pairs
    with a score of 0 or less are never taken."""
    s = np.asarray(score, np.float64)
    if s.size == 0:
        return []
    rows, cols = np.nonzero(s > 0)
    order = np.argsort(-s[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs
