"""Annotated thumbnails for the review page, drawn on demand from retained media (never stored)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mien.media.image import load_image
from mien.types import HEAD_POSE_NAMES, LANDMARK_NAMES, Faces

MAX_SIDE = 480


def faces_from_record(record: dict[str, Any]) -> Faces:
    """The geometry of the stored per-image JSON back as :class:`Faces` (for drawing only)."""
    recs = record.get("faces") or []
    n = len(recs)
    if n == 0:
        return Faces.empty()
    boxes = np.array([r["box"] for r in recs], np.float32)
    scores = np.array([r["score"] for r in recs], np.float32)
    landmarks = None
    if all("landmarks" in r for r in recs):
        landmarks = np.array(
            [[r["landmarks"][k] for k in LANDMARK_NAMES] for r in recs], np.float32
        )
    head_pose = None
    if all("head_pose" in r for r in recs):
        head_pose = np.array(
            [
                [
                    np.nan if r["head_pose"][k] is None else r["head_pose"][k]
                    for k in HEAD_POSE_NAMES
                ]
                for r in recs
            ],
            np.float32,
        )
    return Faces(boxes=boxes, scores=scores, landmarks=landmarks, head_pose=head_pose)


def annotated_thumbnail(path: Path, record: dict[str, Any]) -> bytes:
    """A JPEG of the picture at ``path`` with its faces drawn, at most 480 px on a side."""
    from mien.render.annotate import annotate

    # A JPEG is decoded reduced (1/2 .. 1/8, never below the thumbnail's size): a 40 Mpx photo
    # then costs a fraction of its full decode. The faces are scaled to the reduced picture.
    decoded = load_image(path, draft=(MAX_SIDE, MAX_SIDE))
    faces = faces_from_record(record)
    full_width = record.get("width")
    if isinstance(full_width, int) and full_width > decoded.width > 0:
        faces = _scaled(faces, decoded.width / full_width)
    drawn = annotate(decoded.rgb, faces)
    img = Image.fromarray(drawn)
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _scaled(faces: Faces, factor: float) -> Faces:
    """``faces`` with their boxes and landmarks in a picture ``factor`` times the size."""
    f = np.float32(factor)
    return Faces(
        boxes=faces.boxes * f,
        scores=faces.scores,
        landmarks=None if faces.landmarks is None else faces.landmarks * f,
        head_pose=faces.head_pose,
    )
