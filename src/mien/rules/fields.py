"""The names a rule may use: every one is something mien computes, with its type and feature.

:data:`FIELDS` maps a dotted name (``face.head_pose.yaw``) to a :class:`FieldSpec`: its type
(``number``, ``bool`` or ``string``), whether it describes the image or one face, the features
that must be computed for it (``mien.features`` names) and how to read it from a
:class:`mien.types.Faces`. Nothing else can be named, so a rule cannot ask for anything mien
refuses to compute (docs/refusal.md); refused words are turned away before this lookup with the
same :class:`mien.errors.RefusedAttributeError` as everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mien.analyzers.attributes import available as available_attributes
from mien.analyzers.quality import QUALITY_NAMES
from mien.rules.values import Unknown, Value, number, unknown
from mien.types import HEAD_POSE_NAMES, LANDMARK_NAMES, Faces


@dataclass(frozen=True)
class Scene:
    """What rules are evaluated over: the faces of one image or video frame, and its size."""

    faces: Faces
    width: int
    height: int


Getter = Callable[[Scene, int], Value]


@dataclass(frozen=True)
class FieldSpec:
    path: str
    type: str  # "number" | "bool" | "string"
    scope: str  # "image" | "face"
    features: frozenset[str]
    get: Getter
    doc: str
    choices: tuple[str, ...] | None = None


#: Values of string-valued attributes (checked when a rule compares them with a literal).
ATTRIBUTE_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "mask": ("none", "worn", "worn_incorrectly"),
}

_NOT_COMPUTED = "{what} was not computed (the analysis did not include the '{feature}' feature)"


def _image_fields() -> list[FieldSpec]:
    det = frozenset({"detection"})
    return [
        FieldSpec(
            "faces",
            "number",
            "image",
            det,
            lambda s, i: float(len(s.faces)),
            "number of faces found in the image",
        ),
        FieldSpec(
            "image.width",
            "number",
            "image",
            det,
            lambda s, i: float(s.width),
            "image width in pixels (after EXIF orientation)",
        ),
        FieldSpec(
            "image.height",
            "number",
            "image",
            det,
            lambda s, i: float(s.height),
            "image height in pixels (after EXIF orientation)",
        ),
    ]


def _box_getter(k: str) -> Getter:
    def get(s: Scene, i: int) -> Value:
        x1, y1, x2, y2 = (float(v) for v in s.faces.boxes[i])
        return {
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
            "width": x2 - x1,
            "height": y2 - y1,
            "center_x": (x1 + x2) / 2,
            "center_y": (y1 + y2) / 2,
        }[k]

    return get


def _landmark_getter(j: int, axis: int) -> Getter:
    def get(s: Scene, i: int) -> Value:
        if s.faces.landmarks is None:
            return unknown(_NOT_COMPUTED.format(what="landmarks", feature="landmarks"))
        return number(s.faces.landmarks[i, j, axis], "landmark could not be located")

    return get


def _pose_getter(j: int) -> Getter:
    def get(s: Scene, i: int) -> Value:
        if s.faces.head_pose is None:
            return unknown(_NOT_COMPUTED.format(what="head pose", feature="head_pose"))
        return number(s.faces.head_pose[i, j], "no head pose (no face mesh: face under 16 px)")

    return get


def _quality_getter(name: str) -> Getter:
    def get(s: Scene, i: int) -> Value:
        q = s.faces.quality
        if q is None or name not in q:
            return unknown(_NOT_COMPUTED.format(what=f"quality.{name}", feature="quality"))
        why = "no landmarks" if name == "inter_eye_distance" else "face box under 2 px in the image"
        return number(q[name][i], f"quality.{name} could not be measured ({why})")

    return get


def _attr_raw(s: Scene, i: int, name: str) -> tuple[object, float] | Unknown:
    col = s.faces.attributes.get(name)
    if col is None:
        return unknown(_NOT_COMPUTED.format(what=name, feature=name))
    value = col.values[i]
    if value is None:
        why = col.reasons[i] or "no reason given"
        return Unknown((f"{name} could not be judged: {why}",), attribute=True)
    return value, float(col.confidence[i])


def _attr_value_getter(name: str, kind: str) -> Getter:
    def get(s: Scene, i: int) -> Value:
        raw = _attr_raw(s, i, name)
        if isinstance(raw, Unknown):
            return raw
        value = raw[0]
        if kind == "eyes":
            if not isinstance(value, dict):
                return unknown(f"{name}: unexpected value {value!r}")
            why = s.faces.attributes[name].reasons[i]
            left, right = _eye(value, "left", why), _eye(value, "right", why)
            if left is False or right is False:
                return False
            if isinstance(left, Unknown) or isinstance(right, Unknown):
                reasons: tuple[str, ...] = ()
                for e in (left, right):
                    if isinstance(e, Unknown):
                        reasons += e.reasons
                return Unknown(reasons, attribute=True)
            return True
        if kind == "string":
            return str(value)
        if not isinstance(value, bool):
            return unknown(f"{name}: unexpected value {value!r}")
        return value

    return get


def _eye(value: dict[str, object], side: str, why: str | None) -> bool | Unknown:
    """One eye of an ``eyes_open`` value; ``why``: the column's reason for the null eye."""
    v = value.get(side)
    if isinstance(v, bool):
        return v
    return Unknown(
        (f"eyes_open.{side} could not be judged ({why or 'no reason given'})",), attribute=True
    )


