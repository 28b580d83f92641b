"""Face alignment: a similarity transform that puts the two eyes at fixed places of a crop.

Used by appearance-based analyzers so every face is seen upright, at one scale, whatever its
size and roll in the picture.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def alignment_matrix(
    right_eye: npt.ArrayLike,
    left_eye: npt.ArrayLike,
    size: int,
    eye_y: float = 0.40,
    eye_distance: float = 0.36,
) -> npt.NDArray[np.float64]:
    """2x3 matrix mapping picture pixels to a ``size`` x ``size`` aligned crop.

    The subject's right eye lands at ``((0.5 - eye_distance / 2) * size, eye_y * size)`` and the
    left eye at ``((0.5 + eye_distance / 2) * size, eye_y * size)``: the face upright, the eyes
    level, eye_distance * size pixels apart.
    """
    r = np.asarray(right_eye, np.float64)[:2]
    l_ = np.asarray(left_eye, np.float64)[:2]
    d = l_ - r
    dist = float(np.hypot(*d))
    if dist < 1e-6:
        raise ValueError("the two eye points coincide")
    scale = eye_distance * size / dist
    angle = np.arctan2(d[1], d[0])
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    m = np.array([[c, s, 0.0], [-s, c, 0.0]])
    mid = (r + l_) / 2
    m[:, 2] = np.array([0.5 * size, eye_y * size]) - m[:, :2] @ mid
    return m


def aligned_crop(
    rgb: npt.NDArray[np.uint8],
    right_eye: npt.ArrayLike,
    left_eye: npt.ArrayLike,
    size: int,
    eye_y: float = 0.40,
    eye_distance: float = 0.36,
) -> npt.NDArray[np.uint8]:
    """The aligned ``size`` x ``size`` RGB crop of a face (see :func:`alignment_matrix`)."""
    m = alignment_matrix(right_eye, left_eye, size, eye_y, eye_distance)
    out = cv2.warpAffine(
        rgb,
        m,
        (size, size),
        flags=cv2.INTER_AREA if m[0, 0] ** 2 + m[0, 1] ** 2 < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(out, dtype=np.uint8)
