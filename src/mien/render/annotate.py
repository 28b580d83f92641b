"""Draw what mien found on a picture, so a person can check it.

Boxes with their score, the 5 named landmarks (subject's right side in orange, left side in
cyan), the head-pose axes from the nose tip and a label line (score, yaw/pitch/roll,
sharpness, and the attributes that were computed and are present). Nothing is drawn that mien
did not compute. An attribute whose model card calls it experimental (``maturity``, see
``mien models``) is drawn with a trailing ``?`` (``sunglasses?``, ``closed:left?``).
"""

from __future__ import annotations

import math
from functools import cache

import cv2
import numpy as np
import numpy.typing as npt

from mien.types import Faces

_BOX = (60, 220, 60)
_RIGHT = (255, 150, 30)  # subject's right side (RGB)
_LEFT = (40, 210, 255)
_NOSE = (255, 255, 255)
_AXES = ((230, 40, 40), (40, 200, 40), (40, 90, 255))


def _text_width(text: str, scale: float, thick: int) -> int:
    return int(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0])


def label_lines(words: list[str], width: int, scale: float) -> list[str]:
    """``words`` wrapped into lines no wider than ``width`` pixels (a word wider than that
    alone keeps its own line)."""
    thick = max(1, round(scale * 2))
    lines: list[str] = []
    for word in words:
        if lines and _text_width(f"{lines[-1]} {word}", scale, thick) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _label(img: npt.NDArray[np.uint8], words: list[str], x: int, y: int, scale: float) -> None:
    """The words on black, wrapped to the picture's width, the last line ending at ``y`` (or
    at the top of the picture), shifted left where they would run off the right edge."""
    thick = max(1, round(scale * 2))
    width = img.shape[1]
    lines = label_lines(words, width - 2, scale)
    (_, th), base = cv2.getTextSize("Ay", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    step = th + base
    y = max(step * len(lines), y)
    for k, text in enumerate(lines):
        tw = _text_width(text, scale, thick)
        lx = max(0, min(x, width - tw - 1))
        ly = y - (len(lines) - 1 - k) * step
        cv2.rectangle(img, (lx, ly - th - base), (lx + tw, ly + base // 2), (0, 0, 0), -1)
        cv2.putText(
            img,
            text,
            (lx, ly - base // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thick,
            cv2.LINE_AA,
        )


def annotate(rgb: npt.NDArray[np.uint8], faces: Faces) -> npt.NDArray[np.uint8]:
    """A copy of ``rgb`` with ``faces`` drawn on it."""
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    line = max(1, round(max(h, w) / 500))
    font = max(0.35, max(h, w) / 1600)
    for i in range(len(faces)):
        x1, y1, x2, y2 = (round(float(v)) for v in faces.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), _BOX, line, cv2.LINE_AA)
        size = max(x2 - x1, y2 - y1)
        if faces.mesh is not None and np.isfinite(faces.mesh[i]).all():
            for p in faces.mesh[i, :, :2]:
                cv2.circle(out, (round(float(p[0])), round(float(p[1]))), 0, (200, 200, 200), -1)
        if faces.landmarks is not None:
            colours = (_RIGHT, _LEFT, _NOSE, _RIGHT, _LEFT)
            r = max(1, round(size / 40))
            for (px, py), c in zip(faces.landmarks[i], colours, strict=True):
                cv2.circle(out, (round(float(px)), round(float(py))), r, c, -1, cv2.LINE_AA)
        parts = [f"{faces.scores[i]:.2f}"]
        if faces.head_pose is not None and np.isfinite(faces.head_pose[i]).all():
            yaw, pitch, roll = (float(v) for v in faces.head_pose[i])
            parts.append(f"y{yaw:+.0f} p{pitch:+.0f} r{roll:+.0f}")
            if faces.landmarks is not None:
                _draw_axes(out, faces.landmarks[i, 2], yaw, pitch, roll, size * 0.5, line)
        if faces.quality is not None and "sharpness" in faces.quality:
            s = float(faces.quality["sharpness"][i])
            if math.isfinite(s):
                parts.append(f"sharp {s:.2f}")
        parts.extend(_attribute_words(faces, i))
        _label(out, parts, x1, y1 - line, font)
    return out


@cache
def experimental(name: str) -> bool:
    """Whether attribute ``name``'s maturity (its model card) is experimental."""
    from mien.models.registry import ATTRIBUTE_CARDS, attribute_trust

    return name in ATTRIBUTE_CARDS and attribute_trust(name)[0] != "stable"


def _attribute_words(faces: Faces, i: int) -> list[str]:
    """Short words for the attributes of face ``i`` that are known and present; experimental
    attributes end in ``?``."""
    words: list[str] = []
    for name, col in faces.attributes.items():
        value = col.values[i]
        mark = "?" if experimental(name) else ""
        if value is True:
            words.append(name + mark)
        elif isinstance(value, str) and value != "none":
            words.append(f"{name}:{value}{mark}")
        elif isinstance(value, dict):
            closed = [side for side, is_open in value.items() if is_open is False]
            if closed:
                words.append("closed:" + "+".join(closed) + mark)
    return words


def _draw_axes(
    img: npt.NDArray[np.uint8],
    origin: npt.NDArray[np.float32],
    yaw: float,
    pitch: float,
    roll: float,
    length: float,
    line: int,
) -> None:
    """Head axes (lateral red, up green, facing blue) projected orthographically."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    # Rotation camera <- head for yaw about Y, pitch about X, roll about Z (camera frame: X right,
    # Y up, Z towards the camera); drawn in image coordinates (y down).
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), math.sin(r), 0], [-math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rot = ry @ rx @ rz
    o = (round(float(origin[0])), round(float(origin[1])))
    for axis, colour in zip(np.eye(3), _AXES, strict=True):
        v = rot @ axis * length
        end = (round(o[0] + v[0]), round(o[1] - v[1]))
        cv2.arrowedLine(img, o, end, colour, line, cv2.LINE_AA, tipLength=0.15)
