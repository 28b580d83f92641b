"""``mouth_open``: whether the lips are apart, measured on the face mesh (no learned model).

Method
    The inner-lip gap ratio ``r`` is the mean distance between three pairs of facing inner-lip
    points of the mesh (centre 13-14 and its two neighbours 82-87 and 312-317) divided by the
    inner mouth width (inner corners 78-308). Distances are taken in 3-D (x, y and the mesh's
    relative depth z, all in pixels), so a turned head does not narrow the mouth and inflate
    ``r``. This is the same quantity as the ``mouth_inner_ratio`` that
    ``../shared/data/helen_afw_300w`` derives from human 68-point landmarks (inner-lip points
    61-63 against 67-65, over 60-64).

    The mouth is called open when ``r`` > :data:`OPEN_RATIO` = 0.10: the lips are apart by more
    than a tenth of the mouth's width, a gap that is plain to see (barely parted lips, below
    that, are called closed). The confidence of the value is ``p`` or ``1 - p`` with
    ``p = 1 / (1 + exp(-(r - OPEN_RATIO) / RATIO_SCALE))``: a logistic whose two parameters
    are fixed without any labelled mouth data — the threshold by the definition above, the
    scale by the measured repeatability of ``r`` (see :data:`RATIO_SCALE`).

Unknown (value ``None`` with a reason)
    * no face mesh (faces under 16 px): ``"no face mesh"``;
    * the eyes closer than :data:`MIN_EYE_PX` pixels: ``"face too small (...)"``;
    * ``|yaw|`` over :data:`MAX_YAW` degrees: ``"head turned too far (yaw ...°)"``;
    * the lips beyond the picture's edge: ``"lower face outside the picture"``
      (:func:`mouth_outside`);
    * the ``mask`` head calls a mask worn: ``"mouth hidden by a mask (...)"`` at or above the
      mask's band, ``"mouth may be hidden by a mask (mask uncertain: ...)"`` below it
      (:func:`mouth_hidden`; the mesh's lip points under a mask are guesses).

No labelled mouth-open data set exists in ``../shared/data``; accuracy and calibration are
measured against the HELEN human-landmark ratio (evaluation only, never used to fix anything
here) by ``bench/attributes_face.py``: accuracy 0.914, ECE 0.059 on 233 HELEN faces; the
figures and how the truth was derived are in docs/attributes.md (and docs/benchmarks.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from mien.analyzers.align import alignment_matrix
from mien.analyzers.attributes.base import (
    FaceContext,
    HiddenBy,
    column,
    outside_reason,
    size_or_pose_reason,
)
from mien.analyzers.attributes.mask import MaskAnalyzer
from mien.types import AttributeColumn, ModelInfo

F32 = npt.NDArray[np.float32]

#: Facing inner-lip point pairs (upper, lower): centre and its two neighbours.
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((82, 87), (13, 14), (312, 317))
#: Inner mouth corners (subject's right, left).
INNER_CORNERS: tuple[int, int] = (78, 308)

#: Lips are "apart" above this inner-gap / inner-width ratio (a definition, see module doc).
OPEN_RATIO = 0.10
#: Logistic scale of the confidence: the standard deviation of ``r`` between slightly shifted,
#: scaled and mirrored copies of the same face (0.0197 measured, pooled over 300 held-out
#: SMILEsmileD faces; ``train/train_smile.py`` prints it), times sqrt(3)/pi so that the logistic
#: has the same spread as a normal measurement error of that size.
RATIO_SCALE = 0.020 * math.sqrt(3.0) / math.pi
#: Faces whose eyes are closer than this (pixels, iris centres) are too small to judge.
MIN_EYE_PX = 10.0
#: Heads turned further than this (degrees of yaw) are not judged.
MAX_YAW = 60.0


def inner_lip_ratio(mesh: F32) -> float:
    """Mean inner-lip gap / inner mouth width of one face's (478, 3) mesh, 3-D distances."""
    m = np.asarray(mesh, np.float64)
    gap = np.mean([np.linalg.norm(m[a] - m[b]) for a, b in INNER_LIP_PAIRS])
    width = float(np.linalg.norm(m[INNER_CORNERS[0]] - m[INNER_CORNERS[1]]))
    return float(gap / max(width, 1e-6))


def open_probability(ratio: float) -> float:
    """Probability that the lips are apart, given the measured ratio (see module doc)."""
    z = (ratio - OPEN_RATIO) / RATIO_SCALE
    return float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))


#: Mesh points of the lips (outer corners, top of the upper lip, bottom of the lower lip, the
#: inner-lip points the gap is measured on): what smile and mouth_open read. The chin is not
#: required: tight face crops (SMILEsmileD, which trained the smile head) often cut it.
LIP_POINTS: tuple[int, ...] = (
    61,
    291,
    0,
    17,
    *INNER_CORNERS,
    *(p for pair in INNER_LIP_PAIRS for p in pair),
)


