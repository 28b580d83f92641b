"""Face detection at every scale of a picture: passes planned over one CenterFace model.

A single CenterFace pass at the picture's own size misses faces only a few pixels wide, and
on very large pictures it is slow and misses nothing it couldn't find at a lower resolution.
:class:`FaceDetector` therefore plans passes per picture (see docs/output.md, "Detection"):

1. a *global* pass, at the picture's size or shrunk so its long side is at most
   ``global_max_side`` px;
2. an *upscaled* pass at up to ``upscale``× (the upscaled long side at most
   ``upscale_max_pixels``; skipped when that allows less than 1.25×), which finds faces down to
   ~6 px wide in small pictures; it also runs on the mirrored picture (``upscale_flip``), which
   on the face-mask photos lifted recall at 90% precision by about 0.02 (docs/benchmarks.md).
   With ``upscale_regions`` it runs only on the regions around small-face evidence of the
   global pass (candidates of at least ``evidence_threshold`` and at most
   ``upscale_max_face`` px wide; :func:`evidence_regions`), and not at all on a picture
   without such evidence: on the face-mask photos that halves the network's work at the same
   recall (docs/benchmarks.md, "Speed toward the limit");
3. *tiles* at full resolution when the global pass had to shrink the picture below
   ``tile_min_shrink`` of its size, so small faces in large pictures are still found;
4. optionally (``rotation_search``) the same on the picture turned by 90°, 180° and 270°.

Detections of all passes are merged with non-maximum suppression.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from mien.detect.centerface import CenterFace
from mien.detect.detections import Detections
from mien.detect.nms import containment, nms

if TYPE_CHECKING:
    from mien.options import AnalyzerOptions


@dataclass(frozen=True)
class DetectionPlan:
    """How one picture is searched for faces (all sizes in pixels)."""

    threshold: float = 0.5
    min_face: float = 0.0
    max_faces: int | None = None
    global_max_side: int = 1920
    upscale: float = 2.0
    upscale_max_pixels: int = 1280
    tile_min_shrink: float = 0.75
    upscale_max_face: float = 64.0
    upscale_flip: bool = True
    upscale_regions: bool = True
    evidence_threshold: float = 0.1
    region_cell: int = 16
    region_margin: int = 24
    region_max_share: float = 0.6
    tiling: bool = True
    tile_size: int = 1024
    tile_overlap: int = 192
    rotation_search: bool = False
    nms_iou: float = 0.4

    @classmethod
    def for_options(cls, options: AnalyzerOptions, **changes: Any) -> DetectionPlan:
        """The plan of an analyzer's options (threshold, min_face, max_faces, upscale,
        tiling, rotation search), with ``changes`` on top."""
        plan = cls(
            threshold=options.threshold,
            min_face=options.min_face,
            max_faces=options.max_faces,
            upscale=options.upscale,
            tiling=options.tiling,
            rotation_search=options.rotation_search,
        )
        return replace(plan, **changes) if changes else plan

    def select(self, found: Detections) -> Detections:
        """The faces of ``found`` (best first) that are kept: at least ``min_face`` px (the
        box's longer side), then at most ``max_faces`` of them."""
        return found.larger_than(self.min_face).top(self.max_faces)


def _resize(rgb: npt.NDArray[np.uint8], factor: float) -> npt.NDArray[np.uint8]:
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=interp))


