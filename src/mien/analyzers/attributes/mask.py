"""``mask``: a medical or cloth mask, or another cover of the lower face.

Values: ``"none"``, ``"worn"`` (nose and mouth covered) or ``"worn_incorrectly"`` (a mask on
the face that leaves the nose, or the nose and mouth, uncovered), with the calibrated
probability of the reported class as its confidence.

Method
    The face is aligned (eyes level, :data:`CROP`: a 32x32 crop, eyes 11.5 px apart at 40% of
    the height, forehead to chin in view) and described by :func:`mask_features`: the colour of
    the forehead and of the skin between the eyes, then for a 4x3 grid over the lower face (just
    below the eyes to the chin) each cell's colour against those two references, its colour
    spread and its edge energy against the forehead's, and the whole crop shrunk to 8x8. A mask
    rarely has the colour of the skin above it, and it is smoother than nostrils, lips and chin;
    a mask under the nose leaves the upper rows skin-coloured.

    A small colour convolutional network (:class:`~mien.analyzers.attributes.heads.ConvNet`,
    carried by the head) also reads the same aligned view at :data:`NET_CROP_SIZE` px in RGB and
    gives three logits. The head (:class:`Head`) puts the network's logits first, then the
    features above; its score for each class is half the network's logit plus half that of a
    one-hidden-layer network over the features, then softmax with a temperature. Everything is
    trained by ``train/train_mask.py`` on the CC0 Kaggle face-mask photos (plus GENKI-4K faces
    as extra faces without a mask); the mix and the temperature are set on the validation photos.

    Chosen on the validation photos (555 faces): against the features head alone, balanced
    accuracy over three classes 0.805 (was 0.790), covered vs none 0.947 (was 0.924), ECE 0.020
    (was 0.022). Measured once on the test photos, faces >= 20 px (bench/attributes_cover.py):
    0.865 over three classes, 0.930 covered vs none, ECE 0.015, about 1 ms per face; the
    details and the variants tried are in docs/attributes.md.

Unknown (value ``None`` with a reason)
    * the eyes closer than :data:`MIN_EYE_DISTANCE` px: ``"face too small (...)"``;
    * ``|yaw|`` over :data:`MAX_YAW` degrees: ``"head turned too far (yaw ...°)"``;
    * the nose or the mouth (from the detector's points) beyond the picture's edge:
      ``"lower face outside the picture"``.

    Faces too small for the mesh (under 16 px) are still judged when their eyes, from the
    detector's five points, are at least 4 px apart: the aligned crop needs only the two eyes,
    and on the face-mask photos the accuracy holds down to that size (it falls below it; see
    docs/attributes.md).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from mien.analyzers.attributes.base import (
    FaceContext,
    HeadAttribute,
    lower_face_points,
    outside_reason,
    size_or_pose_reason,
)

F32 = npt.NDArray[np.float32]

CLASSES: tuple[str, ...] = ("none", "worn", "worn_incorrectly")
#: The aligned crop: size in px, eye height and eye distance as fractions of the size.
CROP: tuple[int, float, float] = (32, 0.40, 0.36)
#: Side (px) of the colour crop the network reads: the same view as :data:`CROP`, larger.
NET_CROP_SIZE: int = 48
#: Smallest distance between the eye centres (px in the picture) for a face to be judged.
MIN_EYE_DISTANCE: float = 4.0
#: Largest |yaw| (degrees, from the mesh) for a face to be judged.
MAX_YAW: float = 65.0
#: A face crop whose colour (mean absolute difference of R, G, B from their mean, 0-255) is
#: below this is "without colour" (a grey picture): see :data:`GREY_MIN_CONFIDENCE`.
GREY_CHROMA: float = 2.0
#: Without colour the head loses its main cue (a mask's colour against the skin): on the
#: validation photos turned grey its accuracy falls from 0.94 to 0.77 and it calls 22 of 120 bare
#: faces covered. Its answers there are withheld below this confidence (chosen on those grey
#: validation photos: 0.98 of the answers given at >= 0.95 are right, 0.95 at >= 0.9;
#: docs/attributes.md).
GREY_MIN_CONFIDENCE: float = 0.95


def _grid() -> tuple[tuple[slice, slice], tuple[slice, slice], list[tuple[slice, slice]]]:
    size, eye_y, eye_distance = CROP
    u = eye_distance * size  # the eye distance in crop pixels
    ey, cx = eye_y * size, size / 2

    def rows(a: float, b: float) -> slice:
        return slice(round(ey + a * u), round(ey + b * u))

    def cols(a: float, b: float) -> slice:
        return slice(round(cx + a * u), round(cx + b * u))

    forehead = (rows(-0.75, -0.35), cols(-0.6, 0.6))
    glabella = (rows(-0.15, 0.2), cols(-0.18, 0.18))
    cells = []
    for r0, r1 in ((0.15, 0.45), (0.45, 0.75), (0.75, 1.05), (1.05, 1.45)):
        for c0, c1 in ((-0.8, -0.27), (-0.27, 0.27), (0.27, 0.8)):
            cells.append((rows(r0, r1), cols(c0, c1)))
    return forehead, glabella, cells


_FOREHEAD, _GLABELLA, _CELLS = _grid()


def mask_crop(ctx: FaceContext, i: int) -> npt.NDArray[np.uint8]:
    """The aligned 32x32 RGB crop of face ``i`` (:data:`CROP`)."""
    size, eye_y, eye_distance = CROP
    return ctx.crop(i, size, eye_y, eye_distance)


def net_crop(ctx: FaceContext, i: int) -> npt.NDArray[np.uint8]:
    """The aligned RGB crop of face ``i`` read by the network: :data:`CROP`'s view at
    :data:`NET_CROP_SIZE` px."""
    _, eye_y, eye_distance = CROP
    return ctx.crop(i, NET_CROP_SIZE, eye_y, eye_distance)


def mask_features(rgb: npt.NDArray[np.uint8]) -> F32:
    """Feature vector of an aligned 32x32 RGB face crop (CIELAB scaled to [0, 1]), 321 values:

    * the two references - the forehead above the brows and the skin between the eyes - and
      their difference (9);
    * for each of 12 cells (4 rows from just below the eyes to the chin, 3 columns): the mean
      colour minus each reference (6), the colour spread (3) and the log ratio of the cell's
      edge energy (Sobel) to the forehead's (1) - 120;
    * the crop shrunk to 8x8, in CIELAB (192).
    """
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    grey = lab[..., 0]
    edges = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)) + np.abs(
        cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    )
    r1 = lab[_FOREHEAD].reshape(-1, 3).mean(axis=0)
    r2 = lab[_GLABELLA].reshape(-1, 3).mean(axis=0)
    e1 = float(edges[_FOREHEAD].mean()) + 0.02
    out: list[float] = [*r1.tolist(), *r2.tolist(), *(r2 - r1).tolist()]
    for cell in _CELLS:
        px = lab[cell].reshape(-1, 3)
        m = px.mean(axis=0)
        out += (m - r1).tolist() + (m - r2).tolist() + px.std(axis=0).tolist()
        out.append(math.log((float(edges[cell].mean()) + 0.02) / e1))
    small = cv2.resize(rgb, (8, 8), interpolation=cv2.INTER_AREA)
    small_lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    return np.concatenate([np.asarray(out, np.float32), small_lab.reshape(-1)]).astype(np.float32)


def unjudgeable(ctx: FaceContext, i: int) -> str | None:
    """Why face ``i`` cannot be judged for a mask, or None when it can."""
    return size_or_pose_reason(ctx, i, MIN_EYE_DISTANCE, MAX_YAW)


def chroma(rgb: npt.NDArray[np.uint8]) -> float:
    """How coloured a crop is: the mean absolute difference of R, G and B from their mean
    (0 for a grey picture)."""
    x = np.asarray(rgb, np.float32)
    return float(np.abs(x - x.mean(axis=2, keepdims=True)).mean())


class MaskAnalyzer(HeadAttribute):
    """``mask``: ``"none"``, ``"worn"`` or ``"worn_incorrectly"`` (see the module doc)."""

    name = "mask"
    card = "attr_mask"
    network = True

    def unjudgeable(self, ctx: FaceContext, i: int) -> str | None:
        return unjudgeable(ctx, i)

    def outside(self, ctx: FaceContext, i: int) -> str | None:
        return outside_reason(ctx, i, lower_face_points(ctx, i), "lower face")

    def judge(self, ctx: FaceContext, i: int) -> tuple[Any, float] | tuple[None, str]:
        """As :meth:`HeadAttribute.judge`; on a face without colour (:data:`GREY_CHROMA`) an
        answer below :data:`GREY_MIN_CONFIDENCE` is withheld (``"uncertain (...)"``)."""
        key = (self.name, i)
        got = super().judge(ctx, i)
        if (
            got[0] is not None
            and float(got[1]) < GREY_MIN_CONFIDENCE
            and chroma(mask_crop(ctx, i)) < GREY_CHROMA
        ):
            got = (
                None,
                f"uncertain (no colour in the picture: confidence {float(got[1]):.2f}; answers "
                f"below {GREY_MIN_CONFIDENCE:.2f} are withheld there)",
            )
            ctx._verdicts[key] = got
        return got

    def features(self, ctx: FaceContext, i: int) -> F32:
        logits = ctx.network_outputs(i, self.head.network(), net_crop(ctx, i))
        return np.concatenate([logits, mask_features(mask_crop(ctx, i))]).astype(np.float32)
