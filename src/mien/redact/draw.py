"""Covering face regions of a picture: strong blur, coarse pixelation or a solid fill.

:func:`redact_regions` is the one primitive image and video redaction share. It works on the
covered regions only (a slice per face), so its cost grows with the faces' area, not the
picture's. Every method destroys the face's detail for good rather than hiding it reversibly:

* ``blur`` first shrinks the covered area to at most :data:`BLUR_SAMPLES` samples across its
  longer side (area averaging: the discarded detail is gone, no deconvolution brings it back),
  then smooths it back up with a Gaussian, so the result looks like a very strong blur whose
  strength is scaled to the face size;
* ``pixelate`` replaces the area by at most ``options.blocks`` blocks across its longer side
  (blocks at least :data:`MIN_BLOCK` px);
* ``fill`` paints it in ``options.color``.

The covered area of a face is its box grown ``options.scale`` times around the box centre, as
an inscribed ellipse or the whole grown box, clipped to the picture (:func:`covered_boxes`,
:func:`region_mask`).
"""

from __future__ import annotations

import math
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from mien.redact.options import RedactOptions

#: Samples kept across the longer side of a blurred area (fewer = stronger).
BLUR_SAMPLES: Final[int] = 6
#: Smallest pixelation block, in pixels.
MIN_BLOCK: Final[int] = 3

#: A blurred area is smoothed at this many pixels per sample, with a Gaussian of sigma
#: 0.6 samples (the kernel OpenCV's GaussianBlur would choose, made once: cv2.GaussianBlur
#: rebuilds it on every call, which cost ~0.4 ms of the ~0.5 ms of covering a small face).
_MID: Final[int] = 8
_SMOOTH: Final = cv2.getGaussianKernel(31, _MID * 0.6)

BoolArray = npt.NDArray[np.bool_]
UInt8Array = npt.NDArray[np.uint8]


def covered_boxes(
    boxes: npt.ArrayLike, scale: float, width: int, height: int
) -> npt.NDArray[np.float32]:
    """Face boxes ``(N, 4)`` grown ``scale`` times around their centres and clipped to the
    picture (float, pixel edges). Rows that are not finite or lie outside become empty."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(b):
        return np.zeros((0, 4), np.float32)
    ok: BoolArray = np.asarray(np.isfinite(b).all(axis=1), dtype=bool)
    b = np.where(ok[:, None], b, 0.0)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    hw = np.abs(b[:, 2] - b[:, 0]) * scale / 2
    hh = np.abs(b[:, 3] - b[:, 1]) * scale / 2
    out = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    out[~ok] = 0.0
    return out.astype(np.float32)


def _grown(box: npt.NDArray[np.float64], scale: float) -> tuple[float, float, float, float]:
    """Centre and half-sizes of a box grown ``scale`` times (at least half a pixel)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw = max(abs(box[2] - box[0]) * scale / 2, 0.5)
    hh = max(abs(box[3] - box[1]) * scale / 2, 0.5)
    return float(cx), float(cy), float(hw), float(hh)


def _slices(
    box: npt.NDArray[np.float64], scale: float, width: int, height: int
) -> tuple[int, int, int, int, float, float, float, float] | None:
    """Integer pixel window of one covered area, plus its centre and half-sizes; None if empty."""
    if not np.isfinite(box).all():
        return None
    cx, cy, hw, hh = _grown(box, scale)
    x0, y0 = max(0, math.floor(cx - hw)), max(0, math.floor(cy - hh))
    x1, y1 = min(width, math.ceil(cx + hw)), min(height, math.ceil(cy + hh))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1, cx, cy, hw, hh