def mouth_outside(ctx: FaceContext, i: int) -> str | None:
    """``"lower face outside the picture"`` when the lips of face ``i`` (its mesh) reach beyond
    the picture's edge at all (no tolerance: they are what is measured; see
    :func:`mien.analyzers.attributes.base.outside_reason`); None otherwise."""
    return outside_reason(ctx, i, ctx.mesh[i, list(LIP_POINTS), :2], "lower face", tolerance=0.0)


def mouth_hidden() -> HiddenBy:
    """The mouth is hidden when the ``mask`` head calls a mask worn (over nose and mouth); a
    mask "worn incorrectly" may leave the mouth in view, so the mouth is judged then."""
    return HiddenBy(
        MaskAnalyzer(), "worn", "mouth hidden by a mask", "mouth may be hidden by a mask"
    )


def unknown_reason(ctx: FaceContext, i: int, min_eye_px: float, max_yaw: float) -> str | None:
    """Why face ``i`` cannot be judged from its mesh, or None when it can (shared by the
    mouth-shape attributes)."""
    return size_or_pose_reason(ctx, i, min_eye_px, max_yaw, need_mesh=True)


def mouth_reason(
    ctx: FaceContext, i: int, hidden: HiddenBy, min_eye_px: float, max_yaw: float
) -> str | None:
    """Why the mouth of face ``i`` cannot be judged (too small or turned, no mesh, lips outside
    the picture, hidden by a mask), or None when it can: the gate of every mouth-shape
    attribute (smile, mouth_open), in this order."""
    return (
        unknown_reason(ctx, i, min_eye_px, max_yaw)
        or mouth_outside(ctx, i)
        or hidden.reason(ctx, i)
    )


def aligned_gray(
    rgb: npt.NDArray[np.uint8],
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    size: int,
    y: float,
    distance: float,
) -> npt.NDArray[np.uint8]:
    """Grey ``size`` x ``size`` crop with ``first`` and ``second`` level at height ``y`` and
    ``distance`` apart (fractions of ``size``), as :func:`mien.analyzers.align.alignment_matrix`.

    Only the region of the picture the crop covers is read; when the crop shrinks it, that
    region is first reduced by area averaging, so a large face gives the same smooth crop as a
    small one (no aliasing). Shared by the smile and eyes analyzers.
    """
    m = alignment_matrix(first, second, size, y, distance)
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    pts = corners @ inv.T
    h, w = rgb.shape[:2]
    x0 = min(max(0, math.floor(pts[:, 0].min()) - 2), w - 1)
    y0 = min(max(0, math.floor(pts[:, 1].min()) - 2), h - 1)
    x1 = max(min(w, math.ceil(pts[:, 0].max()) + 2), x0 + 1)
    y1 = max(min(h, math.ceil(pts[:, 1].max()) + 2), y0 + 1)
    roi: npt.NDArray[np.uint8] = rgb[y0:y1, x0:x1]
    # region -> picture: p = D q + o, with D the reduction's inverse and o the region's corner
    d = np.eye(2)
    scale = math.hypot(m[0, 0], m[0, 1])
    if scale < 0.8:
        sw, sh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        roi = np.asarray(cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA), np.uint8)
        d = np.diag([(x1 - x0) / sw, (y1 - y0) / sh])
    a = m[:, :2] @ d
    t = m[:, :2] @ np.array([x0, y0], np.float64) + m[:, 2]
    if roi.ndim == 3:
        roi = np.asarray(cv2.cvtColor(np.ascontiguousarray(roi), cv2.COLOR_RGB2GRAY), np.uint8)
    out = cv2.warpAffine(
        np.ascontiguousarray(roi),
        np.hstack([a, t[:, None]]),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(out, np.uint8)


class MouthOpenAnalyzer:
    """``mouth_open``: ``True`` when the lips are apart (see the module doc)."""

    name = "mouth_open"

    def __init__(self) -> None:
        self.hidden = mouth_hidden()
        #: no model of its own; the mask head decides whether the mouth is hidden
        self.models: tuple[ModelInfo, ...] = self.hidden.models

    def judge(self, ctx: FaceContext, i: int) -> tuple[bool, float] | tuple[None, str]:
        reason = mouth_reason(ctx, i, self.hidden, MIN_EYE_PX, MAX_YAW)
        if reason is not None:
            return None, reason
        p = open_probability(inner_lip_ratio(ctx.mesh[i]))
        return (p > 0.5), max(p, 1.0 - p)

    def __call__(self, ctx: FaceContext) -> AttributeColumn:
        return column(len(ctx), lambda i: self.judge(ctx, i))
