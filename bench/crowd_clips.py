"""Crowd clips: small faces moving, every labelled face known in every frame.

A clip is a 3x2 mosaic of face-mask photos (``facemask_kaggle_voc``, ~400 px wide, 3-40 px
faces) at their native scale, each photo centred in a 640x540 cell of a 1920x1080 grey canvas,
and a 1280x720 window panning across the canvas from its top-left to its bottom-right corner over
75 frames (H.264 CRF 16, 25 frames/s, constant rate): the faces move by about 8.6 px right-to-left
and 4.9 px upwards per frame, and faces enter and leave the picture at the edges. The photo
boxes (annotations.csv), moved by the window's offset and cut to the frame, are the faces of each
frame; a face counts when at least half of its box is inside the frame.

Deterministic: clip ``k`` takes the photos ``6k .. 6k+5`` of annotations.csv's photos sorted by
name, among those with at least 4 labelled faces. Clips are written under ``--cache``
(default bench/.cache/crowd, never committed) and rebuilt only when missing.

    .venv/bin/python bench/crowd_clips.py --clips 4      # writes the clips, prints their paths
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parent.parent / "shared" / "data"
CACHE = BENCH / ".cache" / "crowd"
CELL = (640, 540)
CANVAS = (1920, 1080)
WINDOW = (1280, 720)
FRAMES = 75
FPS = 25
MIN_FACES = 4
INSIDE = 0.5


@dataclass
class CrowdClip:
    """A built clip and the face boxes of each of its frames (pixels of the 1280x720 frame)."""

    path: Path
    faces: list[np.ndarray]  # per frame, (N, 4) x1 y1 x2 y2
    photos: list[str]

    @property
    def face_frames(self) -> int:
        return int(sum(len(f) for f in self.faces))


def _photos(data: Path) -> dict[str, list[list[float]]]:
    table: dict[str, list[list[float]]] = defaultdict(list)
    with (data / "facemask_kaggle_voc" / "annotations.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            table[row["image"]].append([float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
    return {k: v for k, v in sorted(table.items()) if len(v) >= MIN_FACES}


def offsets() -> list[tuple[int, int]]:
    """The window's top-left corner in each frame."""
    dx, dy = CANVAS[0] - WINDOW[0], CANVAS[1] - WINDOW[1]
    return [(round(dx * i / (FRAMES - 1)), round(dy * i / (FRAMES - 1))) for i in range(FRAMES)]


def _mosaic(data: Path, names: list[str], table: dict[str, list[list[float]]]) -> Any:
    canvas = np.full((CANVAS[1], CANVAS[0], 3), 128, np.uint8)
    boxes: list[list[float]] = []
    for k, name in enumerate(names):
        with Image.open(data / "facemask_kaggle_voc" / "images" / name) as im:
            rgb = np.asarray(im.convert("RGB"))
        h, w = rgb.shape[:2]
        h, w = min(h, CELL[1]), min(w, CELL[0])
        cx, cy = (k % 3) * CELL[0], (k // 3) * CELL[1]
        x0, y0 = cx + (CELL[0] - w) // 2, cy + (CELL[1] - h) // 2
        canvas[y0 : y0 + h, x0 : x0 + w] = rgb[:h, :w]
        for x1, y1, x2, y2 in table[name]:
            boxes.append([x1 + x0, y1 + y0, min(x2, w) + x0, min(y2, h) + y0])
    return canvas, np.asarray(boxes, np.float64).reshape(-1, 4)


def frame_faces(boxes: np.ndarray, ox: int, oy: int) -> np.ndarray:
    """The canvas boxes seen in the window at (ox, oy): moved, cut, at least half inside."""
    b = boxes - np.array([ox, oy, ox, oy], np.float64)
    cut = b.copy()
    cut[:, [0, 2]] = cut[:, [0, 2]].clip(0, WINDOW[0])
    cut[:, [1, 3]] = cut[:, [1, 3]].clip(0, WINDOW[1])
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inside = (cut[:, 2] - cut[:, 0]) * (cut[:, 3] - cut[:, 1])
    keep = (area > 0) & (inside >= INSIDE * area)
    return cut[keep]


def build(data: Path, k: int, cache: Path = CACHE) -> CrowdClip:
    """Crowd clip ``k`` (built once, then read from ``cache``)."""
    table = _photos(data)
    names = list(table)[6 * k : 6 * k + 6]
    if len(names) < 6:
        raise SystemExit(f"not enough photos with {MIN_FACES}+ faces for crowd clip {k}")
    canvas, boxes = _mosaic(data, names, table)
    faces = [frame_faces(boxes, ox, oy) for ox, oy in offsets()]
    path = cache / f"crowd_{k}.mp4"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.mp4")
        with av.open(str(tmp), "w") as out:
            s: Any = out.add_stream("libx264", rate=FPS)
            s.width, s.height, s.pix_fmt = WINDOW[0], WINDOW[1], "yuv420p"
            s.time_base = Fraction(1, FPS)
            s.codec_context.options = {"crf": "16", "preset": "medium"}
            for i, (ox, oy) in enumerate(offsets()):
                crop = np.ascontiguousarray(canvas[oy : oy + WINDOW[1], ox : ox + WINDOW[0]])
                f = av.VideoFrame.from_ndarray(crop, format="rgb24")
                f.pts, f.time_base = i, Fraction(1, FPS)
                for p in s.encode(f):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)
        tmp.rename(path)
    return CrowdClip(path, faces, names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args()
    for k in range(args.clips):
        c = build(args.data, k, args.cache)
        print(json.dumps({"path": str(c.path), "photos": c.photos, "face_frames": c.face_frames}))


if __name__ == "__main__":
    main()