def _window_mask(
    x0: int, y0: int, x1: int, y1: int, cx: float, cy: float, hw: float, hh: float, shape: str
) -> BoolArray:
    """Which pixels of the window ``[y0:y1, x0:x1]`` the covered area takes (pixel centres)."""
    if shape == "box":
        return np.ones((y1 - y0, x1 - x0), bool)
    xs = ((np.arange(x0, x1, dtype=np.float64) + 0.5 - cx) / hw) ** 2
    ys = ((np.arange(y0, y1, dtype=np.float64) + 0.5 - cy) / hh) ** 2
    mask: BoolArray = (ys[:, None] + xs[None, :]) <= 1.0
    if not mask.any():
        # No pixel centre inside: an area smaller than a pixel, or one whose centre lies outside
        # the picture and that reaches in by less than half a pixel. It still covers the pixel
        # of the window nearest its centre.
        iy = min(max(math.floor(cy) - y0, 0), y1 - y0 - 1)
        ix = min(max(math.floor(cx) - x0, 0), x1 - x0 - 1)
        mask[iy, ix] = True
    return mask


Window = tuple[int, int, int, int, float, float, float, float]


def _windows(boxes: npt.ArrayLike, scale: float, width: int, height: int) -> list[Window]:
    """The non-empty covered areas of ``boxes`` (:func:`_slices`), in order."""
    wins = (_slices(b, scale, width, height) for b in np.asarray(boxes, np.float64).reshape(-1, 4))
    return [w for w in wins if w is not None]


#: Areas :func:`_needed` compares at most (pairwise; past that all are drawn), and the rows it
#: compares at once (bounds its memory to a few MB).
NEEDED_MAX: Final[int] = 4096
_NEEDED_ROWS: Final[int] = 256


def _inside(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], shape: str) -> BoolArray:
    """``out[i, j]``: every pixel centre of area ``a[i]``'s window lies in area ``b[j]``'s
    covered area (``a``, ``b``: :data:`Window` rows)."""
    if shape == "box":
        return np.asarray(
            (a[:, None, 0] >= b[None, :, 0])
            & (a[:, None, 1] >= b[None, :, 1])
            & (a[:, None, 2] <= b[None, :, 2])
            & (a[:, None, 3] <= b[None, :, 3]),
            bool,
        )
    out = np.ones((len(a), len(b)), bool)
    for px in (a[:, 0] + 0.5, a[:, 2] - 0.5):
        for py in (a[:, 1] + 0.5, a[:, 3] - 0.5):
            dx = (px[:, None] - b[None, :, 4]) / b[None, :, 6]
            dy = (py[:, None] - b[None, :, 5]) / b[None, :, 7]
            out &= dx * dx + dy * dy <= 1.0
    return out


def _needed(wins: list[Window], shape: str) -> list[Window]:
    """``wins`` less every area whose pixels another kept area covers anyway, in order.

    A is dropped when every pixel centre of its window lies inside B's covered area: for
    ``box``, A's window inside B's; for ``ellipse``, the four corner pixel centres of A's
    window inside B's ellipse (an ellipse is convex, so the whole grid of centres between them
    is too; that grid holds every pixel A covers, the one-pixel fallback of a tiny area
    included). The test is transitive on covered pixels, and of two equal areas the first is
    kept, so each dropped area lies inside one that is drawn: the covered pixels stay exactly
    the same (tests/test_redact_draw.py). A video frame made suspect covers every known
    region again, grown (:mod:`mien.redact.suspect`), so a crowded frame holds hundreds of
    areas inside others; covering each costs ~0.1 ms. More than :data:`NEEDED_MAX` areas are
    all drawn.
    """
    n = len(wins)
    if n < 2 or n > NEEDED_MAX:
        return wins
    w = np.asarray(wins, np.float64)
    index = np.arange(n)
    drop = np.zeros(n, bool)
    for start in range(0, n, _NEEDED_ROWS):
        rows = index[start : start + _NEEDED_ROWS]
        inside = _inside(w[rows], w, shape)  # [A in rows, B]: A inside B
        contains = _inside(w, w[rows], shape).T  # [A in rows, B]: B inside A
        inside[np.arange(len(rows)), rows] = False
        # A is dropped if inside some B that is not an equal area coming later.
        earlier = index[None, :] < rows[:, None]
        drop[rows] = (inside & (~contains | earlier)).any(axis=1)
    return [win for win, d in zip(wins, drop.tolist(), strict=True) if not d]


