"""The result types of mien: one columnar, validated container for faces, and per-image results.

Conventions (they hold for every array and every JSON field mien produces):

* **Coordinates** are pixels on the image *after* its EXIF orientation is applied, with the
  origin at the top-left corner, x to the right and y down. Boxes are ``[x1, y1, x2, y2]``
  floats with ``x1 <= x2`` and ``y1 <= y2``.
* **Confidences and scores** are floats in ``[0, 1]``.
* **Left and right** are the *subject's* left and right: ``right_eye`` is the eye of the person's
  right side, which appears on the left of a photo of a person facing the camera.
* **Head pose** is ``yaw, pitch, roll`` in degrees, 0 for a face looking straight into the camera.
  Yaw is positive when the subject turns their head to their own left; pitch is positive when
  the subject looks up; roll is positive when the head tilts towards the subject's left shoulder
  (the face turns clockwise in the image).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: Names of the five landmark points, in the order of ``Faces.landmarks[:, i]``.
LANDMARK_NAMES: Final[tuple[str, ...]] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_right",
    "mouth_left",
)

#: Order of the columns of ``Faces.head_pose``.
HEAD_POSE_NAMES: Final[tuple[str, ...]] = ("yaw", "pitch", "roll")

#: Number of points of the dense mesh (468 face points + 5 per iris).
MESH_POINTS: Final[int] = 478


def _as_float_array(value: Any, shape_tail: tuple[int, ...], name: str, n: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float32)
    if n == 0 and arr.size == 0:
        return np.zeros((0, *shape_tail), dtype=np.float32)
    if arr.shape != (n, *shape_tail):
        raise ValueError(f"{name} must have shape {(n, *shape_tail)}, got {arr.shape}")
    return arr


def with_present(out: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """``out`` with each ``optional`` key whose value is not None, in the order given (the JSON
    leaves an unset optional field out rather than writing null)."""
    out.update((k, v) for k, v in optional.items() if v is not None)
    return out


@dataclass(frozen=True)
class AttributeColumn:
    """One observable attribute for every face of a :class:`Faces`.

    ``values[i]`` is the attribute's value for face ``i`` (``None`` when it could not be judged),
    ``confidence[i]`` its calibrated confidence in ``[0, 1]`` (NaN when unknown) and
    ``reasons[i]`` why it is unknown (``None`` when known) - or, for a value known only in part
    (``eyes_open`` with one eye ``None``), why that part is unknown.
    """

    values: tuple[Any, ...]
    confidence: FloatArray
    reasons: tuple[str | None, ...]

    def __post_init__(self) -> None:
        n = len(self.values)
        conf = np.asarray(self.confidence, dtype=np.float32)
        if conf.shape != (n,) or len(self.reasons) != n:
            raise ValueError("attribute columns must all have one entry per face")
        finite = conf[np.isfinite(conf)]
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise ValueError("attribute confidences must lie in [0, 1]")
        object.__setattr__(self, "confidence", conf)

    def take(self, index: npt.NDArray[np.intp]) -> AttributeColumn:
        return AttributeColumn(
            values=tuple(self.values[i] for i in index),
            confidence=self.confidence[index],
            reasons=tuple(self.reasons[i] for i in index),
        )


@dataclass(frozen=True)
class Faces:
    """The faces found in one image (or one video frame), as NumPy columns.

    Row ``i`` of every column describes the same face. Optional columns are ``None`` when the
    feature that fills them was not requested.

    * ``boxes``: ``(N, 4)`` float32 ``[x1, y1, x2, y2]`` pixels.
    * ``scores``: ``(N,)`` float32 detector confidence in ``[0, 1]``.
    * ``landmarks``: ``(N, 5, 2)`` float32 pixel points named by :data:`LANDMARK_NAMES`.
    * ``head_pose``: ``(N, 3)`` float32 degrees named by :data:`HEAD_POSE_NAMES`.
    * ``mesh``: ``(N, 478, 3)`` float32; x, y in pixels, z relative depth in pixels
      (smaller is nearer the camera), MediaPipe face-mesh topology with iris points 468-477.
    * ``quality``: name -> ``(N,)`` float32 column (see docs/output.md for each measure).
    * ``attributes``: name -> :class:`AttributeColumn`.
    * ``track_ids``: ``(N,)`` int64 track identifiers in video mode (not identities: a track id
      only links detections of one video, and is never stored across videos).
    """

    boxes: FloatArray
    scores: FloatArray
    landmarks: FloatArray | None = None
    head_pose: FloatArray | None = None
    mesh: FloatArray | None = None
    quality: Mapping[str, FloatArray] | None = None
    attributes: Mapping[str, AttributeColumn] = field(default_factory=dict)
    track_ids: IntArray | None = None

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        n = scores.shape[0]
        boxes = _as_float_array(self.boxes, (4,), "boxes", n)
        if n:
            if not np.all(np.isfinite(boxes)):
                raise ValueError("boxes must be finite")
            if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
                raise ValueError("boxes must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2")
            if scores.min() < 0.0 or scores.max() > 1.0:
                raise ValueError("scores must lie in [0, 1]")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        if self.landmarks is not None:
            lm = _as_float_array(self.landmarks, (len(LANDMARK_NAMES), 2), "landmarks", n)
            object.__setattr__(self, "landmarks", lm)
        if self.head_pose is not None:
            hp = _as_float_array(self.head_pose, (len(HEAD_POSE_NAMES),), "head_pose", n)
            object.__setattr__(self, "head_pose", hp)
        if self.mesh is not None:
            object.__setattr__(
                self, "mesh", _as_float_array(self.mesh, (MESH_POINTS, 3), "mesh", n)
            )
        if self.quality is not None:
            q = {k: _as_float_array(v, (), f"quality.{k}", n) for k, v in self.quality.items()}
            object.__setattr__(self, "quality", q)
        for name, col in self.attributes.items():
            if len(col.values) != n:
                raise ValueError(f"attribute {name} has {len(col.values)} rows for {n} faces")
        if self.track_ids is not None:
            tid = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
            if tid.shape != (n,):
                raise ValueError(f"track_ids must have shape {(n,)}, got {tid.shape}")
            object.__setattr__(self, "track_ids", tid)

    @classmethod
    def empty(cls) -> Faces:
        return cls(boxes=np.zeros((0, 4), np.float32), scores=np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.to_records())

    def __getitem__(self, index: int | slice | Sequence[int] | npt.NDArray[Any]) -> Faces:
        """Select faces by position, slice, index array or boolean mask, as a :class:`Faces`."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx).astype(np.intp)
        return Faces(
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            landmarks=None if self.landmarks is None else self.landmarks[idx],
            head_pose=None if self.head_pose is None else self.head_pose[idx],
            mesh=None if self.mesh is None else self.mesh[idx],
            quality=None if self.quality is None else {k: v[idx] for k, v in self.quality.items()},
            attributes={k: v.take(idx) for k, v in self.attributes.items()},
            track_ids=None if self.track_ids is None else self.track_ids[idx],
        )

    @property
    def widths(self) -> FloatArray:
        return self.boxes[:, 2] - self.boxes[:, 0]

    @property
    def heights(self) -> FloatArray:
        return self.boxes[:, 3] - self.boxes[:, 1]

    def to_records(self, *, include_mesh: bool = True, ndigits: int = 2) -> list[dict[str, Any]]:
        """One JSON-ready dict per face (the per-face object of docs/output.md)."""
        out: list[dict[str, Any]] = []
        for i in range(len(self)):
            rec: dict[str, Any] = {
                "box": [round(float(v), ndigits) for v in self.boxes[i]],
                "score": round(float(self.scores[i]), 4),
            }
            if self.track_ids is not None:
                rec["track_id"] = int(self.track_ids[i])
            if self.landmarks is not None:
                rec["landmarks"] = {
                    name: [
                        round(float(self.landmarks[i, j, 0]), ndigits),
                        round(float(self.landmarks[i, j, 1]), ndigits),
                    ]
                    for j, name in enumerate(LANDMARK_NAMES)
                }
            if self.head_pose is not None:
                rec["head_pose"] = {
                    name: _finite_or_none(self.head_pose[i, j], 1)
                    for j, name in enumerate(HEAD_POSE_NAMES)
                }
            if self.quality is not None:
                rec["quality"] = {k: _finite_or_none(v[i], 4) for k, v in self.quality.items()}
            rec["attributes"] = {
                name: _attribute_record(col, i) for name, col in self.attributes.items()
            }
            if include_mesh and self.mesh is not None and np.isfinite(self.mesh[i]).all():
                rec["mesh"] = [[round(float(c), 1) for c in p] for p in self.mesh[i]]
            out.append(rec)
        return out


