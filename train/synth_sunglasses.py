"""Synthetic sunglasses drawn on a face in its photo, around the face mesh's eye contours.

:func:`train.train_glasses.draw_varied_eyewear` draws on the aligned crop, at the places the
eyes are aligned to. Real sunglasses on web photos are often larger than that, sit lower, and
the eye points behind them are guessed, so the aligned crop is off. Here the lenses are drawn
on the photo itself (a region around the eyes, at 4x, shrunk back), placed and sized from the
mesh's two eye contours (:data:`mien.landmarks.topology.RIGHT_EYE_CONTOUR` /
``LEFT_EYE_CONTOUR``: each lens as wide as its own eye allows, so a turned head gets a narrower
far lens) and turned with the eye line. Then (version 5) mien's own pipeline finds the face
again in the drawn photo (:func:`redetected`), so its eye points, mesh and iris points are
guessed through the drawn lenses as they are on real photos (version 4 jittered the bare face's
eye points instead, :func:`train.train_mask.jittered`), and every crop is read from the drawn
photo as mien would.

A lens lets a share ``t`` of the light through (it multiplies what is behind it, tinted), plus a
faint haze. **The opacity boundary** (version 5): sunglasses let through at most
:data:`SUN_TRANSMISSION` (2-35% at the eye's height: the eye is at most faintly seen);
light tints let through :data:`TINT_TRANSMISSION` (65-90%: the eye plainly seen) and are NOT
sunglasses; clear lenses 90-100%. Lenses between 35% and 65% are not drawn (no label is sure
there).

Kinds (:data:`MESH_KINDS`, their sunglasses label; :data:`MESH_GLASSES`, their eyeglasses
label):

* ``dark`` (1): grey / black, brown, green, blue, amber or rose tints, a third graded (dark at
  the top, lighter below);
* ``mirror`` (1): a dark lens under a reflection - a blurred piece of a scene photo, a sky
  (blue above, a pale horizon, darker ground) or a smooth colour field (silver, gold, blue...);
* ``tint`` (0): a light tint, the eye seen through it;
* ``clear`` (0): a frame with a clear lens;
* ``fringe`` (0, and no glasses): the bare face with hair or a brim over the forehead and brows
  (never over the eyes), so that a dark upper face is not read as sunglasses.

Lens shapes (:data:`SHAPES`): round, ellipse, aviator / teardrop (wide at the bottom), wayfarer
(trapezoid, wide at the top), oversized, cat-eye (upswept outer corners); frames none (rimless)
to thick, black / metal / coloured; specular highlights (soft spots, streaks, sometimes a broad
washed-out glare); on a quarter of the faces of every kind hair or a brim over the upper part
of the region (over at most the upper third of the lenses); then slight blur, noise and JPEG at
quality 30-90 over the region, as on web photos.

Only training and validation faces go through it (train/train_glasses.py, train/
refit_sunglasses.py); never the test part or the evaluation-only sets.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

import mien
from mien.analyzers.attributes.base import FaceContext
from mien.landmarks.topology import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR
from train.common import face_in_crop, pipeline
from train.train_mask import jittered

#: The kinds drawn, with their sunglasses label.
MESH_KINDS: dict[str, int] = {"dark": 1, "mirror": 1, "tint": 0, "clear": 0, "fringe": 0}
#: Their eyeglasses label (``fringe``: no glasses drawn).
MESH_GLASSES: dict[str, int] = {"dark": 1, "mirror": 1, "tint": 1, "clear": 1, "fringe": 0}
#: The shapes of the lenses.
SHAPES: tuple[str, ...] = ("round", "ellipse", "aviator", "wayfarer", "oversized", "cat-eye")
#: Share of the light a sunglasses lens lets through at the eye's height (lowest, highest).
SUN_TRANSMISSION: tuple[float, float] = (0.02, 0.35)
#: Share of the light a light tint (not sunglasses) lets through.
TINT_TRANSMISSION: tuple[float, float] = (0.65, 0.90)
#: Share of the faces of each kind with hair or a brim over the upper part of the region.
OCCLUDED = 0.25
#: Drawing scale of the region (drawn at 4x, shrunk back: smooth edges).
_K = 4
#: How far the eye points are jittered afterwards (fraction of the eye distance).
JITTER = 0.06

#: Lens tints (RGB multipliers): grey, brown, green, blue, amber, rose.
_TINTS = np.array(
    [
        (1.0, 1.0, 1.0),
        (1.25, 1.0, 0.7),
        (0.8, 1.1, 0.8),
        (0.75, 0.9, 1.3),
        (1.3, 1.1, 0.6),
        (1.2, 0.85, 0.9),
    ],
    np.float32,
)
#: Mirror coatings (RGB, 0-255): silver, gold, blue, green, pink, purple.
_COATINGS = np.array(
    [
        (200, 205, 210),
        (220, 180, 90),
        (70, 130, 230),
        (80, 200, 140),
        (230, 130, 170),
        (150, 90, 210),
    ],
    np.float32,
)


def _lens_polygon(
    shape: str, hw: float, hh: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """The outline of one lens of ``shape`` centred on 0, half-size ``hw`` x ``hh``, the outer
    side (away from the nose) at +x."""
    t = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    x, y = np.cos(t), np.sin(t)
    if shape == "round":
        x, y = x * hw, y * hw
    elif shape in ("ellipse", "oversized"):
        p = rng.uniform(2.0, 3.5)  # superellipse: from an ellipse to a rounded rectangle
        x = np.sign(x) * np.abs(x) ** (2 / p) * hw
        y = np.sign(y) * np.abs(y) ** (2 / p) * hh
    elif shape == "aviator":  # teardrop: wider and deeper below
        x = x * hw * (1.0 + 0.12 * np.clip(y, 0, 1))
        y = np.where(y > 0, y * hh * 1.25, y * hh * 0.8)
    elif shape == "cat-eye":  # the upper outer corner swept up and out
        lift = np.clip(x, 0, 1) ** 2 * np.clip(-y, 0, 1)
        x = x * hw * (1.0 + 0.15 * lift)
        y = y * hh - rng.uniform(0.3, 0.6) * hh * lift
    else:  # wayfarer: trapezoid, wide at the top
        p = 4.0
        x = np.sign(x) * np.abs(x) ** (2 / p) * hw * (1.0 - 0.15 * np.clip(y, 0, 1))
        y = np.sign(y) * np.abs(y) ** (2 / p) * hh
    return np.stack([x, y], 1)


def _region(ctx: FaceContext, centres: npt.NDArray[np.float64], u: float) -> tuple[int, ...]:
    h, w = ctx.rgb.shape[:2]
    x0 = int(max(0, np.floor(centres[:, 0].min() - 1.3 * u)))
    x1 = int(min(w, np.ceil(centres[:, 0].max() + 1.3 * u)))
    y0 = int(max(0, np.floor(centres[:, 1].min() - 1.0 * u)))
    y1 = int(min(h, np.ceil(centres[:, 1].max() + 1.0 * u)))
    return x0, y0, x1, y1


def _reflection(
    shape: tuple[int, int], rng: np.random.Generator, scene: npt.NDArray[np.uint8] | None, k: float
) -> npt.NDArray[np.float32]:
    """What a mirrored lens reflects, ``shape`` (h, w) RGB: a blurred piece of ``scene``, a sky
    or a smooth coating colour field."""
    h, w = shape
    pick = rng.random()
    if scene is not None and pick < 0.45:
        sh, sw = scene.shape[:2]
        ch, cw = int(rng.uniform(0.2, 0.6) * sh), int(rng.uniform(0.2, 0.6) * sw)
        sy0 = int(rng.integers(0, max(1, sh - ch)))
        sx0 = int(rng.integers(0, max(1, sw - cw)))
        piece = scene[sy0 : sy0 + ch, sx0 : sx0 + cw].astype(np.float32)
        field = cv2.resize(piece, (w, h), interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.GaussianBlur(field, (0, 0), rng.uniform(1.0, 5.0) * k), np.float32)
    if pick < 0.7:  # a sky: blue above, a pale horizon, darker ground below
        ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        horizon = rng.uniform(0.4, 0.8)
        sky = np.array([rng.uniform(60, 150), rng.uniform(120, 200), rng.uniform(200, 255)])
        pale = np.full(3, rng.uniform(200, 250))
        ground = rng.uniform(30, 120, 3)
        top = sky + (pale - sky) * np.clip(ys / horizon, 0, 1)
        field = np.where(ys < horizon, top, ground + 0 * ys).astype(np.float32)
        field = np.broadcast_to(field, (h, w, 3))
        return np.asarray(cv2.GaussianBlur(field, (0, 0), rng.uniform(1.0, 4.0) * k), np.float32)
    base = _COATINGS[int(rng.integers(0, len(_COATINGS)))]
    small = base[None, None, :] * rng.uniform(0.6, 1.2, (3, 3, 1)).astype(np.float32)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), np.float32)


def _occluder(
    big: npt.NDArray[np.float32],
    rng: np.random.Generator,
    y_at: float,
    rot: npt.NDArray[np.float64],
) -> npt.NDArray[np.float32]:
    """Hair or a brim over everything above a wavy, slanted line through height ``y_at`` of the
    drawn region (turned with the eye line ``rot``)."""
    h, w = big.shape[:2]
    xs = np.arange(w, dtype=np.float32)
    slope = float(rot[1, 0] / max(rot[0, 0], 1e-3)) + rng.normal(0.0, 0.15)
    wave = rng.uniform(0.0, 0.04) * h * np.sin(xs / w * rng.uniform(2, 9) + rng.uniform(0, 6))
    edge = y_at + slope * (xs - w / 2) + wave
    ys = np.arange(h, dtype=np.float32)[:, None]
    cover = (ys < edge[None, :]).astype(np.float32)
    cover = cv2.GaussianBlur(cover, (0, 0), rng.uniform(0.5, 2.0) * _K)
    if rng.random() < 0.7:  # hair: dark to brown, strands
        col = (
            np.array([1.0, 0.85, 0.7]) * rng.uniform(10, 90)
            if rng.random() < 0.5
            else np.full(3, rng.uniform(5, 60))
        )
        strands = rng.normal(1.0, 0.25, (1, w)).astype(np.float32)
        strands = cv2.GaussianBlur(strands, (0, 0), rng.uniform(1, 3) * _K)
        layer = col[None, None, :].astype(np.float32) * np.clip(strands, 0.3, 1.8)[..., None]
    else:  # a brim or a hood: a flat colour, shaded
        col = rng.uniform(0, 230, 3)
        shade = np.clip(1.0 - 0.5 * (ys / h), 0.4, 1.0).astype(np.float32)
        layer = col[None, None, :].astype(np.float32) * shade[..., None]
    layer = np.broadcast_to(layer, big.shape)
    return np.asarray(big * (1 - cover[..., None]) + layer * cover[..., None], np.float32)


def draw_mesh_sunglasses(
    ctx: FaceContext,
    rng: np.random.Generator,
    kind: str,
    scene: npt.NDArray[np.uint8] | None = None,
    redetect: bool = True,
) -> FaceContext | None:
    """Face 0 of ``ctx`` wearing glasses of ``kind`` (:data:`MESH_KINDS`), drawn on its photo
    from its mesh's eye contours, then found again by mien's pipeline in the drawn photo
    (:func:`redetected`; ``redetect=False``: its eye points jittered instead, as up to version
    4); None when it has no mesh or is not found again."""
    if not ctx.has_mesh(0):
        return None
    mesh = np.asarray(ctx.mesh[0, :, :2], np.float64)
    eyes = [mesh[list(c)] for c in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR)]
    centres = np.stack([e.mean(0) for e in eyes])
    d = centres[1] - centres[0]
    u = float(np.hypot(*d))
    if u < 4:
        return None
    angle = float(np.arctan2(d[1], d[0]))
    x0, y0, x1, y1 = _region(ctx, centres, u)
    patch = ctx.rgb[y0:y1, x0:x1].astype(np.float32)
    ph, pw = patch.shape[:2]
    big = cv2.resize(patch, (pw * _K, ph * _K), interpolation=cv2.INTER_LINEAR)
    uk = u * _K
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
    widths = [float(np.ptp(e @ rot[:, 0])) for e in eyes]
    eye_half = float(np.mean(widths)) / 2 * _K
    scale = rng.uniform(1.9, 2.6) if shape == "oversized" else rng.uniform(1.4, 2.2)
    hw = min(max(eye_half * scale, 0.26 * uk), 0.49 * uk)
    hh = hw * (1.0 if shape == "round" else rng.uniform(0.6, 0.9))
    drop = rng.uniform(0.0, 0.3) * hh  # lenses often sit lower than the eyes
    glasses = kind != "fringe"
    lens = np.zeros(big.shape[:2], np.float32)
    lens_centres = []
    for side, c, wd in ((-1, centres[0], widths[0]), (1, centres[1], widths[1])):
        ck = (c - [x0, y0]) * _K + 0.5
        ck = ck + rot @ np.array([side * rng.uniform(0.0, 0.06) * uk, drop])
        lens_centres.append(ck)
        # a turned head: the far eye looks narrower, and so does its lens
        narrow = float(np.clip(wd / max(np.mean(widths), 1e-3), 0.6, 1.15))
        outline = _lens_polygon(shape, hw * narrow, hh, rng) * np.array([side * 1.0, 1.0])
        pts = outline @ rot.T + ck
        cv2.fillPoly(lens, [pts.round().astype(np.int32)], 1.0)
    lens = cv2.GaussianBlur(lens, (0, 0), 0.6 * _K / 2)
    mid_y = float(np.mean(lens_centres, 0)[1])
    skin_pts = np.asarray(lens_centres).mean(0) + rot @ np.array([0.0, -0.55 * uk])
    sy, sx = (
        int(np.clip(skin_pts[1], 0, big.shape[0] - 1)),
        int(np.clip(skin_pts[0], 0, big.shape[1] - 1)),
    )
    r = max(2, int(0.08 * uk))
    skin = max(float(np.median(big[max(0, sy - r) : sy + r, max(0, sx - r) : sx + r])), 40.0)
    ys = np.arange(big.shape[0], dtype=np.float32)[:, None] - mid_y
    ys = np.broadcast_to(np.clip(ys / hh, -1.0, 1.2), big.shape[:2])
    tint = _TINTS[int(rng.integers(0, len(_TINTS)))]
    out = big
    if glasses:
        if kind in ("dark", "mirror"):
            lo, hi = SUN_TRANSMISSION
            t_eye = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            if kind == "mirror":
                t_eye = min(t_eye, 0.2)
        elif kind == "tint":
            t_eye = rng.uniform(*TINT_TRANSMISSION)
        else:
            t_eye = rng.uniform(0.9, 1.0)
        if kind == "dark" and rng.random() < 0.33:  # graded: dark at the top, lighter below
            g = rng.uniform(0.5, 2.0)
            trans = t_eye * (1.0 + g * ys)
            trans = np.clip(trans, 0.3 * t_eye, 0.6)
        else:
            trans = np.full(big.shape[:2], t_eye, np.float32)
        haze = skin * rng.uniform(0.0, 0.06) if kind in ("dark", "mirror") else 0.0
        tinted = big * np.asarray(trans, np.float32)[..., None] * tint[None, None, :]
        colour = tinted + haze * tint[None, None, :]
        if kind == "mirror":
            field = _reflection(big.shape[:2], rng, scene, _K)
            mix = rng.uniform(0.3, 0.85)
            colour = colour * (1 - mix) + field * mix
        a = lens[..., None]
        out = big * (1 - a) + colour * a
        if kind != "clear" or rng.random() < 0.4:  # highlights: spots, streaks, a broad glare
            spec = np.zeros(big.shape[:2], np.float32)
            for _ in range(int(rng.integers(1, 4))):
                c = lens_centres[int(rng.integers(0, 2))] + rng.uniform(-0.6, 0.6, 2) * [hw, hh]
                pick = rng.random()
                if pick < 0.4:
                    axes = (
                        max(1, int(rng.uniform(0.05, 0.3) * hw)),
                        max(1, int(rng.uniform(0.05, 0.2) * hh)),
                    )
                    turn = rng.uniform(0, 180)
                    cv2.ellipse(spec, (int(c[0]), int(c[1])), axes, turn, 0, 360, 1.0, -1)
                elif pick < 0.8:
                    a0 = rng.uniform(0.6, 1.2)
                    v = rot @ np.array([np.cos(a0), -np.sin(a0)])
                    p0, p1 = c - v * hh * 0.8, c + v * hh * 0.8
                    cv2.line(
                        spec,
                        (int(p0[0]), int(p0[1])),
                        (int(p1[0]), int(p1[1])),
                        1.0,
                        max(1, int(rng.uniform(0.03, 0.12) * uk)),
                    )
                else:  # a broad washed-out glare over part of a lens
                    axes = (max(1, int(rng.uniform(0.4, 0.9) * hw)), max(1, int(0.6 * hh)))
                    cv2.ellipse(
                        spec, (int(c[0]), int(c[1])), axes, rng.uniform(0, 180), 0, 360, 0.7, -1
                    )
            spec = cv2.GaussianBlur(spec, (0, 0), rng.uniform(0.5, 3.0) * _K) * lens
            spec = spec / max(1e-3, float(spec.max())) * rng.uniform(0.2, 0.8)
            out = out * (1 - spec[..., None]) + 255.0 * spec[..., None]
        t = round(rng.uniform(0.0, 0.18) * uk) if rng.random() > 0.2 else 0  # 20% rimless
        if t > 0 or kind == "clear":
            t = max(t, 1)
            inside = (lens > 0.5).astype(np.uint8)
            frame = cv2.dilate(inside, np.ones((2 * t + 1, 2 * t + 1), np.uint8)) - inside
            a0, a1 = lens_centres
            bridge = a0 + rot @ np.array([hw, -0.4 * hh]), a1 + rot @ np.array([-hw, -0.4 * hh])
            cv2.line(frame, tuple(bridge[0].astype(int)), tuple(bridge[1].astype(int)), 1, t)
            for side, c in ((-1, a0), (1, a1)):
                e0 = c + rot @ np.array([side * hw, -0.5 * hh])
                e1 = c + rot @ np.array([side * 1.6 * uk, -0.6 * hh])
                cv2.line(frame, tuple(e0.astype(int)), tuple(e1.astype(int)), 1, t)
            pick = rng.random()
            if pick < 0.55:
                fcol = np.full(3, rng.uniform(0, 60), np.float32)
            elif pick < 0.8:
                fcol = np.full(3, rng.uniform(140, 230), np.float32) * tint
            else:
                fcol = rng.uniform(0, 255, 3).astype(np.float32)
            m = frame.astype(np.float32)[..., None]
            out = out * (1 - m) + fcol[None, None, :] * m
    if kind == "fringe":  # hair or a brim down to between the brows and the eyes
        out = _occluder(out, rng, mid_y - rng.uniform(0.25, 0.6) * uk, rot)
    elif rng.random() < OCCLUDED:  # over at most the upper third of the lenses
        out = _occluder(out, rng, mid_y - hh + rng.uniform(-0.6, 0.66) * hh, rot)
    small = cv2.resize(np.clip(out, 0, 255), (pw, ph), interpolation=cv2.INTER_AREA)
    small = _web_photo(small, rng)
    rgb = ctx.rgb.copy()
    rgb[y0:y1, x0:x1] = small
    drawn = replace(ctx, rgb=rgb, _crops={}, _net_outputs={}, _verdicts={}, _sharpness={})
    return redetected(drawn) if redetect else jittered(drawn, rng, JITTER)


_ANALYZER: list[mien.FaceAnalyzer] = []


def redetected(drawn: FaceContext) -> FaceContext | None:
    """Face 0 of ``drawn`` found again by mien's own pipeline (:func:`train.common.pipeline`) in
    a window around its box (the box plus 0.6 of its size on each side) of the drawn photo: its
    box, eye points, mesh and pose as mien guesses them through the drawn lenses (on the
    validation faces they move a median 0.16 eye distances from the bare face's; a Gaussian
    jitter of 0.06 stood for this up to version 4). None when the face is not found again (mien
    would not judge it either)."""
    if not _ANALYZER:
        _ANALYZER.append(pipeline())
    x0, y0, x1, y1 = (float(v) for v in drawn.boxes[0])
    h, w = drawn.rgb.shape[:2]
    cx0, cy0 = int(max(0, x0 - 0.6 * (x1 - x0))), int(max(0, y0 - 0.6 * (y1 - y0)))
    cx1, cy1 = int(min(w, x1 + 0.6 * (x1 - x0))), int(min(h, y1 + 0.6 * (y1 - y0)))
    sub = face_in_crop(_ANALYZER[0], np.ascontiguousarray(drawn.rgb[cy0:cy1, cx0:cx1]))
    if sub is None:
        return None
    shift = np.array([cx0, cy0], np.float32)
    mesh = sub.mesh.copy()
    mesh[..., :2] += shift
    return replace(
        drawn,
        boxes=sub.boxes + np.tile(shift, 2),
        landmarks=sub.landmarks + shift,
        mesh=mesh,
        head_pose=sub.head_pose,
        _crops={},
        _net_outputs={},
        _verdicts={},
        _sharpness={},
    )


def _web_photo(x: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Slight blur, noise and JPEG compression, as on web photos."""
    if rng.random() < 0.4:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.0))
    if rng.random() < 0.5:
        x = x + rng.normal(0.0, rng.uniform(1.0, 5.0), x.shape).astype(np.float32)
    img = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return np.asarray(img, np.uint8)
