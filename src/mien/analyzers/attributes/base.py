"""What every observable-attribute analyzer shares: the per-image face context, and the protocol.

An attribute analyzer gets a :class:`FaceContext` (the picture and everything already known of
its faces) and returns one :class:`mien.types.AttributeColumn` — a value and a calibrated
confidence per face, or ``None`` with a reason when the face cannot be judged (too small, too
turned, no mesh...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mien.analyzers.align import aligned_crop
from mien.analyzers.attributes.heads import ConvNet, Head
from mien.analyzers.quality import face_sharpness
from mien.models.registry import attribute_trust
from mien.types import AttributeColumn, ModelInfo

#: Faces whose ``quality.sharpness`` is below this are "too blurred" to judge: every attribute
#: answers ``None`` with that reason. Set from bench/blur_gate.py (results/blur_gate.md): on
#: labelled faces blurred step by step, below 0.2 smile, eyes_open and mouth_open are at or under
#: chance. Between 0.2 and 0.3 blurred faces lose ~0.1 of balanced accuracy, but the naturally
#: low-resolution faces there are judged as well as the rest: a gate at 0.3 made 18% of the
#: SMILEsmileD held-out faces and 7% of GENKI-4K unknown and left their accuracy unchanged
#: (0.913, 0.852; bench/attributes_face.py), so the gate stays at 0.2.
MIN_SHARPNESS = 0.2
#: How far (a fraction of the face's eye distance) a point of an estimated region an attribute
#: reads (lens areas, lids, lower lip from the detector's points) may lie outside the picture
#: before the attribute is unknown: the landmarks and the mesh are guessed beyond the border,
#: and an aligned crop there is filled with repeated edge pixels. Points measured themselves
#: (the lips for mouth_open) get no tolerance.
OUTSIDE_TOLERANCE = 0.1


@dataclass
class FaceContext:
    """One picture and its faces, with aligned crops computed once and shared between analyzers.

    ``mesh`` rows are NaN for faces that got no mesh (too small); ``head_pose`` rows likewise.
    """

    rgb: npt.NDArray[np.uint8]
    boxes: npt.NDArray[np.float32]
    landmarks: npt.NDArray[np.float32]
    mesh: npt.NDArray[np.float32]
    head_pose: npt.NDArray[np.float32]
    _crops: dict[tuple[int, int, float, float], npt.NDArray[np.uint8]] = field(
        default_factory=dict, repr=False
    )
    _sharpness: dict[int, float] = field(default_factory=dict, repr=False)
    _net_outputs: dict[tuple[int, str], npt.NDArray[np.float32]] = field(
        default_factory=dict, repr=False
    )
    _verdicts: dict[tuple[str, int], tuple[Any, float] | tuple[None, str]] = field(
        default_factory=dict, repr=False
    )

    def __len__(self) -> int:
        return len(self.boxes)

    def without_caches(self) -> FaceContext:
        """The same picture and faces with nothing computed for them yet (crops, sharpness,
        network outputs, verdicts): to time an attribute with all its own work."""
        return FaceContext(self.rgb, self.boxes, self.landmarks, self.mesh, self.head_pose)

    def has_mesh(self, i: int) -> bool:
        return bool(np.isfinite(self.mesh[i]).all())

    def face_size(self, i: int) -> float:
        b = self.boxes[i]
        return float(max(b[2] - b[0], b[3] - b[1]))

    def known_sharpness(self, values: npt.ArrayLike) -> None:
        """Give the faces' ``quality.sharpness`` already computed (one per face, in order), so
        :meth:`sharpness` does not compute it again."""
        self._sharpness.update(enumerate(float(v) for v in np.asarray(values).reshape(-1)))

    def sharpness(self, i: int) -> float:
        """``quality.sharpness`` of face ``i`` (cached; see mien.analyzers.quality)."""
        if i not in self._sharpness:
            self._sharpness[i] = face_sharpness(self.rgb, self.boxes[i])
        return self._sharpness[i]

    def network_outputs(
        self, i: int, net: ConvNet, crop: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.float32]:
        """``net``'s outputs on face ``i``'s ``crop`` (cached per network: heads that carry
        the same network, like eyeglasses and sunglasses, run it once per face)."""
        key = (i, net.digest)
        out = self._net_outputs.get(key)
        if out is None:
            out = net(crop[None])[0]
            self._net_outputs[key] = out
        return out

    def inter_eye(self, i: int) -> float:
        return float(np.hypot(*(self.landmarks[i, 1] - self.landmarks[i, 0])))

    def crop(
        self, i: int, size: int, eye_y: float = 0.40, eye_distance: float = 0.36
    ) -> npt.NDArray[np.uint8]:
        """Aligned RGB crop of face ``i`` (cached): eyes level at fixed places, see align.py."""
        key = (i, size, eye_y, eye_distance)
        out = self._crops.get(key)
        if out is None:
            lm = self.landmarks[i]
            out = aligned_crop(self.rgb, lm[0], lm[1], size, eye_y, eye_distance)
            self._crops[key] = out
        return out


class AttributeAnalyzer(Protocol):
    """Computes one attribute for every face of a :class:`FaceContext`."""

    name: str
    models: tuple[ModelInfo, ...]

    def __call__(self, ctx: FaceContext) -> AttributeColumn: ...


#: What judging one face gives: ``(value, confidence)``, ``(None, reason)``, or for a value
#: known only in part (eyes_open with one eye null) ``(value, confidence, why that part is not)``.
Verdict = tuple[Any, float] | tuple[None, str] | tuple[Any, float, str]


def column(n: int, judge: Callable[[int], Verdict]) -> AttributeColumn:
    """Build a column from ``judge(i)`` (a :data:`Verdict`)."""
    values: list[Any] = []
    conf = np.full(n, np.nan, np.float32)
    reasons: list[str | None] = []
    for i in range(n):
        verdict = judge(i)
        value, second = verdict[0], verdict[1]
        if value is None:
            values.append(None)
            reasons.append(str(second))
        else:
            values.append(value)
            conf[i] = float(second)
            reasons.append(str(verdict[2]) if len(verdict) > 2 else None)
    return AttributeColumn(values=tuple(values), confidence=conf, reasons=tuple(reasons))


def uncertain_reason(confidence: float, abstain_below: float) -> str:
    """The reason of a value withheld by an abstention band (stable text, docs/output.md)."""
    return (
        f"uncertain (confidence {confidence:.2f}; answers below {abstain_below:.2f} are withheld)"
    )


def withhold(col: AttributeColumn, abstain_below: float | None) -> AttributeColumn:
    """``col`` with every value whose confidence is below ``abstain_below`` (the attribute's
    abstention band, from its model card: ``abstain_below``) replaced by ``None``, with the
    reason :func:`uncertain_reason`. Values at or above the band, and values already ``None``,
    are kept as they are; ``None`` (no band) keeps the column unchanged. For ``eyes_open`` the
    confidence is that of the less certain judged eye, so the whole value is withheld."""
    if abstain_below is None:
        return col
    values = list(col.values)
    reasons = list(col.reasons)
    conf = np.array(col.confidence, np.float32, copy=True)
    changed = False
    for i, value in enumerate(values):
        c = float(conf[i])
        if value is not None and math.isfinite(c) and c < abstain_below:
            values[i], reasons[i], conf[i] = None, uncertain_reason(c, abstain_below), np.nan
            changed = True
    if not changed:
        return col
    return AttributeColumn(values=tuple(values), confidence=conf, reasons=tuple(reasons))


class Abstaining:
    """An attribute analyzer whose answers below its abstention band are withheld
    (:func:`withhold`): what :func:`mien.analyzers.attributes.create` returns. The analyzer it
    wraps stays reachable as ``inner`` (for the scripts that choose the bands)."""

    def __init__(self, inner: AttributeAnalyzer, abstain_below: float | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.models: tuple[ModelInfo, ...] = inner.models
        self.abstain_below = abstain_below

    def __call__(self, ctx: FaceContext) -> AttributeColumn:
        return withhold(self.inner(ctx), self.abstain_below)

    def __getattr__(self, key: str) -> Any:
        """Everything else (``head``, ``judge``...) is the wrapped analyzer's."""
        if key == "inner":  # not set yet (e.g. while unpickling)
            raise AttributeError(key)
        return getattr(self.inner, key)


