"""``smile``: a mouth shape — the mouth corners drawn up and out, often with the teeth showing.

This is a description of the shape of the mouth in the picture, nothing more: it says nothing
about what the person feels, and mien reports no emotion (docs/refusal.md).

Method
    Two kinds of features of each face, concatenated and given to a small learned head
    (:class:`mien.analyzers.attributes.heads.Head`, file ``attr_smile.npz``, model card
    ``attr_smile.toml``):

    * appearance: the HOG (8 px cells, 9 orientations) of a grey 48 x 48 crop of the lower face,
      aligned on the eyes (upright, 30 px between the eyes, the eyes 6 px above the crop's top
      edge), so it spans from below the nose to the chin and from cheek to cheek;
    * shape, from the face mesh: the 40 outer and inner lip points and 10 points of the cheeks,
      eyelids, nose and chin, in the face's own frame (origin at the mouth centre, x along the
      line between the eye corners, in units of the distance between the eyes), plus four
      ratios: mouth width / eye distance, the rise of the mouth corners above the lip centre
      line / mouth width, the inner-lip gap / inner width and the outer lip height / width.

    Colour is not used (the training pictures are grey). The head is a one-hidden-layer network
    trained on SMILEsmileD (LFW faces, research use) with smiles and non-smiles weighted
    equally, and calibrated (isotonic) on a held-out part with the two classes again weighted
    equally: the confidence therefore assumes no prior preference for either answer.
    ``train/train_smile.py`` rebuilds the file byte for byte.

Unknown (value ``None`` with a reason)
    * no face mesh (faces under 16 px): ``"no face mesh"``;
    * the eyes closer than :data:`MIN_EYE_PX` pixels: ``"face too small (...)"``;
    * ``|yaw|`` over :data:`MAX_YAW` degrees: ``"head turned too far (yaw ...°)"``.

Accuracy: measured across data sets (trained on SMILEsmileD, measured on GENKI-4K) by
``bench/attributes_face.py``: balanced accuracy 0.861, ROC AUC 0.954, ECE 0.059 on 2,204
GENKI-4K faces (it misses slight, closed-lip smiles more than it invents smiles); details in
docs/attributes.md (and docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mien.analyzers.attributes.base import FaceContext, column
from mien.analyzers.attributes.heads import Head, hog
from mien.analyzers.attributes.mouth import aligned_gray, inner_lip_ratio, unknown_reason
from mien.types import AttributeColumn, ModelInfo

F32 = npt.NDArray[np.float32]

#: Model card of the head.
CARD = "attr_smile"
#: Aligned crop of the lower face: size (px), eye height and eye distance as crop fractions.
CROP_SIZE = 48
CROP_EYE_DISTANCE = 0.625
CROP_EYE_Y = -0.125
HOG_CELL = 8

#: Outer lip contour, then inner lip contour (MediaPipe mesh indices), each a closed loop.
LIPS_OUTER: tuple[int, ...] = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375)
LIPS_OUTER += (291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER: tuple[int, ...] = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324)
LIPS_INNER += (308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
#: Nose tip, chin, cheeks (2 + 2), lower and upper eyelid centres of both eyes.
CONTEXT_POINTS: tuple[int, ...] = (1, 152, 205, 425, 50, 280, 145, 374, 159, 386)
EYE_CORNERS: tuple[int, int, int, int] = (33, 133, 362, 263)
#: Mirror twins (subject's right <-> left) among the points above; the rest lie on the midline.
_TWINS: dict[int, int] = {
    61: 291, 146: 375, 91: 321, 181: 405, 84: 314, 37: 267, 39: 269, 40: 270, 185: 409,
    78: 308, 95: 324, 88: 318, 178: 402, 87: 317, 82: 312, 81: 311, 80: 310, 191: 415,
    205: 425, 50: 280, 145: 374, 159: 386,
}  # fmt: skip
MIRROR: dict[int, int] = {**_TWINS, **{b: a for a, b in _TWINS.items()}}

#: Faces whose eyes are closer than this (pixels, iris centres) are too small to judge.
MIN_EYE_PX = 10.0
#: Heads turned further than this (degrees of yaw) are not judged.
MAX_YAW = 45.0


def face_frame(mesh: F32) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
    """(origin, 2x2 rotation, eye distance) of a face: x along the line from the subject's
    right eye corners' centre to the left one's, y down, origin at the mouth corners' centre."""
    m = np.asarray(mesh, np.float64)[:, :2]
    r = (m[EYE_CORNERS[0]] + m[EYE_CORNERS[1]]) / 2
    l_ = (m[EYE_CORNERS[2]] + m[EYE_CORNERS[3]]) / 2
    d = l_ - r
    dist = float(np.hypot(*d))
    c, s = d / max(dist, 1e-6)
    rot = np.array([[c, s], [-s, c]])
    origin = (m[61] + m[291]) / 2
    return origin, rot, max(dist, 1e-6)