def region_mask(
    shape_hw: tuple[int, int], boxes: npt.ArrayLike, options: RedactOptions
) -> BoolArray:
    """The ``(H, W)`` boolean mask of every pixel :func:`redact_regions` covers for ``boxes``."""
    height, width = int(shape_hw[0]), int(shape_hw[1])
    mask = np.zeros((height, width), bool)
    for win in _windows(boxes, options.scale, width, height):
        x0, y0, x1, y1 = win[:4]
        mask[y0:y1, x0:x1] |= _window_mask(*win, options.shape)
    return mask


def _pixelated(patch: UInt8Array, blocks: int) -> UInt8Array:
    h, w = patch.shape[:2]
    block = max(MIN_BLOCK, math.ceil(max(h, w) / blocks))
    sw, sh = max(1, math.ceil(w / block)), max(1, math.ceil(h / block))
    small = cv2.resize(patch, (sw, sh), interpolation=cv2.INTER_AREA)
    # Nearest-neighbour back up: each block is one flat colour.
    # Nearest-neighbour by a whole factor (exact in OpenCV), then cut to the window; a last
    # partial block repeats the last colour.
    big = cv2.resize(small, (sw * block, sh * block), interpolation=cv2.INTER_NEAREST)
    out: UInt8Array = np.ascontiguousarray(big[:h, :w])
    return out


def _blurred(patch: UInt8Array) -> UInt8Array:
    h, w = patch.shape[:2]
    long_side = max(h, w)
    k = min(1.0, BLUR_SAMPLES / long_side)
    sw, sh = max(1, round(w * k)), max(1, round(h * k))
    small = cv2.resize(patch, (sw, sh), interpolation=cv2.INTER_AREA)
    # Smooth at a medium size (cheap), then stretch to the window: a Gaussian-looking blob.
    mw, mh = sw * _MID, sh * _MID
    mid = cv2.resize(small, (mw, mh), interpolation=cv2.INTER_LINEAR)
    smooth = cv2.sepFilter2D(mid, -1, _SMOOTH, _SMOOTH, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(cv2.resize(smooth, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


def redact_regions(
    rgb: UInt8Array, boxes: npt.ArrayLike, options: RedactOptions | None = None
) -> UInt8Array:
    """A copy of ``rgb`` (H, W, 3 uint8) with the area of every face box covered.

    ``boxes`` is ``(N, 4)`` ``[x1, y1, x2, y2]`` pixels (non-finite rows are skipped; boxes
    partly or wholly outside the picture are clipped). Faces are covered one after another on
    the new array, so overlapping areas stay covered; an area wholly inside another's is not
    covered twice (:func:`_needed`). The input is not modified.
    """
    opts = options if options is not None else RedactOptions()
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {img.dtype} {img.shape}")
    out = np.array(img, dtype=np.uint8, order="C", copy=True)
    height, width = out.shape[:2]
    fill = np.array(opts.color, np.uint8)
    for win in _needed(_windows(boxes, opts.scale, width, height), opts.shape):
        x0, y0, x1, y1 = win[:4]
        view = out[y0:y1, x0:x1]
        mask = _window_mask(*win, opts.shape)
        if opts.method == "fill":
            covered = np.empty_like(view)
            covered[...] = fill
        else:
            patch = np.ascontiguousarray(view)
            covered = _blurred(patch) if opts.method == "blur" else _pixelated(patch, opts.blocks)
        if opts.shape == "box":
            view[...] = covered
        else:
            # ~50x faster than ``view[mask] = covered[mask]``; assigning the result keeps it right
            # should OpenCV hand back a new array rather than write through the strided view.
            view[...] = cv2.copyTo(covered, mask.view(np.uint8), view)
    return out