def _tiles(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


class FaceDetector:
    """Finds faces with CenterFace over the passes of a :class:`DetectionPlan`."""

    def __init__(
        self, model: CenterFace | None = None, num_threads: int = 0, device: str = "cpu"
    ) -> None:
        self.model = (
            model if model is not None else CenterFace(num_threads=num_threads, device=device)
        )

    def detect(self, rgb: npt.NDArray[np.uint8], plan: DetectionPlan) -> Detections:
        """The faces of ``rgb`` (H, W, 3 uint8) the plan keeps (:meth:`DetectionPlan.select`),
        in its pixel frame, best score first."""
        turns = (0, 1, 2, 3) if plan.rotation_search else (0,)
        found = Detections.merge(self._detect_turned(rgb, plan, k) for k in turns)
        return plan.select(self._merge(found, plan.nms_iou))

    def detect_many(
        self, images: Sequence[npt.NDArray[np.uint8]], plan: DetectionPlan
    ) -> list[Detections]:
        """:meth:`detect` of each of ``images``; in one batched network run when they are all of
        one size and ``plan`` makes a single pass over each (:func:`one_pass`: video copies),
        one by one otherwise. Same results either way."""
        if len(images) > 1 and len({im.shape for im in images}) == 1:
            h, w = images[0].shape[:2]
            if one_pass(plan, w, h):
                runs = self.model.run_many(images, plan.threshold)
                return [plan.select(self._merge(d, plan.nms_iou)) for d in runs]
        return [self.detect(im, plan) for im in images]

    def _detect_turned(self, rgb: npt.NDArray[np.uint8], plan: DetectionPlan, k: int) -> Detections:
        if k == 0:
            return self._detect_upright(rgb, plan)
        h, w = rgb.shape[:2]
        turned = np.ascontiguousarray(np.rot90(rgb, k))  # counter-clockwise by 90°*k
        d = self._detect_upright(turned, plan)
        if not len(d):
            return d
        pts = d.points.reshape(-1, 2)
        corners = np.concatenate(
            [d.boxes[:, [0, 1]], d.boxes[:, [2, 1]], d.boxes[:, [2, 3]], d.boxes[:, [0, 3]]], axis=0
        )
        pts_back = _unturn(pts, k, w, h).reshape(-1, 5, 2)
        c = _unturn(corners, k, w, h).reshape(4, -1, 2)
        boxes = np.stack(
            [c[..., 0].min(0), c[..., 1].min(0), c[..., 0].max(0), c[..., 1].max(0)], axis=1
        ).astype(np.float32)
        return Detections(boxes, d.scores, pts_back.astype(np.float32))

    def _detect_upright(self, rgb: npt.NDArray[np.uint8], plan: DetectionPlan) -> Detections:
        h, w = rgb.shape[:2]
        long_side = max(h, w)
        parts: list[Detections] = []
        g = min(1.0, plan.global_max_side / long_side)
        img = rgb if g == 1.0 else _resize(rgb, g)
        factor = min(plan.upscale, plan.upscale_max_pixels / long_side)
        regions = plan.upscale_regions and factor >= 1.25
        low = min(plan.threshold, plan.evidence_threshold) if regions else plan.threshold
        native = self.model.run(img, low).map_back(g)
        parts.append(native[native.scores >= plan.threshold])
        if factor >= 1.25:
            rects = evidence_regions(native, (w, h), plan) if regions else [(0, 0, w, h)]
            for rect in rects:
                parts.extend(self._upscaled(rgb, rect, factor, plan))
        if g < plan.tile_min_shrink and plan.tiling:
            parts.extend(self._tile_passes(rgb, plan))
        return Detections.merge(parts)

    def _upscaled(
        self,
        rgb: npt.NDArray[np.uint8],
        rect: tuple[int, int, int, int],
        factor: float,
        plan: DetectionPlan,
    ) -> Iterator[Detections]:
        """The upscaled (and mirrored) passes over ``rect`` of ``rgb``: faces of at most
        ``upscale_max_face`` px, none cut by an edge of ``rect`` inside the picture."""
        x0, y0, x1, y1 = rect
        h, w = rgb.shape[:2]
        part = rgb if (x0, y0, x1, y1) == (0, 0, w, h) else rgb[y0:y1, x0:x1]
        big = _resize(part, factor)
        runs = [self.model.run(big, plan.threshold)]
        if plan.upscale_flip:
            mirrored = np.ascontiguousarray(big[:, ::-1])
            runs.append(_unflip(self.model.run(mirrored, plan.threshold), big.shape[1]))
        for run in runs:
            up = run.map_back(factor, x0, y0)
            b = up.boxes
            keep = (b[:, 2] - b[:, 0]) <= plan.upscale_max_face
            keep &= ~_cut(b, (x0, y0, x1, y1), (w, h), 1.0)
            yield up[keep]

    def _tile_passes(self, rgb: npt.NDArray[np.uint8], plan: DetectionPlan) -> Iterator[Detections]:
        h, w = rgb.shape[:2]
        t, margin = plan.tile_size, 2.0
        for y0 in _tiles(h, t, plan.tile_overlap):
            for x0 in _tiles(w, t, plan.tile_overlap):
                tile = np.ascontiguousarray(rgb[y0 : y0 + t, x0 : x0 + t])
                d = self.model.run(tile, plan.threshold)
                if not len(d):
                    continue
                th, tw = tile.shape[:2]
                b = d.boxes
                # Faces cut by an inner tile edge are left to the neighbouring tile.
                cut = (
                    ((b[:, 0] <= margin) & (x0 > 0))
                    | ((b[:, 1] <= margin) & (y0 > 0))
                    | ((b[:, 2] >= tw - margin) & (x0 + tw < w))
                    | ((b[:, 3] >= th - margin) & (y0 + th < h))
                )
                small = (b[:, 2] - b[:, 0]) <= plan.tile_overlap
                yield d[~cut & small].map_back(1.0, x0, y0)

    @staticmethod
    def _merge(d: Detections, iou: float) -> Detections:
        if len(d) <= 1:
            return d
        d = d[nms(d.boxes, d.scores, iou)]
        # A box lying mostly inside a higher-scored box (a part of a face found at another
        # scale) is dropped too.
        cover = containment(d.boxes, d.boxes)
        np.fill_diagonal(cover, 0.0)
        n = len(d)
        drop = np.zeros(n, bool)
        for i in range(n):  # d is sorted by score, best first
            if drop[i]:
                continue
            inside = (cover[:, i] >= 0.8) & (np.arange(n) > i)
            drop |= inside
        return d[~drop]


def one_pass(plan: DetectionPlan, width: int, height: int) -> bool:
    """Whether ``plan`` searches a ``width`` x ``height`` picture with one network pass at its
    own size (no rotation, shrinking, upscaled pass or tiles)."""
    long_side = max(width, height)
    return (
        not plan.rotation_search
        and plan.global_max_side >= long_side
        and min(plan.upscale, plan.upscale_max_pixels / long_side) < 1.25
    )


def _cut(
    boxes: npt.NDArray[np.float32],
    rect: tuple[int, int, int, int],
    size: tuple[int, int],
    margin: float,
) -> npt.NDArray[np.bool_]:
    """Which boxes touch an edge of ``rect`` that lies inside a ``size`` picture (a face cut
    there is left to the pass that sees all of it)."""
    x0, y0, x1, y1 = rect
    w, h = size
    return (
        ((boxes[:, 0] <= x0 + margin) & (x0 > 0))
        | ((boxes[:, 1] <= y0 + margin) & (y0 > 0))
        | ((boxes[:, 2] >= x1 - margin) & (x1 < w))
        | ((boxes[:, 3] >= y1 - margin) & (y1 < h))
    )


def evidence_regions(
    native: Detections, size: tuple[int, int], plan: DetectionPlan
) -> list[tuple[int, int, int, int]]:
    """The rectangles ``(x0, y0, x1, y1)`` of a ``size`` picture worth an upscaled pass: around
    every candidate of the global pass at most ``upscale_max_face`` px wide (whatever its
    score: ``native`` was cut at the evidence threshold), grown by ``region_margin`` px, on a
    grid of ``region_cell`` px, joined where they touch. The whole picture when they would
    cover more than ``region_max_share`` of it; none without such candidates."""
    w, h = size
    b = native.boxes
    small = b[(b[:, 2] - b[:, 0]) <= plan.upscale_max_face]
    if not len(small):
        return []
    c, m = plan.region_cell, plan.region_margin
    gw, gh = -(-w // c), -(-h // c)
    grid = np.zeros((gh, gw), np.uint8)
    lo = np.floor((small[:, :2] - m) / c).astype(int)
    hi = np.ceil((small[:, 2:] + m) / c).astype(int)
    for (gx0, gy0), (gx1, gy1) in zip(lo, hi, strict=True):
        grid[max(gy0, 0) : max(gy1, 0), max(gx0, 0) : max(gx1, 0)] = 1
    n, _, stats, _ = cv2.connectedComponentsWithStats(grid, connectivity=8)
    rects = [
        (int(gx * c), int(gy * c), min(w, int((gx + cw) * c)), min(h, int((gy + ch) * c)))
        for gx, gy, cw, ch, _area in stats[1:n]
    ]
    area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in rects)
    if area > plan.region_max_share * w * h:
        return [(0, 0, w, h)]
    return rects


def _unflip(d: Detections, width: int) -> Detections:
    """Map detections of a mirrored image back, keeping the image-left-first point order."""
    boxes = d.boxes.copy()
    boxes[:, [0, 2]] = width - d.boxes[:, [2, 0]]
    points = d.points[:, [1, 0, 2, 4, 3]].copy()
    points[..., 0] = width - points[..., 0]
    return Detections(boxes, d.scores, points)


def _unturn(pts: npt.NDArray[np.float32], k: int, w: int, h: int) -> npt.NDArray[np.float32]:
    """Map points of ``np.rot90(img, k)`` back to the frame of ``img`` (width w, height h)."""
    x, y = pts[:, 0], pts[:, 1]
    if k == 1:  # turned image is w x h (rows = w); (x', y') = (y, w - x)
        return np.stack([w - y, x], axis=1)
    if k == 2:
        return np.stack([w - x, h - y], axis=1)
    return np.stack([y, h - x], axis=1)  # k == 3
