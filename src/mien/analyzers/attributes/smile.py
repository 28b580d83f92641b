"""``smile``: a mouth shape — the mouth corners drawn up and out, often with the teeth showing.

This is a description of the shape of the mouth in the picture, nothing more: it says nothing
about what the person feels, and mien reports no emotion (docs/refusal.md).

Method
    A grey 48 x 48 crop of the lower face, aligned on the eyes (upright, 30 px between the eyes,
    the eyes 6 px above the crop's top edge), so it spans from below the nose to the chin and
    from cheek to cheek, goes through a small convolutional network (four 3x3 convolution
    blocks, about 80 k weights, ONNX run by onnxruntime on one thread) twice: as it is and
    mirrored. The mean of the two logits is calibrated (Platt scaling: a logistic function of
    it, folded into the head) into p(smile). Network and
    calibration are one learned head (:class:`mien.analyzers.attributes.heads.Head` with a
    :class:`~mien.analyzers.attributes.heads.ConvNet`, file ``attr_smile.npz``, model card
    ``attr_smile.toml``).

    Colour is not used (the training pictures are grey). The network is trained on SMILEsmileD
    (LFW faces, research use) with smiles and non-smiles weighted equally, and calibrated on a
    held-out part with the two classes again weighted equally: the confidence therefore assumes
    no prior preference for either answer. ``train/train_smile.py`` rebuilds the file.

Unknown (value ``None`` with a reason)
    * no face mesh (faces under 16 px): ``"no face mesh"``;
    * the eyes closer than :data:`MIN_EYE_PX` pixels: ``"face too small (...)"``;
    * ``|yaw|`` over :data:`MAX_YAW` degrees: ``"head turned too far (yaw ...°)"``;
    * the lips beyond the picture's edge: ``"lower face outside the picture"``;
    * the ``mask`` head calls a mask worn: ``"mouth hidden by a mask (...)"``, or below the
      mask's band ``"mouth may be hidden by a mask (mask uncertain: ...)"``
      (:func:`~mien.analyzers.attributes.mouth.mouth_hidden`).

Accuracy: measured across data sets (trained on SMILEsmileD, measured on GENKI-4K) by
``bench/attributes_face.py``; see docs/attributes.md (and docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mien.analyzers.attributes.base import FaceContext, column
from mien.analyzers.attributes.heads import Head
from mien.analyzers.attributes.mouth import aligned_gray, mouth_hidden, mouth_reason
from mien.types import AttributeColumn, ModelInfo

F32 = npt.NDArray[np.float32]

#: Model card of the head.
CARD = "attr_smile"
#: Aligned crop of the lower face: size (px), eye height and eye distance as crop fractions.
CROP_SIZE = 48
CROP_EYE_DISTANCE = 0.625
CROP_EYE_Y = -0.125

#: Faces whose eyes are closer than this (pixels, iris centres) are too small to judge.
MIN_EYE_PX = 10.0
#: Heads turned further than this (degrees of yaw) are not judged.
MAX_YAW = 45.0


def smile_crop(ctx: FaceContext, i: int) -> npt.NDArray[np.uint8]:
    """The grey aligned lower-face crop of face ``i`` (:data:`CROP_SIZE` square)."""
    lm = ctx.landmarks[i]
    return aligned_gray(ctx.rgb, lm[0], lm[1], CROP_SIZE, CROP_EYE_Y, CROP_EYE_DISTANCE)


def with_mirror(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``(2, S, S)``: the crop and its mirror image (the network sees both)."""
    return np.stack([crop, np.ascontiguousarray(crop[:, ::-1])])


def smile_features(head: Head, crops: npt.NDArray[np.uint8]) -> F32:
    """The head's input for crops ``(N, S, S)``: the mean of the network's logits on each crop
    and on its mirror image, ``(N, 1)``."""
    if not len(crops):
        return np.zeros((0, 1), np.float32)
    z = head.network()(np.concatenate([with_mirror(c) for c in crops]))
    return np.asarray(z.reshape(len(crops), 2).mean(axis=1, keepdims=True), np.float32)


class SmileAnalyzer:
    """``smile``: ``True`` when the mouth has the shape of a smile (see the module doc)."""

    name = "smile"

    def __init__(self) -> None:
        self.head = Head.load(CARD, network=True)
        self.hidden = mouth_hidden()
        self.models: tuple[ModelInfo, ...] = (
            *((self.head.info,) if self.head.info else ()),
            *self.hidden.models,
        )

    def judge(self, ctx: FaceContext, i: int) -> tuple[bool, float] | tuple[None, str]:
        reason = mouth_reason(ctx, i, self.hidden, MIN_EYE_PX, MAX_YAW)
        if reason is not None:
            return None, reason
        p = float(self.head.proba(smile_features(self.head, smile_crop(ctx, i)[None]))[0, 1])
        return (p > 0.5), max(p, 1.0 - p)

    def __call__(self, ctx: FaceContext) -> AttributeColumn:
        return column(len(ctx), lambda i: self.judge(ctx, i))