def shape_features(mesh: F32, mirror: bool = False) -> F32:
    """Lip and mouth-region shape of one face's (478, 3) mesh (see module doc), 104 values.

    ``mirror``: the features of the face's mirror image (used to augment training data)."""
    origin, rot, dist = face_frame(mesh)
    m = np.asarray(mesh, np.float64)[:, :2]
    pts = ((m - origin) @ rot.T) / dist
    idx = list(LIPS_OUTER + LIPS_INNER + CONTEXT_POINTS)
    if mirror:
        # the frame is symmetric (origin on the midline, x along the eye line): the mirror
        # image swaps every point with its twin and negates x
        pts[:, 0] = -pts[:, 0]
        idx = [MIRROR.get(k, k) for k in idx]
    width = float(np.hypot(*(pts[291] - pts[61])))
    centre_y = (pts[13, 1] + pts[14, 1]) / 2
    lift = (centre_y - (pts[61, 1] + pts[291, 1]) / 2) / max(width, 1e-6)
    outer_h = float(np.hypot(*(pts[17] - pts[0]))) / max(width, 1e-6)
    ratios = np.array([width, lift, inner_lip_ratio(mesh), outer_h])
    return np.concatenate([pts[idx].reshape(-1), ratios]).astype(np.float32)


def appearance_features(ctx: FaceContext, i: int, mirror: bool = False) -> F32:
    """HOG of the grey aligned lower-face crop of face ``i`` (of its mirror image)."""
    lm = ctx.landmarks[i]
    crop = aligned_gray(ctx.rgb, lm[0], lm[1], CROP_SIZE, CROP_EYE_Y, CROP_EYE_DISTANCE)
    return hog(np.ascontiguousarray(crop[:, ::-1]) if mirror else crop, HOG_CELL)


def smile_features(ctx: FaceContext, i: int, mirror: bool = False) -> F32:
    """The head's input for face ``i`` (needs a mesh); ``mirror`` for its mirror image."""
    return np.concatenate(
        [appearance_features(ctx, i, mirror), shape_features(ctx.mesh[i], mirror)]
    )


class SmileAnalyzer:
    """``smile``: ``True`` when the mouth has the shape of a smile (see the module doc)."""

    name = "smile"

    def __init__(self) -> None:
        self.head = Head.load(CARD)
        self.models: tuple[ModelInfo, ...] = (self.head.info,) if self.head.info else ()

    def judge(self, ctx: FaceContext, i: int) -> tuple[bool, float] | tuple[None, str]:
        reason = unknown_reason(ctx, i, MIN_EYE_PX, MAX_YAW)
        if reason is not None:
            return None, reason
        p = float(self.head.proba(smile_features(ctx, i))[0, 1])
        return (p > 0.5), max(p, 1.0 - p)

    def __call__(self, ctx: FaceContext) -> AttributeColumn:
        return column(len(ctx), lambda i: self.judge(ctx, i))
