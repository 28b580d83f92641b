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


# -- video segments ----------------------------------------------------------------------------

#: Frames in a segment's filmstrip (at most), and the height of each, px.
FILMSTRIP_FRAMES = 6
FILMSTRIP_HEIGHT = 120


def video_frames(path: Path, times_ms: list[float], side: int) -> list[Image.Image]:
    """The frames of the video at ``path`` at (or just after) ``times_ms``, upright, at most
    ``side`` px on a side, converted straight to that size. Each is found by seeking to the key
    frame before it and decoding at most 300 frames from there
    (:meth:`mien.media.video.VideoReader.frame_at`): the cost does not grow with the position
    in the video. Frames that cannot be decoded are left out, and so is a frame found twice."""
    from mien.media.video import VideoReader

    out: list[Image.Image] = []
    seen: set[float] = set()
    with VideoReader(path, full=False, scaled_side=side, threaded=False) as reader:
        for t in times_ms:
            frame = reader.frame_at(t)
            if frame is None or frame.scaled is None or frame.timestamp_ms in seen:
                continue
            seen.add(frame.timestamp_ms)
            out.append(Image.fromarray(frame.scaled))
    return out


def keyframe_thumbnail(path: Path, segment: dict[str, Any]) -> bytes | None:
    """A JPEG of a segment's keyframe with the face's box drawn (at most 480 px on a side);
    None when the video no longer has that frame."""
    from mien.render.annotate import annotate

    found = video_frames(path, [float(segment["keyframe_s"]) * 1000.0], MAX_SIDE)
    if not found:
        return None
    frame = found[0]
    rgb = np.asarray(frame.convert("RGB"))
    box = segment.get("keyframe_box")
    width = segment.get("width")
    if isinstance(box, list) and len(box) == 4:
        scale = frame.width / float(width) if isinstance(width, int | float) and width else 1.0
        faces = Faces(
            boxes=np.array([box], np.float32) * np.float32(scale), scores=np.ones(1, np.float32)
        )
        rgb = annotate(rgb, faces)
    return _jpeg(Image.fromarray(rgb))


def filmstrip(path: Path, segment: dict[str, Any], frames: int = FILMSTRIP_FRAMES) -> bytes | None:
    """One JPEG: up to ``frames`` evenly spaced frames of a segment side by side, each
    ``FILMSTRIP_HEIGHT`` px high; None when the video no longer has them."""
    times = filmstrip_times(float(segment["start_s"]), float(segment["end_s"]), frames)
    tiles = []
    for img in video_frames(path, times, MAX_SIDE):
        w = max(1, round(img.width * FILMSTRIP_HEIGHT / img.height))
        tiles.append(img.resize((w, FILMSTRIP_HEIGHT)))
    if not tiles:
        return None
    strip = Image.new("RGB", (sum(t.width for t in tiles), FILMSTRIP_HEIGHT))
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width
    return _jpeg(strip)


def filmstrip_times(start_s: float, end_s: float, frames: int) -> list[float]:
    """``frames`` evenly spaced times (ms) from ``start_s`` to ``end_s``, both included (one
    when the segment is a single moment)."""
    if end_s <= start_s or frames <= 1:
        return [start_s * 1000.0]
    step = (end_s - start_s) / (frames - 1)
    return [(start_s + k * step) * 1000.0 for k in range(frames)]


def _jpeg(img: Image.Image) -> bytes:
    img.thumbnail((MAX_SIDE * 8, MAX_SIDE))  # a filmstrip is wide; a frame already fits
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()