def size_or_pose_reason(
    ctx: FaceContext, i: int, min_eye_px: float, max_yaw: float, *, need_mesh: bool = False
) -> str | None:
    """Why face ``i`` is too small, too blurred or too turned to judge (or has no mesh, when one
    is needed); None when it can be judged."""
    if need_mesh and not ctx.has_mesh(i):
        return "no face mesh"
    d = ctx.inter_eye(i)
    if not d >= min_eye_px:
        return f"face too small ({d:.0f} px between the eyes; needs {min_eye_px:.0f})"
    sharp = ctx.sharpness(i)
    if math.isfinite(sharp) and sharp < MIN_SHARPNESS:
        return f"face too blurred (sharpness {sharp:.2f}; needs {MIN_SHARPNESS})"
    yaw = float(ctx.head_pose[i, 0])
    if math.isfinite(yaw) and abs(yaw) > max_yaw:
        return f"head turned too far (yaw {yaw:.0f}°)"
    return None


def outside_reason(
    ctx: FaceContext,
    i: int,
    points: npt.ArrayLike,
    what: str,
    tolerance: float = OUTSIDE_TOLERANCE,
) -> str | None:
    """``"<what> outside the picture"`` when one of ``points`` (pixel ``(x, y)``: the region an
    attribute reads, e.g. mesh points of the mouth) lies outside the picture by more than
    ``tolerance`` x face ``i``'s eye distance; None otherwise (also when the points are
    unknown: the attribute's own checks decide then)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if not np.isfinite(pts).all():
        return None
    h, w = ctx.rgb.shape[:2]
    tol = tolerance * ctx.inter_eye(i)
    x, y = pts[:, 0], pts[:, 1]
    if (x < -tol).any() or (x > w + tol).any() or (y < -tol).any() or (y > h + tol).any():
        return f"{what} outside the picture"
    return None


def eye_region_points(ctx: FaceContext, i: int) -> npt.NDArray[np.float64]:
    """Corners of the lens areas around both eyes of face ``i`` (0.5 x 0.3 eye distances
    around each eye, along and across the line between the eyes), from the detector's eye
    points: what the eyewear attributes read."""
    right, left = (np.asarray(p, np.float64) for p in ctx.landmarks[i, :2])
    d = left - right
    along = d * 0.25
    across = np.array([-d[1], d[0]]) * 0.15
    return np.array(
        [c + sx * along + sy * across for c in (right, left) for sx in (-1, 1) for sy in (-1, 1)]
    )


def lower_face_points(ctx: FaceContext, i: int) -> npt.NDArray[np.float64]:
    """The nose tip, both mouth corners and a point below the mouth (0.3 eye distances: the
    lower lip), from the detector's points: the part of face ``i`` a mask covers that must be
    in view (the chin may be cut, as in tight face crops)."""
    lm = np.asarray(ctx.landmarks[i], np.float64)
    d = lm[1] - lm[0]
    down = np.array([-d[1], d[0]])  # perpendicular to the eye line, towards the chin
    below = (lm[3] + lm[4]) / 2 + 0.3 * down
    return np.vstack([lm[2:5], below[None]])


class HeadAttribute:
    """An attribute judged by one calibrated :class:`Head` on per-face features.

    Subclasses set ``name`` and ``card`` (the model card of the head) and define
    :meth:`unjudgeable` and :meth:`features`. Two classes: the value is ``True`` when the
    calibrated probability of the positive class is >= 0.5, and the confidence is the
    probability of the reported value; more classes: the most probable class and its probability.
    """

    name: str = ""
    card: str = ""
    #: the head must carry a network (checked once, at load)
    network: bool = False

    def __init__(self) -> None:
        self.head = Head.load(self.card, network=self.network)
        assert self.head.info is not None
        self.models: tuple[ModelInfo, ...] = (self.head.info,)

    def unjudgeable(self, ctx: FaceContext, i: int) -> str | None:
        raise NotImplementedError

    def outside(self, ctx: FaceContext, i: int) -> str | None:
        """Why face ``i`` cannot be judged because what the attribute reads lies outside the
        picture (:func:`outside_reason`), or None. Checked after :meth:`unjudgeable`, at run
        time only: the training scripts select their faces with ``unjudgeable`` alone."""
        return None

    def features(self, ctx: FaceContext, i: int) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    def verdict(self, proba: npt.NDArray[np.float32]) -> tuple[Any, float]:
        if len(self.head.classes) == 2:
            p1 = float(proba[1])
            return (True, p1) if p1 >= 0.5 else (False, 1.0 - p1)
        k = int(np.argmax(proba))
        return self.head.classes[k], float(proba[k])

    def judge(self, ctx: FaceContext, i: int) -> tuple[Any, float] | tuple[None, str]:
        """Face ``i``'s value and confidence, or ``None`` and why it cannot be judged. Kept in
        ``ctx``: the attribute's own column and the analyzers it hides parts for
        (:class:`HiddenBy`) share one computation per face."""
        key = (self.name, i)
        if key not in ctx._verdicts:
            reason = self.unjudgeable(ctx, i) or self.outside(ctx, i)
            ctx._verdicts[key] = (
                (None, reason)
                if reason is not None
                else self.verdict(self.head.proba(self.features(ctx, i)[None])[0])
            )
        return ctx._verdicts[key]

    def __call__(self, ctx: FaceContext) -> AttributeColumn:
        return column(len(ctx), lambda i: self.judge(ctx, i))


class HiddenBy:
    """A cover that hides what another attribute looks at: when ``cover`` judges a face to have
    the value ``value`` (sunglasses: ``True``; mask: ``"worn"``) with a confidence at or above
    the cover's own abstention band (its card's ``abstain_below``), the dependent attribute is
    unknown with the reason ``"<what> (<cover> confidence 0.97)"``.

    A cover answer below its band is withheld as uncertain in the cover's own column, and it
    does not claim the part is hidden either: the dependent attribute is unknown with the reason
    ``"<maybe> (<cover> uncertain: <value> 0.72, below its band 0.90)"``. It is not judged
    there, because its own evidence cannot tell a covered part from a bare one: on the face-mask
    training and validation photos, of 146 masked faces the mask head called worn below its
    band, mouth_open would have answered 61 and smile 27 (about a mouth under the mask), and
    eyes_open answered "open" behind 3 of 4 CMU validation sunglasses called below the band
    (docs/attributes.md, "Uncertain covers"). Faces the cover cannot judge at all are judged as
    usual."""

    def __init__(self, cover: HeadAttribute, value: Any, what: str, maybe: str) -> None:
        self.cover, self.value, self.what, self.maybe = cover, value, what, maybe
        self.band: float | None = attribute_trust(cover.name)[1]
        self.models: tuple[ModelInfo, ...] = cover.models

    def reason(self, ctx: FaceContext, i: int) -> str | None:
        got = self.cover.judge(ctx, i)
        if got[0] is None or got[0] != self.value:
            return None
        confidence = float(got[1])
        if self.band is not None and confidence < self.band:
            return (
                f"{self.maybe} ({self.cover.name} uncertain: {_word(self.value)} "
                f"{confidence:.2f}, below its band {self.band:.2f})"
            )
        return f"{self.what} ({self.cover.name} confidence {confidence:.2f})"


def _word(value: Any) -> str:
    """A cover's value as a word of a reason (``True`` -> ``"yes"``)."""
    return "yes" if value is True else str(value)
