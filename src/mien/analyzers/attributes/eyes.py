"""``eyes_open``: whether each eye is open, per eye (the subject's left and right).

Value ``{"left": bool | None, "right": bool | None}``; an eye is ``None`` when it cannot be
judged (below). The confidence is that of the *less certain* of the judged eyes; when neither
eye can be judged the whole value is ``None`` with a reason.

Method
    One learned head (:class:`mien.analyzers.attributes.heads.Head`, file ``attr_eyes.npz``,
    model card ``attr_eyes.toml``) serves both eyes: the subject's left eye is mirrored so it
    looks like a right eye. Its input, per eye:

    * appearance: a grey 32 x 32 patch aligned on the eye's two corners (upright along the
      corner line, the corners 19.2 px apart at mid-height) goes through a small
      convolutional network (four 3x3 convolution blocks, about 79 k weights, stored inside
      the head as ONNX and run by onnxruntime on one thread), which gives one logit;
    * shape, from the face mesh: the eye aspect ratio (six contour points, as in Soukupová and
      Čech 2016), the seven gaps between facing upper and lower eyelid points over the eye
      width, the iris radius over the eye width and the iris centre's height above the line
      between the corners over the eye width.

    The network's logit and the 10 shape values go through a logistic regression with a Platt
    calibration folded into it. When both eyes are judged they share evidence: each eye's
    calibrated logit is 3/4 its own and 1/4 the other eye's (:data:`OTHER_EYE_WEIGHT`), since
    both eyes blink together far more often than one winks; a clear wink is still reported, a
    doubtful eye next to a plainly open one leans open.

    The network is trained on closed eyes from CEW (a split by source picture; the held-out
    part is never trained on) and open eyes from SMILEsmileD (LFW), Olivetti, the CMU faces
    without sunglasses and the faces >= 40 px wide of the CC0 face-mask photos' training split
    (eyes ASSUMED open, not labelled: large colour web-photo eyes like CEW's, so that size and
    sharpness stop telling the classes apart), with the two classes weighted equally and random
    shifts, turns, scale, contrast and lost detail (60% of the patches; no mirroring); the
    regression on the same eyes plus altered copies; the calibration on a separate part (both
    eyes of a face shared as above), again with equal weights: the confidence assumes no prior
    preference for open or closed. ``train/train_eyes.py`` rebuilds the file byte for byte.

Unknown (per eye, or the whole value when both eyes are unknown)
    * the eyes hidden by sunglasses: the ``sunglasses`` head (``glasses.Sunglasses``, run here
      whether or not ``sunglasses`` is asked for) calls the face's glasses dark,
      p(sunglasses) >= 0.5: ``"eyes hidden by sunglasses (...)"`` for the whole
      value (a dark lens shows no eyelid to judge); below the sunglasses band
      ``"eyes may be hidden by sunglasses (sunglasses uncertain: yes 0.72, below its band
      0.90)"`` (:class:`~mien.analyzers.attributes.base.HiddenBy`);
    * no face mesh (faces under 16 px): ``"no face mesh"``;
    * the eyes closer than :data:`MIN_EYE_PX` pixels: ``"face too small (...)"``;
    * ``|yaw|`` over :data:`MAX_YAW` degrees: ``"head turned too far (yaw ...°)"``;
    * one eye: the head turned away from that eye's side by more than :data:`MAX_AWAY_YAW`
      degrees (the subject's left eye when yaw > 40°, the right eye when yaw < -40°), the
      eye narrower than :data:`MIN_EYE_WIDTH_PX` pixels between its corners, or the eye and
      its lids beyond the picture's edge (``"left eye outside the picture"``,
      :func:`eye_outside`);
    * a "closed" answer the face's evidence does not back (:func:`doubt_reason`, the whole
      value): a smile shape (mouth corners >= :data:`SMILE_LIFT` eye distances above the inner
      lips' centre) while the eye network does not lean closed on some eye (logit >=
      :data:`SMILE_NET_LOGIT`) - ``"eyes narrowed by a smile: open or closed cannot be
      told"``; or every judged eye's lids wide apart in the mesh (EAR >=
      :data:`OPEN_SHAPE_EAR`) - ``"open or closed cannot be told: the lids' shape says open,
      the eye's picture closed"``. Chosen on CEW's calibration part; on CEW's held-out part
      they leave 5 more of 247 closed faces unknown (called closed 0.951 -> 0.931 of the found
      faces; 0.962 of the judged) and on the open-eyed HELEN faces cut false "closed" from 16
      to 7 of the judged (docs/attributes.md, "Smiling faces").

Accuracy, measured by ``bench/attributes_face.py`` (version 3 of the head, before the smile
and wide-lid doubts above): 0.963 of 244
judged held-out CEW faces (both eyes closed) called closed (target 0.95: met), 0.078 of 205
open-eyed HELEN faces called closed (target 0.05: missed), per eye ROC AUC 0.993 and ECE 0.007,
1.3 ms per face; of the faces >= 40 px on the CC0 face-mask test photos (eyes assumed open)
0.063 called closed. Sharing between the eyes costs winks: of synthetic winks (a closed and an
open calibration eye paired) 0.77 are reported as winks, 0.91 without sharing.
Details and caveats in docs/attributes.md (and docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mien.analyzers.attributes.base import (
    FaceContext,
    HiddenBy,
    Verdict,
    column,
    outside_reason,
)
from mien.analyzers.attributes.glasses import (
    Sunglasses,
    iris_crop,
    iris_measurements,
    iris_points,
)
from mien.analyzers.attributes.heads import Head, sigmoid
from mien.analyzers.attributes.mouth import aligned_gray, unknown_reason
from mien.errors import ModelIntegrityError
from mien.types import AttributeColumn, ModelInfo

F32 = npt.NDArray[np.float32]

#: Model card of the head.
CARD = "attr_eyes"
PATCH_SIZE = 32
PATCH_CORNER_DISTANCE = 0.6  # the eye corners' distance as a fraction of the patch


class EyePoints:
    """Mesh indices of one eye, listed from the outer corner to the inner one."""

    def __init__(
        self,
        outer: int,
        inner: int,
        ear: tuple[int, int, int, int, int, int],
        pairs: tuple[tuple[int, int], ...],
        iris: int,
    ) -> None:
        self.outer, self.inner, self.ear, self.pairs, self.iris = outer, inner, ear, pairs, iris


#: The subject's right eye: corners 33 / 133, EAR points as iBUG 36-41, upper/lower pairs.
RIGHT = EyePoints(
    33,
    133,
    (33, 160, 158, 133, 153, 144),
    ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155)),
    468,
)
#: The subject's left eye (the mirror image of :data:`RIGHT`): iBUG 45-42 order.
LEFT = EyePoints(
    263,
    362,
    (263, 387, 385, 362, 380, 373),
    ((466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382)),
    473,
)

#: Faces whose eyes are closer than this (pixels, iris centres) are too small to judge.
MIN_EYE_PX = 10.0
#: An eye narrower than this (pixels between its corners) is too small to judge.
MIN_EYE_WIDTH_PX = 5.0
#: Heads turned further than this (degrees of yaw) are not judged at all.
MAX_YAW = 70.0
#: An eye on the side the head is turned away from by more than this (degrees) is not judged.
MAX_AWAY_YAW = 40.0
#: Evidence shared between the two eyes of a face (both eyes blink together far more often
#: than one winks): each eye's calibrated logit counts this much of the other eye's.
OTHER_EYE_WEIGHT = 0.25


def eye_geometry(mesh: F32, eye: EyePoints) -> F32:
    """Shape features of one eye from the (478, 3) mesh (see module doc), 10 values."""
    m = np.asarray(mesh, np.float64)[:, :2]
    outer, inner = m[eye.outer], m[eye.inner]
    width = max(float(np.hypot(*(inner - outer))), 1e-6)
    p = m[list(eye.ear)]
    ear = (np.hypot(*(p[1] - p[5])) + np.hypot(*(p[2] - p[4]))) / (2 * np.hypot(*(p[0] - p[3])))
    gaps = [float(np.hypot(*(m[a] - m[b]))) / width for a, b in eye.pairs]
    centre = m[eye.iris]
    radius = float(np.mean([np.hypot(*(m[eye.iris + k] - centre)) for k in range(1, 5)]))
    axis = (inner - outer) / width
    normal = np.array([axis[1], -axis[0]])  # points up in the picture for an upright face
    if eye is LEFT:
        normal = -normal  # the left eye runs from right to left: flip to keep "up"
    height = float((centre - (outer + inner) / 2) @ normal) / width
    return np.array([ear, *gaps, radius / width, height], np.float32)


#: Mesh indices for the face-level smile shape (:func:`smile_shape`): the mouth corners
#: (subject's right, left) and the inner lips' centre (upper, lower).
MOUTH_CORNERS = (61, 291)
LIP_CENTRE = (13, 14)
#: "Eyes narrowed by a smile" (see :func:`doubt_reason`): a face whose mouth corners are lifted
#: at least this much above the inner lips' centre (:func:`smile_shape`'s first value, over
#: the distance between the eyes) ...
SMILE_LIFT = 0.04
#: ... and whose eye network, on at least one judged eye, does not lean closed (its logit,
#: before the shape values and the calibration, at least this): the eye's picture does not say
#: closed, the narrowed lids' shape does. Chosen on CEW's calibration part (docs/attributes.md).
SMILE_NET_LOGIT = 0.0
#: "The lids' shape says open": every judged eye's aspect ratio (six mesh points) at least this.
#: 1 of the 570 CEW training and calibration closed faces reaches it (docs/attributes.md).
OPEN_SHAPE_EAR = 0.30
#: "An iris shows": the contrast between each iris and the whites either side of it, over the
#: skin (:func:`mien.analyzers.attributes.glasses.iris_measurements`' ``iris_vs_sides``, mean of
#: the two eyes) at least this. 6 of the 578 CEW training and calibration closed faces with a
#: mesh reach it (its 99th percentile there is 0.213); a screwed-up open-eyed face that the
#: network calls closed shows its irises plainly (docs/attributes.md).
IRIS_SHOWS = 0.22


def smile_shape(mesh: F32) -> F32:
    """The smile's shape from the (478, 3) mesh, 3 values, all over the distance between the
    two eyes' centres (the midpoints of their corners) and measured along the eye line's
    upright normal: the mouth corners' lift above the inner lips' centre (a smile pulls the
    corners up), the corners' height above the eye line (negative; nearer zero when the cheeks
    rise) and the corners' distance apart (a smile widens the mouth). A smile narrows the eyes
    from below (the cheeks push the lower lids up), which the eyes head can take for closing
    lids. Only the lift is used (:data:`SMILE_LIFT`); the three values were tried as features
    of the head and did not help (docs/attributes.md)."""
    m = np.asarray(mesh, np.float64)[:, :2]
    right = (m[RIGHT.outer] + m[RIGHT.inner]) / 2
    left = (m[LEFT.outer] + m[LEFT.inner]) / 2
    distance = max(float(np.hypot(*(left - right))), 1e-6)
    axis = (left - right) / distance
    up = np.array([axis[1], -axis[0]])  # up in the picture for an upright face
    middle = (left + right) / 2

    def height(points: tuple[int, int]) -> float:
        return float(np.mean([(m[k] - middle) @ up for k in points])) / distance

    corners = height(MOUTH_CORNERS)
    width = float(np.hypot(*(m[MOUTH_CORNERS[1]] - m[MOUTH_CORNERS[0]]))) / distance
    return np.array([corners - height(LIP_CENTRE), corners, width], np.float32)


def eye_patch(ctx: FaceContext, i: int, eye: EyePoints) -> npt.NDArray[np.uint8]:
    """Grey square patch (:data:`PATCH_SIZE` px) of one eye, aligned on its corners; the left
    eye mirrored."""
    m = ctx.mesh[i]
    first, second = (m[eye.outer], m[eye.inner]) if eye is RIGHT else (m[eye.inner], m[eye.outer])
    patch = aligned_gray(ctx.rgb, first, second, PATCH_SIZE, 0.5, PATCH_CORNER_DISTANCE)
    return np.ascontiguousarray(patch[:, ::-1]) if eye is LEFT else patch


def eye_inputs(ctx: FaceContext, i: int, eye: EyePoints) -> tuple[npt.NDArray[np.uint8], F32]:
    """The head's two inputs for one eye of face ``i`` (needs a mesh): the aligned patch (for
    the network) and the 10 shape values."""
    return eye_patch(ctx, i, eye), eye_geometry(ctx.mesh[i], eye)


def share_between_eyes(
    logits: npt.ArrayLike, weight: float = OTHER_EYE_WEIGHT
) -> npt.NDArray[np.float64]:
    """The calibrated logits of the judged eyes of ONE face (one or two values) after sharing
    evidence: with two eyes, each becomes ``(1 - weight)`` x its own logit + ``weight`` x the
    other eye's (:data:`OTHER_EYE_WEIGHT`; other weights for studies); a single eye is left as
    it is."""
    z = np.asarray(logits, np.float64).reshape(-1)
    if len(z) != 2:
        return z
    w = weight
    out: npt.NDArray[np.float64] = (1.0 - w) * z + w * z[::-1]
    return out


def open_evidence(
    head: Head, patches: Sequence[npt.NDArray[np.uint8]], geometry: Sequence[F32]
) -> tuple[F32, F32]:
    """Calibrated p(open) of the judged eyes of ONE face (one or two), and the network's own
    logit for each: the head's network on the patches, its logit followed by the shape values
    as the head's features; the head's calibrated logits, shared between the two eyes
    (:func:`share_between_eyes`), through a sigmoid."""
    if len(patches) > 2:
        raise ValueError("open_probability takes the eyes of one face (one or two)")
    logit = head.network()(np.stack(patches))
    feats = np.concatenate([logit, np.stack(geometry)], axis=1)
    z = share_between_eyes(head.raw_scores(feats)[:, 0])
    p: F32 = sigmoid(z).astype(np.float32)
    return p, logit[:, 0].astype(np.float32)


def open_probability(
    head: Head, patches: Sequence[npt.NDArray[np.uint8]], geometry: Sequence[F32]
) -> F32:
    """Calibrated p(open) of the judged eyes of ONE face (:func:`open_evidence`)."""
    return open_evidence(head, patches, geometry)[0]


def doubt_reason(
    p_open: npt.ArrayLike,
    net_logit: npt.ArrayLike,
    geometry: Sequence[F32],
    mesh: F32,
    iris: float | None = None,
) -> str | None:
    """Why a face whose judged eyes (``p_open``, the network's ``net_logit`` and the shape
    values of each) the head calls closed - any of them - is left unknown instead, or None
    (the answer stands; always None when no eye is called closed):

    * a smile (:data:`SMILE_LIFT`) and an eye picture that does not lean closed
      (:data:`SMILE_NET_LOGIT`): ``"eyes narrowed by a smile: open or closed cannot be
      told"``. A smile's raised cheeks narrow the lids, and the head, trained on closed eyes
      from CEW and open ones from mostly unsmiling faces, reads the narrowed lids as closing;
    * every judged eye's lids wide apart in the mesh (:data:`OPEN_SHAPE_EAR`) while the eye's
      picture says closed (e.g. dark eye make-up): ``"open or closed cannot be told: the lids'
      shape says open, the eye's picture closed"``;
    * ``iris`` (the face's iris-versus-whites contrast, :data:`IRIS_SHOWS`; None: not measured)
      shows the irises between bright whites: ``"open or closed cannot be told: an iris shows
      between the lids, the picture closed"``.
    """
    p = np.asarray(p_open, np.float64).reshape(-1)
    if not np.any(p <= 0.5):
        return None
    if smile_shape(mesh)[0] >= SMILE_LIFT and float(np.max(net_logit)) >= SMILE_NET_LOGIT:
        return "eyes narrowed by a smile: open or closed cannot be told"
    if min(float(g[0]) for g in geometry) >= OPEN_SHAPE_EAR:
        return "open or closed cannot be told: the lids' shape says open, the eye's picture closed"
    if iris is not None and iris >= IRIS_SHOWS:
        return "open or closed cannot be told: an iris shows between the lids, the picture closed"
    return None


def iris_contrast(ctx: FaceContext, i: int) -> float:
    """How plainly face ``i``'s irises show between the whites of its eyes: the mean
    ``iris_vs_sides`` of :func:`mien.analyzers.attributes.glasses.iris_measurements` (0 when the
    lids hide the iris, or a dark lens both)."""
    return float(iris_measurements(iris_crop(ctx, i), iris_points(ctx, i))[0])


def load_head() -> Head:
    """The eyes head, checked to be of the form :func:`open_probability` needs: a network and
    its calibration folded into the last layer (no isotonic table, which sharing between the
    eyes would bypass)."""
    head = Head.load(CARD, network=True)
    if head.calib_x is not None or len(head.classes) != 2 or head.hidden_w is not None:
        raise ModelIntegrityError(
            f"{CARD}: expected a logistic head with its calibration in the last layer; "
            "the file is out of date (rebuild it with train/train_eyes.py)"
        )
    return head


def eye_width(mesh: F32, eye: EyePoints) -> float:
    return float(np.hypot(*(mesh[eye.inner, :2] - mesh[eye.outer, :2])))


def eye_outside(ctx: FaceContext, i: int, eye: EyePoints) -> str | None:
    """``"left eye outside the picture"`` (or right) when the eye - its contour, and the lids
    and skin 0.35 eye widths above and below its centre (most of what the patch shows) - reaches
    beyond the picture's edge; None otherwise. Run time only (training keeps those eyes)."""
    side = "left" if eye is LEFT else "right"
    m = np.asarray(ctx.mesh[i, :, :2], np.float64)
    axis = m[eye.inner] - m[eye.outer]
    normal = np.array([-axis[1], axis[0]]) * 0.35
    centre = (m[eye.inner] + m[eye.outer]) / 2
    points = np.vstack([m[list(eye.ear)], centre + normal, centre - normal])
    return outside_reason(ctx, i, points, f"{side} eye")


def eye_unknown(ctx: FaceContext, i: int, eye: EyePoints) -> str | None:
    """Why one eye of a judgeable face cannot be judged, or None."""
    yaw = float(ctx.head_pose[i, 0])
    away = yaw if eye is LEFT else -yaw
    side = "left" if eye is LEFT else "right"
    if math.isfinite(away) and away > MAX_AWAY_YAW:
        return f"head turned away from the {side} eye (yaw {yaw:.0f}°)"
    width = eye_width(ctx.mesh[i], eye)
    if width < MIN_EYE_WIDTH_PX:
        return f"{side} eye too small ({width:.0f} px wide; needs {MIN_EYE_WIDTH_PX:.0f})"
    return None


class EyesOpenAnalyzer:
    """``eyes_open``: ``{"left": bool | None, "right": bool | None}`` (see the module doc)."""

    name = "eyes_open"

    def __init__(self) -> None:
        self.head = load_head()
        #: the sunglasses head decides whether the eyes are hidden (its model is listed too)
        self.hidden = HiddenBy(
            Sunglasses(), True, "eyes hidden by sunglasses", "eyes may be hidden by sunglasses"
        )
        self.models: tuple[ModelInfo, ...] = (
            *((self.head.info,) if self.head.info else ()),
            *self.hidden.models,
        )

    def judge(self, ctx: FaceContext, i: int) -> Verdict:
        """``(value, confidence)``; ``(value, confidence, why)`` when one eye is null (the
        reason for that eye); ``(None, reason)`` when neither eye can be judged."""
        reason = unknown_reason(ctx, i, MIN_EYE_PX, MAX_YAW) or self.hidden.reason(ctx, i)
        if reason is not None:
            return None, reason
        value: dict[str, bool | None] = {"left": None, "right": None}
        confidences: list[float] = []
        reasons: list[str] = []
        patches: list[npt.NDArray[np.uint8]] = []
        geometry: list[F32] = []
        sides: list[str] = []
        for side, eye in (("left", LEFT), ("right", RIGHT)):
            why = eye_unknown(ctx, i, eye) or eye_outside(ctx, i, eye)
            if why is None:
                patch, geo = eye_inputs(ctx, i, eye)
                patches.append(patch)
                geometry.append(geo)
                sides.append(side)
            else:
                reasons.append(why)
        if not sides:
            return None, "; ".join(reasons)
        p_open, net_logit = open_evidence(self.head, patches, geometry)
        doubt = doubt_reason(p_open, net_logit, geometry, ctx.mesh[i], iris_contrast(ctx, i))
        if doubt is not None:
            return None, doubt
        for side, p in zip(sides, p_open, strict=True):
            value[side] = bool(p > 0.5)
            confidences.append(float(max(p, 1.0 - p)))
        if reasons:
            return value, min(confidences), reasons[0]
        return value, min(confidences)

    def __call__(self, ctx: FaceContext) -> AttributeColumn:
        return column(len(ctx), lambda i: self.judge(ctx, i))
