"""Box utilities: IoU, containment and non-maximum suppression (pure NumPy)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mien import geometry


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), as an (N, M) array."""
    return geometry.iou_matrix(a, b, np.float32)


def containment(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Share of each box of ``a`` covered by each box of ``b`` (intersection / area of a)."""
    area_a, _, inter = geometry.areas_and_intersections(a, b, np.float32)
    out: npt.NDArray[np.float32] = (inter / np.maximum(area_a, 1e-9)[:, None]).astype(np.float32)
    return out


def nms(boxes: npt.ArrayLike, scores: npt.ArrayLike, iou_threshold: float) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression; returns the kept indices, highest score first."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious < iou_threshold]
    return np.asarray(keep, dtype=np.intp)
