"""``headwear``: a hat, cap, hood, scarf or other head covering, seen as an object on the head.

Method (transparent measurements + a small logistic head)
    The face is aligned in a 64x64 crop with room above the head: the eyes level at 60% of the
    height, U = 16 px apart. The skin reference is the patch between the eyes (the glabella),
    which a mask, a cap or a hood rarely covers. Six regions around the head are compared with
    it (CIELAB scaled to [0, 1]):

    ======== =====================================================
    forehead  just above the brows (0.5-0.95 U above the eyes)
    crown     the top of the head (1.2-1.9 U above the eyes)
    top       above the head (1.95-2.4 U above the eyes)
    sides     beside the temples, each side (0.95-1.4 U from the middle)
    brow      the brow band (0.25-0.5 U above the eyes)
    ======== =====================================================

    For each region: its mean colour minus the skin reference (3 values), its grey spread, the
    log ratio of its edge energy (Sobel) to the reference's, and its colour distance from the
    reference (a*, b* only); then the crown minus the forehead and the right side minus the left
    (42 values, :data:`FEATURE_NAMES`). A cap, hat or hood puts a region of uniform cloth over
    the crown and often over the forehead or the sides, unlike skin or hair. A logistic head
    (:class:`Head`, Platt-calibrated) trained by ``train/train_headwear.py`` weighs them.

    The only labelled headwear data is a small set labelled by eye for this purpose (637 faces
    >= 40 px from the Kaggle face-mask photos, 57 with headwear,
    ``train/labels/facemask_headwear_eyewear.csv``): the head is trained on the faces of the
    training and validation photos and measured on those of the test photos only. It is a
    modest, measurable method - see docs/attributes.md for its figures and limits.

Unknown (value ``None`` with a reason)
    * the eyes closer than :data:`MIN_EYE_DISTANCE` px: ``"face too small (...)"``;
    * ``|yaw|`` over :data:`MAX_YAW` degrees: ``"head turned too far (yaw ...°)"``;
    * the top of the head outside the picture: ``"top of the head outside the picture"``.

The value says only that something covers the head; it says nothing of why it is worn.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from mien.analyzers.align import alignment_matrix
from mien.analyzers.attributes.base import FaceContext, HeadAttribute, size_or_pose_reason

F32 = npt.NDArray[np.float32]

#: The aligned crop: size in px, eye height and eye distance as fractions of the size.
CROP: tuple[int, float, float] = (64, 0.60, 0.25)
#: Smallest distance between the eye centres (px in the picture) for a face to be judged (the
#: labelled faces it was measured on are >= 40 px wide, about 14 px between the eyes).
MIN_EYE_DISTANCE: float = 14.0
#: Largest |yaw| (degrees, from the mesh) for a face to be judged.
MAX_YAW: float = 50.0

_S, _EY, _U, _CX = 64, 0.60 * 64, 0.25 * 64, 32.0


def _rows(a: float, b: float) -> slice:
    return slice(max(0, round(_EY + a * _U)), round(_EY + b * _U))


def _cols(a: float, b: float) -> slice:
    return slice(max(0, round(_CX + a * _U)), min(_S, round(_CX + b * _U)))


_SKIN = (_rows(-0.15, 0.2), _cols(-0.2, 0.2))
REGIONS: dict[str, tuple[slice, slice]] = {
    "forehead": (_rows(-0.95, -0.5), _cols(-0.5, 0.5)),
    "crown": (_rows(-1.9, -1.2), _cols(-0.7, 0.7)),
    "top": (_rows(-2.4, -1.95), _cols(-0.7, 0.7)),
    "side_right": (_rows(-0.6, 0.6), _cols(-1.4, -0.95)),
    "side_left": (_rows(-0.6, 0.6), _cols(0.95, 1.4)),
    "brow": (_rows(-0.5, -0.25), _cols(-0.7, 0.7)),
}
#: Names of the 42 features, in order.
FEATURE_NAMES: tuple[str, ...] = (
    *(
        f"{r}_{m}"
        for r in REGIONS
        for m in ("dL", "da", "db", "spread", "edges", "chroma_distance")
    ),
    "crown_minus_forehead_dL",
    "crown_minus_forehead_da",
    "crown_minus_forehead_db",
    "right_minus_left_dL",
    "right_minus_left_da",
    "right_minus_left_db",
)


def headwear_crop(ctx: FaceContext, i: int) -> npt.NDArray[np.uint8]:
    """The aligned 64x64 RGB crop of face ``i`` with the head and above in view."""
    size, eye_y, eye_distance = CROP
    return ctx.crop(i, size, eye_y, eye_distance)


def headwear_features(rgb: npt.NDArray[np.uint8]) -> F32:
    """The 42 measurements of :data:`FEATURE_NAMES` on a 64x64 :func:`headwear_crop`."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    grey = lab[..., 0]
    edges = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    skin = lab[_SKIN].reshape(-1, 3).mean(axis=0)
    skin_edges = float(edges[_SKIN].mean()) + 0.02
    out: list[float] = []
    means: dict[str, npt.NDArray[np.float32]] = {}
    for name, region in REGIONS.items():
        px = lab[region].reshape(-1, 3)
        m = px.mean(axis=0)
        means[name] = m
        d = m - skin
        out += d.tolist()
        out.append(float(px[:, 0].std()))
        out.append(math.log((float(edges[region].mean()) + 0.02) / skin_edges))
        out.append(float(np.hypot(d[1], d[2])))
    out += (means["crown"] - means["forehead"]).tolist()
    out += (means["side_right"] - means["side_left"]).tolist()
    return np.asarray(out, np.float32)


def unjudgeable(ctx: FaceContext, i: int) -> str | None:
    """Why face ``i`` cannot be judged for headwear, or None when it can."""
    reason = size_or_pose_reason(ctx, i, MIN_EYE_DISTANCE, MAX_YAW)
    if reason is not None:
        return reason
    # Where the middle of the crown region lies in the picture.
    size, eye_y, eye_distance = CROP
    m = alignment_matrix(ctx.landmarks[i, 0], ctx.landmarks[i, 1], size, eye_y, eye_distance)
    inv = cv2.invertAffineTransform(m)
    crown = inv @ np.array([_CX, _EY - 1.55 * _U, 1.0])
    if crown[1] < 0:
        return "top of the head outside the picture"
    return None


class HeadwearAnalyzer(HeadAttribute):
    """``headwear``: ``True`` when a hat, cap, hood, scarf or other covering is on the head."""

    name = "headwear"
    card = "attr_headwear"

    def unjudgeable(self, ctx: FaceContext, i: int) -> str | None:
        return unjudgeable(ctx, i)

    def features(self, ctx: FaceContext, i: int) -> F32:
        return headwear_features(headwear_crop(ctx, i))