def _finite_or_none(value: Any, ndigits: int) -> float | None:
    v = float(value)
    return round(v, ndigits) if np.isfinite(v) else None


def _attribute_record(col: AttributeColumn, i: int) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "value": col.values[i],
        "confidence": _finite_or_none(col.confidence[i], 4),
    }
    if col.reasons[i] is not None:
        rec["reason"] = col.reasons[i]
    return rec


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced a result: name, version and the sha256 of the file that was run."""

    name: str
    version: str
    sha256: str
    #: how far the attribute this model answers can be trusted (its model card's ``maturity``:
    #: ``"stable"`` or ``"experimental: <measured reason>"``); None for other models
    maturity: str | None = None
    #: the attribute's abstention band (model card ``abstain_below``): answers whose confidence
    #: is below it are withheld (value null, reason "uncertain ..."); None when it has none
    abstain_below: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return with_present(
            {"name": self.name, "version": self.version, "sha256": self.sha256},
            maturity=self.maturity,
            abstain_below=self.abstain_below,
        )


@dataclass(frozen=True)
class ErrorInfo:
    """Why an input could not be analysed: a stable ``code`` and a human ``message``."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class ImageResult:
    """The analysis of one image: its size after EXIF orientation, and its faces or an error."""

    source: str
    width: int
    height: int
    faces: Faces | None
    models: tuple[ModelInfo, ...] = ()
    error: ErrorInfo | None = None

    def __post_init__(self) -> None:
        if (self.faces is None) == (self.error is None):
            raise ValueError("an ImageResult has either faces or an error")

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, *, include_mesh: bool = True) -> dict[str, Any]:
        """The per-image JSON object of docs/output.md."""
        out: dict[str, Any] = {"source": self.source, "width": self.width, "height": self.height}
        if self.faces is not None:
            out["faces"] = self.faces.to_records(include_mesh=include_mesh)
        out["models"] = [m.to_dict() for m in self.models]
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out