def _eye_getter(name: str, side: str) -> Getter:
    def get(s: Scene, i: int) -> Value:
        raw = _attr_raw(s, i, name)
        if isinstance(raw, Unknown):
            return raw
        if not isinstance(raw[0], dict):
            return unknown(f"{name}: unexpected value {raw[0]!r}")
        return _eye(raw[0], side, s.faces.attributes[name].reasons[i])

    return get


def _attr_confidence_getter(name: str, probability: bool) -> Getter:
    def get(s: Scene, i: int) -> Value:
        raw = _attr_raw(s, i, name)
        if isinstance(raw, Unknown):
            return raw
        value, conf = raw
        if not math.isfinite(conf):
            return unknown(f"{name} has no confidence")
        if probability:
            return conf if value is True else 1.0 - conf
        return conf

    return get


def _face_fields() -> list[FieldSpec]:
    out: list[FieldSpec] = []
    det = frozenset({"detection"})
    out.append(
        FieldSpec(
            "face.score",
            "number",
            "face",
            det,
            lambda s, i: float(s.faces.scores[i]),
            "detector confidence in [0, 1]",
        )
    )
    for k, doc in (
        ("x1", "left edge"),
        ("y1", "top edge"),
        ("x2", "right edge"),
        ("y2", "bottom edge"),
        ("width", "box width"),
        ("height", "box height"),
        ("center_x", "box centre x"),
        ("center_y", "box centre y"),
    ):
        out.append(
            FieldSpec(
                f"face.box.{k}", "number", "face", det, _box_getter(k), f"face box {doc}, pixels"
            )
        )
    lm = frozenset({"detection", "landmarks"})
    for j, name in enumerate(LANDMARK_NAMES):
        for axis, a in enumerate("xy"):
            out.append(
                FieldSpec(
                    f"face.landmarks.{name}.{a}",
                    "number",
                    "face",
                    lm,
                    _landmark_getter(j, axis),
                    f"{name} {a}, pixels",
                )
            )
    hp = frozenset({"detection", "head_pose"})
    for j, name in enumerate(HEAD_POSE_NAMES):
        out.append(
            FieldSpec(
                f"face.head_pose.{name}",
                "number",
                "face",
                hp,
                _pose_getter(j),
                f"head {name} in degrees (0 = facing the camera)",
            )
        )
    for name in QUALITY_NAMES:
        qfeats = {"detection", "quality"} | (
            {"landmarks"} if name == "inter_eye_distance" else set()
        )
        out.append(
            FieldSpec(
                f"face.quality.{name}",
                "number",
                "face",
                frozenset(qfeats),
                _quality_getter(name),
                f"quality measure {name} (docs/output.md)",
            )
        )
    for name in available_attributes():
        feats = frozenset({"detection", name})
        choices = ATTRIBUTE_CHOICES.get(name)
        kind = "eyes" if name == "eyes_open" else ("string" if choices else "bool")
        vtype = "string" if kind == "string" else "bool"
        vdoc = (
            "both eyes open (left and right)"
            if kind == "eyes"
            else f"one of {', '.join(choices)}"
            if choices
            else "true or false"
        )
        for path in (f"face.{name}", f"face.{name}.value"):
            out.append(
                FieldSpec(
                    path,
                    vtype,
                    "face",
                    feats,
                    _attr_value_getter(name, kind),
                    f"{name}: {vdoc}",
                    choices,
                )
            )
        out.append(
            FieldSpec(
                f"face.{name}.confidence",
                "number",
                "face",
                feats,
                _attr_confidence_getter(name, False),
                f"{name}: calibrated confidence of the reported value",
            )
        )
        if kind == "bool":
            out.append(
                FieldSpec(
                    f"face.{name}.probability",
                    "number",
                    "face",
                    feats,
                    _attr_confidence_getter(name, True),
                    f"{name}: calibrated probability that it is true",
                )
            )
        if kind == "eyes":
            for side in ("left", "right"):
                out.append(
                    FieldSpec(
                        f"face.{name}.{side}",
                        "bool",
                        "face",
                        feats,
                        _eye_getter(name, side),
                        f"the subject's {side} eye is open",
                    )
                )
    return out


#: Every name a rule may use, by dotted path.
FIELDS: Final[dict[str, FieldSpec]] = {f.path: f for f in _image_fields() + _face_fields()}

#: Dotted prefixes that are groups of fields (``face.head_pose``), for clearer errors.
GROUPS: Final[dict[str, tuple[str, ...]]] = {}
for _path in FIELDS:
    _parts = _path.split(".")
    for _k in range(1, len(_parts)):
        _prefix = ".".join(_parts[:_k])
        if _prefix not in FIELDS:
            _leaf = _parts[_k]
            GROUPS.setdefault(_prefix, ())
            if _leaf not in GROUPS[_prefix]:
                GROUPS[_prefix] = (*GROUPS[_prefix], _leaf)
