"""Synthetic sunglasses drawn on a face in its photo, around the face mesh's eye contours.

:func:`train.train_glasses.draw_varied_eyewear` draws on the aligned crop, at the places the
eyes are aligned to. Real sunglasses on web photos are often larger than that, sit lower, and
the eye points behind them are guessed, so the aligned crop is off. Here the lenses are drawn
on the photo itself (a region around the eyes, at 4x, shrunk back), placed and sized from the
mesh's two eye contours (:data:`mien.landmarks.topology.RIGHT_EYE_CONTOUR` /
``LEFT_EYE_CONTOUR``) and turned with the eye line; the face's eye points are then jittered
(:func:`train.train_mask.jittered`) and every crop is read from the drawn photo as mien would.

Kinds (:data:`MESH_KINDS`): ``dark`` (tinted lenses 3-45% as bright as the skin, a third
graded), ``mirror`` (a blurred piece of a scene photo or a smooth colour field, over a dark
lens), both at opacity 0.6-1.0 and labelled sunglasses; ``clear`` (a frame with a faint lens,
opacity 0-0.25), labelled eyeglasses but not sunglasses, so a large frame alone does not make
sunglasses. Lens shapes: round, ellipse, aviator (wide at the bottom), wayfarer (wide at the
top), oversized; frames none to thick, black / metal / coloured; specular highlights (soft
spots and streaks); then slight blur, noise and JPEG at quality 30-90 over the region, as on web
photos.

Only training and validation faces go through it (train/train_glasses.py, train/
refit_sunglasses.py); never the test part or the evaluation-only sets.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

from mien.analyzers.attributes.base import FaceContext
from mien.landmarks.topology import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR
from train.train_mask import jittered

#: The kinds drawn, with their sunglasses label.
MESH_KINDS: dict[str, int] = {"dark": 1, "mirror": 1, "clear": 0}
#: The shapes of the lenses.
SHAPES: tuple[str, ...] = ("round", "ellipse", "aviator", "wayfarer", "oversized")
#: Drawing scale of the region (drawn at 4x, shrunk back: smooth edges).
_K = 4
#: How far the eye points are jittered afterwards (fraction of the eye distance).
JITTER = 0.06

_TINTS = np.array(
    [
        (1.0, 1.0, 1.0),
        (1.25, 1.0, 0.75),
        (0.85, 1.05, 0.85),
        (0.8, 0.9, 1.25),
        (1.3, 1.1, 0.6),
        (1.2, 0.85, 0.9),
    ],
    np.float32,
)


def _lens_polygon(
    shape: str, hw: float, hh: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """The outline of one lens of ``shape`` centred on 0, half-size ``hw`` x ``hh``."""
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


def draw_mesh_sunglasses(
    ctx: FaceContext,
    rng: np.random.Generator,
    kind: str,
    scene: npt.NDArray[np.uint8] | None = None,
) -> FaceContext | None:
    """Face 0 of ``ctx`` wearing glasses of ``kind`` (:data:`MESH_KINDS`), drawn on its photo
    from its mesh's eye contours, its eye points jittered; None when it has no mesh."""
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
    dark = kind != "clear"
    eye_half = float(np.mean([np.ptp(e @ rot[:, 0]) for e in eyes])) / 2 * _K
    scale = rng.uniform(1.9, 2.6) if shape == "oversized" else rng.uniform(1.4, 2.1)
    hw = min(max(eye_half * scale, 0.26 * uk), 0.49 * uk)
    hh = hw * (1.0 if shape == "round" else rng.uniform(0.6, 0.9))
    drop = rng.uniform(0.0, 0.3) * hh  # lenses often sit lower than the eyes
    lens = np.zeros(big.shape[:2], np.float32)
    lens_centres = []
    for side, c in ((-1, centres[0]), (1, centres[1])):
        ck = (c - [x0, y0]) * _K + 0.5
        ck = ck + rot @ np.array([side * rng.uniform(0.0, 0.06) * uk, drop])
        lens_centres.append(ck)
        outline = _lens_polygon(shape, hw, hh, rng) * np.array([side * -1.0, 1.0])
        pts = outline @ rot.T + ck
        cv2.fillPoly(lens, [pts.round().astype(np.int32)], 1.0)
    skin_pts = np.asarray(lens_centres).mean(0) + rot @ np.array([0.0, -0.55 * uk])
    sy, sx = (
        int(np.clip(skin_pts[1], 0, big.shape[0] - 1)),
        int(np.clip(skin_pts[0], 0, big.shape[1] - 1)),
    )
    r = max(2, int(0.08 * uk))
    skin = max(float(np.median(big[max(0, sy - r) : sy + r, max(0, sx - r) : sx + r])), 40.0)
    ys = np.arange(big.shape[0], dtype=np.float32)[:, None] - float(np.mean(lens_centres, 0)[1])
    ys = np.broadcast_to(np.clip(ys / hh, -1.0, 1.2), big.shape[:2])
    tint = _TINTS[int(rng.integers(0, len(_TINTS)))]
    if dark:
        level = skin * float(np.exp(rng.uniform(np.log(0.03), np.log(0.45))))
        grade = 1.0 + (rng.uniform(0.4, 1.4) * (ys + 1) / 2 if rng.random() < 0.33 else 0.0)
        colour = level * tint[None, None, :] * np.asarray(grade)[..., None]
        colour = np.broadcast_to(colour, big.shape).astype(np.float32)
        if kind == "mirror":
            if scene is not None and rng.random() < 0.6:
                sh, sw = scene.shape[:2]
                ch, cw = int(rng.uniform(0.2, 0.6) * sh), int(rng.uniform(0.2, 0.6) * sw)
                sy0 = int(rng.integers(0, max(1, sh - ch)))
                sx0 = int(rng.integers(0, max(1, sw - cw)))
                piece = scene[sy0 : sy0 + ch, sx0 : sx0 + cw].astype(np.float32)
                field = cv2.resize(piece, big.shape[1::-1], interpolation=cv2.INTER_AREA)
                field = cv2.GaussianBlur(field, (0, 0), rng.uniform(1.0, 5.0) * _K)
            else:
                field = cv2.resize(
                    rng.uniform(30, 240, (3, 3, 3)).astype(np.float32),
                    big.shape[1::-1],
                    interpolation=cv2.INTER_CUBIC,
                )
            mix = rng.uniform(0.4, 0.9)
            colour = colour * (1 - mix) + field * mix * rng.uniform(0.5, 1.1)
        alpha = rng.uniform(0.6, 1.0)
    else:
        colour = big * tint[None, None, :] * rng.uniform(0.85, 1.05)
        alpha = rng.uniform(0.0, 0.25)
    a = lens[..., None] * alpha
    out = big * (1 - a) + colour * a
    if dark or rng.random() < 0.4:  # specular highlights: soft spots and streaks on the lens
        spec = np.zeros(big.shape[:2], np.float32)
        for _ in range(int(rng.integers(1, 4))):
            c = lens_centres[int(rng.integers(0, 2))] + rng.uniform(-0.6, 0.6, 2) * [hw, hh]
            if rng.random() < 0.5:
                axes = (
                    max(1, int(rng.uniform(0.05, 0.3) * hw)),
                    max(1, int(rng.uniform(0.05, 0.2) * hh)),
                )
                turn = rng.uniform(0, 180)
                cv2.ellipse(spec, (int(c[0]), int(c[1])), axes, turn, 0, 360, 1.0, -1)
            else:
                v = rot @ np.array([np.cos(rng.uniform(0.6, 1.2)), -np.sin(rng.uniform(0.6, 1.2))])
                p0, p1 = c - v * hh * 0.8, c + v * hh * 0.8
                cv2.line(
                    spec,
                    (int(p0[0]), int(p0[1])),
                    (int(p1[0]), int(p1[1])),
                    1.0,
                    max(1, int(rng.uniform(0.03, 0.12) * uk)),
                )
        spec = cv2.GaussianBlur(spec, (0, 0), rng.uniform(0.5, 3.0) * _K) * lens
        spec = spec / max(1e-3, float(spec.max())) * rng.uniform(0.2, 0.8)
        out = out * (1 - spec[..., None]) + 255.0 * spec[..., None]
    t = round(rng.uniform(0.0, 0.1) * uk)
    if t > 0 or not dark:
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
    small = cv2.resize(np.clip(out, 0, 255), (pw, ph), interpolation=cv2.INTER_AREA)
    small = _web_photo(small, rng)
    rgb = ctx.rgb.copy()
    rgb[y0:y1, x0:x1] = small
    drawn = replace(ctx, rgb=rgb, _crops={}, _net_outputs={}, _verdicts={}, _sharpness={})
    return jittered(drawn, rng, JITTER)


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
