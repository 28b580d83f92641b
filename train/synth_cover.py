"""Colour-invariant training pictures for the mask head (issue 17, fourth round).

The face-mask photos show mostly white, light-blue and black masks, and a head trained on them
learns "mask = that fabric colour": a skin-pink, yellow or printed cover reads as bare skin. Three
changes of an aligned face crop, made with the face mesh (in the crop's coordinates):

* :func:`recoloured` - a face labelled worn / worn_incorrectly with its cover recoloured: the
  covered pixels (below the nose bridge, inside the face oval, and of a colour unlike the
  forehead's) get a random colour or print (skin-like pinks and beiges, yellows, reds, greens,
  stripes, dots, blobs), keeping the mask's own shading (the new colour x the original
  luminance). The label stays.
* :func:`covered` - a bare face with a synthetic cover pasted on it (the face oval below the nose
  bridge, random colour and print, shaded by the heavily blurred luminance so no nostril or lip
  shows through): labelled ``worn``.
* :func:`darkened` - a bare face whose lower face is darkened and greyed (shadow, beard stubble),
  its detail kept: still ``none`` - a dark or grey lower face is not a mask.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from mien.analyzers.align import alignment_matrix
from mien.analyzers.attributes.base import FaceContext

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: MediaPipe face mesh: the face oval, and points down the nose (bridge to tip).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
             109)  # fmt: skip
NOSE_BRIDGE = 6
NOSE_MID = 197
NOSE_TIP = 1


def mesh_in_crop(
    ctx: FaceContext, size: int, eye_y: float, eye_distance: float
) -> npt.NDArray[np.float64] | None:
    """Face 0's mesh points (x, y) in the aligned crop's pixels, or None without a mesh."""
    mesh = np.asarray(ctx.mesh[0, :, :2], np.float64)
    if not np.isfinite(mesh).all():
        return None
    lm = ctx.landmarks[0]
    m = alignment_matrix(lm[0], lm[1], size, eye_y, eye_distance)
    out: npt.NDArray[np.float64] = mesh @ m[:, :2].T + m[:, 2]
    return out


def lower_region(pts: npt.NDArray[np.float64], size: int, top: int, soft: float = 0.8) -> F32:
    """A soft [0, 1] mask of the face oval below mesh point ``top`` (the hull of the oval's
    points below it and the point itself)."""
    oval = pts[list(FACE_OVAL)]
    y0 = pts[top, 1]
    poly = np.vstack([oval[oval[:, 1] >= y0], pts[top][None]])
    hull = cv2.convexHull(np.round(poly * 4).astype(np.int32))
    m = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(m, hull, 255, lineType=cv2.LINE_AA, shift=2)
    out = m.astype(np.float32) / 255.0
    if soft > 0:
        out = cv2.GaussianBlur(out, (0, 0), soft * size / 48)
    return np.asarray(out, np.float32)


def random_colour(rng: np.random.Generator) -> F32:
    """An RGB albedo in [0, 1]: skin-like pinks/beiges a third of the time, else any hue."""
    if rng.random() < 0.35:
        h, s, v = rng.uniform(0, 25), rng.uniform(0.15, 0.55), rng.uniform(0.55, 0.97)
    else:
        h, s, v = rng.uniform(0, 180), rng.uniform(0.0, 1.0), rng.uniform(0.2, 1.0)
    hsv = np.array([[[h, s * 255, v * 255]]], np.float32).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return np.asarray(rgb, np.float32) / 255.0


def random_albedo(size: int, rng: np.random.Generator) -> F32:
    """A ``size`` x ``size`` x 3 albedo: one colour, or a print of two (stripes, dots, checks,
    blobs) 45% of the time."""
    a, b = random_colour(rng), random_colour(rng)
    out = np.broadcast_to(a, (size, size, 3)).copy()
    kind = rng.random()
    if kind < 0.55:
        return out
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(0.06, 0.25) * size
    if kind < 0.7:  # stripes at any angle
        ang = rng.uniform(0, np.pi)
        sel = np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi / period) > 0
    elif kind < 0.8:  # dots
        r = period * rng.uniform(0.2, 0.4)
        sel = np.hypot((xx % period) - period / 2, (yy % period) - period / 2) < r
    elif kind < 0.87:  # checks
        sel = ((xx // period).astype(int) + (yy // period).astype(int)) % 2 == 0
    else:  # cartoon-like blobs: thresholded smooth noise
        noise = rng.normal(0, 1, (size, size)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), period / 3)
        sel = noise > np.quantile(noise, rng.uniform(0.4, 0.8))
    out[sel] = b
    return out


def _luminance(rgb: U8) -> F32:
    x = rgb.astype(np.float32) / 255.0
    return np.asarray(0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2], np.float32)


def _paint(rgb: U8, region: F32, albedo: F32, shade: F32) -> U8:
    new = albedo * shade[..., None] * 255.0
    r = region[..., None]
    out = rgb.astype(np.float32) * (1 - r) + new * r
    return np.clip(out, 0, 255).astype(np.uint8)


def _forehead_lab(rgb: U8, pts: npt.NDArray[np.float64]) -> F32:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    size = rgb.shape[0]
    top = np.clip(np.round(pts[[10, 151, 9], 1]).astype(int), 0, size - 1)
    xs = np.clip(np.round(pts[[10, 151, 9], 0]).astype(int), 0, size - 1)
    y0, y1 = int(top.min()), max(int(top.max()), int(top.min()) + 1)
    x0 = max(int(xs.mean()) - size // 8, 0)
    patch = lab[y0 : y1 + 1, x0 : x0 + size // 4].reshape(-1, 3)
    return np.asarray(np.median(patch, axis=0), np.float32)


def recoloured(rgb: U8, pts: npt.NDArray[np.float64], rng: np.random.Generator) -> U8 | None:
    """``rgb`` (an aligned crop of a masked face; ``pts`` its mesh in the crop) with the cover
    recoloured (module doc); None when too little of the lower face differs from the forehead
    (no cover found to recolour)."""
    size = rgb.shape[0]
    hull = lower_region(pts, size, NOSE_BRIDGE, soft=0.0)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    dist = np.linalg.norm(lab - _forehead_lab(rgb, pts), axis=2)
    differs = (dist > 18).astype(np.float32)
    differs = cv2.morphologyEx(differs, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    region = hull * differs
    if region.sum() < 0.35 * max(hull.sum(), 1.0):
        return None
    region = np.asarray(cv2.GaussianBlur(region, (0, 0), 0.6 * size / 48), np.float32)
    lum = _luminance(rgb)
    inside = lum[region > 0.5]
    ref = float(np.median(inside)) if inside.size else float(lum.mean())
    shade = np.clip(lum / max(ref, 0.05), 0.25, 1.5) * rng.uniform(0.6, 1.0)
    return _paint(rgb, region, random_albedo(size, rng), shade)


def covered(rgb: U8, pts: npt.NDArray[np.float64], rng: np.random.Generator) -> U8:
    """``rgb`` (an aligned crop of a bare face) with a synthetic cover over the nose and mouth
    (module doc)."""
    size = rgb.shape[0]
    top = NOSE_BRIDGE if rng.random() < 0.6 else NOSE_MID
    region = lower_region(pts, size, top)
    lum = _luminance(rgb)
    smooth = cv2.GaussianBlur(lum, (0, 0), size / 8)
    ref = float(np.median(smooth[region > 0.5])) if (region > 0.5).any() else 0.5
    shade = np.clip(smooth / max(ref, 0.05), 0.4, 1.4) * rng.uniform(0.55, 1.0)
    # a few soft folds across the cover
    yy = np.mgrid[0:size, 0:size][0].astype(np.float32)
    shade = shade * (1 + 0.06 * np.sin(yy * 2 * np.pi / rng.uniform(0.1, 0.2) / size))
    return _paint(rgb, region, random_albedo(size, rng), np.asarray(shade, np.float32))


def darkened(rgb: U8, pts: npt.NDArray[np.float64], rng: np.random.Generator) -> U8:
    """``rgb`` (an aligned crop of a bare face) with its lower face darker and greyer - a shadow
    or stubble - its detail kept (module doc)."""
    size = rgb.shape[0]
    region = lower_region(pts, size, NOSE_TIP if rng.random() < 0.5 else NOSE_MID, soft=1.5)
    x = rgb.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    g = rng.uniform(0.3, 1.0)
    x2 = (x * (1 - g) + grey * g) * rng.uniform(0.3, 0.75)
    if rng.random() < 0.4:  # stubble: fine dark speckle
        speck = rng.uniform(0.55, 1.0, (size, size, 1)).astype(np.float32)
        x2 = x2 * speck
    r = region[..., None]
    return np.clip(x * (1 - r) + x2 * r, 0, 255).astype(np.uint8)
