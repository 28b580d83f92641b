"""Fuzz target: the rules loader (:func:`mien.rules.parse_rules`, :func:`mien.rules.load_rules`).

UTF-8 input is parsed as YAML rule text with ``parse_rules`` (what the HTTP service does with an
uploaded rule file); other bytes are written to a scratch ``.yaml`` file and loaded with
``load_rules(path)`` (what ``mien check --rules FILE`` does). A rule set that loads is then used
the way ``mien check`` uses it: ``required_features``, ``to_dict()``, and ``check()`` /
``evaluate_faces()`` over fixed results (three faces with known and unknown values, no face, an
unreadable image, a video frame with track ids), each result serialised with
``json.dumps(..., allow_nan=False)`` as the CLI writes it.

Expected: :class:`mien.errors.RuleError` or :class:`mien.errors.RefusedAttributeError` while
loading, and no exception at all after a rule set loaded. Anything else is a finding.

Seeds: the bundled profiles (src/mien/rules/profiles/*.yaml) and a few hand-written rule files
using every construct of the language (docs/rules.md).
"""

from __future__ import annotations

import functools
import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np

from mien.analyzers.attributes import available as available_attributes
from mien.analyzers.quality import QUALITY_NAMES
from mien.errors import RefusedAttributeError, RuleError
from mien.rules import FIELDS, FUNCTIONS, PROFILES, RuleSet, load_rules, parse_rules
from mien.types import AttributeColumn, ErrorInfo, Faces, ImageResult

MAX_LEN: Final = 16 * 1024
PER_INPUT_SECONDS: Final = 10.0

_EXTRA_SEEDS: Final = (
    """\
name: every-construct
description: "operators, functions, placeholders"
version: 1
rules:
  - id: one-face
    require: faces == 1
    message: "expected one face, found {faces}"
  - id: frontal
    per_face: true
    require: abs(face.head_pose.yaw) <= 10 and abs(face.head_pose.pitch) < 15
    when_unknown: pass
    severity: warning
    message: "yaw {face.head_pose.yaw}, pitch {face.head_pose.pitch} {{literal}}"
  - id: big-enough
    flag_if: any(face.box.width / image.width < 0.1) or count(face.sunglasses) > 0
    severity: info
  - id: centred
    per_face: true
    flag_if: not (face.box.center_x > image.width * 0.25 and -face.box.y1 <= 0)
    when_unknown: flag
  - id: sharp
    require: min(face.quality.sharpness) >= 0.4 or max(face.quality.exposure) != 0.5
  - id: mask
    per_face: true
    require: face.mask == "none" and face.eyes_open.left and face.eyes_open.right
    message: "mask {face.mask} ({face.mask.confidence})"
""",
    """\
rules:
  - {id: a, require: "faces >= 0 and image.height > 0"}
  - {id: b, flag_if: 'all(face.score > 0.5) and faces - 2 * 1 == 1', per_face: false}
  - id: c
    per_face: true
    require: >-
      face.landmarks.left_eye.x < face.landmarks.right_eye.x
      or face.score >= 1e-3
""",
)


@functools.cache
def _seeds() -> tuple[bytes, ...]:
    texts = [
        resources.files("mien.rules").joinpath("profiles", f"{n}.yaml").read_text("utf-8")
        for n in PROFILES
    ]
    return tuple(t.encode("utf-8") for t in (*texts, *_EXTRA_SEEDS))


def seeds() -> list[bytes]:
    """The bundled profiles and two rule files using every construct of the language."""
    return list(_seeds())


def _dictionary() -> tuple[bytes, ...]:
    words = [*FIELDS, *FUNCTIONS, "and", "or", "not", "true", "false", "null"]
    words += ["rules:", "- id:", "per_face:", "require:", "flag_if:", "when_unknown:"]
    words += ["severity:", "message:", "name:", "version:", "description:", "{", "}", "{{"]
    words += ["==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", '"']
    words += ["!!python/object", "&a", "*a", "? ", "---", "...", "|-", ">-", "\t", "\r\n"]
    return tuple(w.encode("utf-8") for w in words)


DICTIONARY: Final = _dictionary()


def _column(name: str, n: int) -> AttributeColumn:
    """An attribute column for ``n`` faces: face 0 known, face 1 known in part, the rest unknown."""
    if name == "eyes_open":
        values: list[Any] = [{"left": True, "right": True}, {"left": None, "right": False}]
    elif name == "mask":
        values = ["none", "worn"]
    else:
        values = [False, True]
    values = (values + [None] * n)[:n]
    conf = [0.9, 0.6, *([float("nan")] * n)][:n]
    reasons = [None, "left eye too small", *(["face too small"] * n)][:n]
    return AttributeColumn(values=tuple(values), confidence=np.array(conf), reasons=tuple(reasons))


def _faces(n: int, *, track_ids: bool = False) -> Faces:
    boxes = np.array([[100, 50, 300, 300], [400, 60, 480, 160], [10, 10, 18, 20]], np.float32)[:n]
    pose = np.array([[2, -3, 1], [35, 5, -4], [np.nan] * 3], np.float32)[:n]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    offsets = np.array([[-20, -20], [20, -20], [0, 0], [-15, 20], [15, 20]], np.float32)
    landmarks = centre[:, None, :] + offsets[None] * (np.arange(n) < 2)[:, None, None]
    quality = {
        q: np.array([0.8, 0.3, np.nan], np.float32)[:n]
        if q != "inter_eye_distance"
        else np.array([40.0, 12.0, np.nan], np.float32)[:n]
        for q in QUALITY_NAMES
    }
    return Faces(
        boxes=boxes,
        scores=np.array([0.99, 0.9, 0.6], np.float32)[:n],
        landmarks=landmarks.astype(np.float32),
        head_pose=pose,
        quality=quality,
        attributes={a: _column(a, n) for a in available_attributes()},
        track_ids=np.arange(7, 7 + n, dtype=np.int64) if track_ids else None,
    )


@functools.cache
def _results() -> tuple[ImageResult, ...]:
    return (
        ImageResult(source="three.jpg", width=640, height=480, faces=_faces(3)),
        ImageResult(source="none.jpg", width=1, height=1, faces=_faces(0)),
        ImageResult(
            source="bad.jpg",
            width=0,
            height=0,
            faces=None,
            error=ErrorInfo("InvalidImage", "bad.jpg: not an image"),
        ),
    )


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="mien-fuzz-rules-")) / "rules.yaml"


def _load(data: bytes) -> RuleSet:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        path = _scratch()
        path.write_bytes(data)
        return load_rules(path)
    return parse_rules(text, origin="<fuzz>")


def fuzz_one(data: bytes) -> bool:
    """Load ``data`` as rules and, when they load, evaluate and serialise them as ``mien check``
    does: True when they loaded, False on a RuleError/RefusedAttributeError."""
    try:
        ruleset = _load(data)
    except (RuleError, RefusedAttributeError):
        return False
    features = ruleset.required_features
    if "detection" not in features:
        raise AssertionError(f"required_features {features} lack detection")
    json.dumps(ruleset.to_dict(), allow_nan=False)
    for result in _results():
        json.dumps(ruleset.check(result).to_dict(), allow_nan=False)
    flags = ruleset.evaluate_faces(_faces(3, track_ids=True), 64, 48, frame=3, timestamp_ms=120.0)
    json.dumps([f.to_dict() for f in flags], allow_nan=False)
    return True
