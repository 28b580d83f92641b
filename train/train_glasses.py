"""Train the ``eyeglasses`` and ``sunglasses`` heads.

Training data (every face goes through mien's own pipeline, :func:`train.common.pipeline`):

* ``olivetti_glasses`` (credit: Olivetti Research Laboratory): 64x64 grey frontal faces with a
  published eyeglasses labelling; never sunglasses. Split by subject.
* ``cmu_faces_sunglasses_pose`` (CMU "Face Images", T. Mitchell; UCI, education and research
  use): grey faces with and without sunglasses in four poses. Split by subject. Several
  subjects wear clear glasses whenever they do not wear sunglasses; which ones was read off the
  pictures by eye (``train/labels/cmu_eyeglasses_subjects.csv``).
* ``facemask_kaggle_voc`` (CC0): faces >= 40 px of its photos, labelled for eyeglasses and
  sunglasses by eye (``train/labels/facemask_headwear_eyewear.csv``); split by photo exactly
  like the mask head (train/train_mask.py), so the test photos stay unseen.
* Synthetic eyewear drawn on the training faces that wear none (:func:`draw_varied_eyewear`:
  clear frames, light tints, dark, graded and mirrored lenses, several frame and lens shapes) -
  real sunglasses in the data are almost all one model (CMU), and the heads must see the
  variety of real ones. (:func:`draw_eyewear`, the simpler drawing of the first heads, is kept
  for train/train_mask.py.)

Each part is split train / validation / test (60/20/20 by subject or photo, fixed seed). On the
train part (each face as it is and in :data:`COPIES` copies with jittered alignment, blur,
resolution, contrast, colour and mirroring, plus the synthetic eyewear) one small network
(train/cnn.py, 2 outputs: glasses worn, dark lenses; multi-label, one thread, PyTorch) is
trained on the grey 48x48 eye crops. Then the ``eyeglasses`` head is a logistic regression over
its 2 logits and :func:`mien.analyzers.attributes.glasses.lens_measurements` (fitted on the
train part), and the ``sunglasses`` head is refitted over the fixed network by
train/refit_sunglasses.py (run at the end: a logistic regression over both logits, the lens
measurements and :func:`mien.analyzers.attributes.glasses.iris_measurements`,
Platt-calibrated on the validation part with synthetic lenses drawn on its bare faces; version
3, an isotonic-calibrated dark-lens logit before); eyeglasses is Platt-calibrated on the
validation part, real faces as they are (version 3; an isotonic table before).
Those choices were made on the validation part (docs/attributes.md); the heads are measured on
test and on the evaluation-only sets by bench/attributes_cover.py. Each head file carries the
network (ONNX).
Needs the training extras (``pip install -e '.[train]'``: scikit-learn, PyTorch).

Usage::

    .venv/bin/python train/train_glasses.py           # writes attr_{eyeglasses,sunglasses}.npz
    .venv/bin/python train/train_glasses.py --check   # train and report, write nothing
    .venv/bin/python train/train_glasses.py --sunglasses-only   # how sunglasses v4 was written

The shipped eyeglasses head (version 3, and its network) was written by this script as it was at
commit 4dcf0fd (20 epochs, without the glasses drawn in the photos). Sunglasses version 4
(issue 17, attr-sun: a network of its own, trained for 12 epochs with the glasses drawn in the
face-mask training photos by train/synth_sunglasses.py) is written by ``--sunglasses-only``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import glasses as G
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.heads import ConvNet, Head, to_gray
from train.common import (
    REPO,
    SEED,
    CachedPipeline,
    Fitted,
    calibrate,
    classification_report,
    face_in_crop,
    fit_linear,
    group_split,
    platt,
    require_data,
    write_head,
)
from train.synth_sunglasses import MESH_KINDS, draw_mesh_sunglasses
from train.train_mask import DEFAULT_CACHE, facemask_faces, jittered, split

LABELS = REPO / "train" / "labels"
FRACTIONS = (0.6, 0.2, 0.2)
PARTS = ("train", "validation", "test")


@dataclass
class EyeFace:
    """A face with eyewear labels (None: not labelled / unsure)."""

    source: str  # data set
    key: str  # file, or "photo:xmin,ymin,xmax,ymax"
    group: str  # subject or photo
    part: str  # train / validation / test / eval (evaluation-only sets)
    ctx: FaceContext | None
    eyeglasses: int | None
    sunglasses: int | None


def _read_rgb(path: Path) -> npt.NDArray[np.uint8]:
    if path.suffix.lower() == ".pgm":  # mien's reader takes no PGM (CMU's format)
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), np.uint8)
    from mien.media.image import load_image

    return load_image(path).rgb


def _crop_set(
    name: str,
    cache_dir: Path | None,
    label: Callable[[dict[str, str]], tuple[int | None, int | None]],
    group: Callable[[dict[str, str]], str],
    images: str = "images",
) -> list[tuple[dict[str, str], FaceContext | None, int | None, int | None, str]]:
    root = require_data(name)
    cache = CachedPipeline(None if cache_dir is None else cache_dir / f"{name}.npz")
    out = []
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        path = root / images / r["file"] if images else root / r["file"]
        ctx = face_in_crop(cache.for_key(r["file"]), _read_rgb(path))
        eg, sg = label(r)
        out.append((r, ctx, eg, sg, group(r)))
    cache.save()
    return out


def _subject_parts(groups: list[str], positive: list[int]) -> list[str]:
    """Part of each row, split by subject 60/20/20 separately among the subjects who wear
    glasses in some picture and those who never do (so that every part has both)."""
    wearers = {g for g, p in zip(groups, positive, strict=True) if p}
    out = [""] * len(groups)
    for stratum in (True, False):
        rows = [i for i, g in enumerate(groups) if (g in wearers) == stratum]
        parts = group_split([groups[i] for i in rows], FRACTIONS, seed=SEED)
        for p, idx in zip(PARTS, parts, strict=True):
            for j in idx:
                out[rows[int(j)]] = p
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _opt(v: str) -> int | None:
    return int(v) if v.strip() else None


def eyewear_faces(cache_dir: Path | None = DEFAULT_CACHE) -> list[EyeFace]:
    """Every labelled face of the eyewear data, with its part (train/validation/test/eval)."""
    faces: list[EyeFace] = []

    def add(name: str, rows: list, parts: list[str] | None) -> None:  # type: ignore[type-arg]
        for k, (r, ctx, eg, sg, grp) in enumerate(rows):
            part = parts[k] if parts is not None else "eval"
            faces.append(EyeFace(name, r["file"], grp, part, ctx, eg, sg))

    rows = _crop_set(
        "olivetti_glasses", cache_dir, lambda r: (int(r["eyeglasses"]), 0), lambda r: r["subject"]
    )
    add("olivetti_glasses", rows, _subject_parts([r[4] for r in rows], [r[2] or 0 for r in rows]))

    cmu_glasses = {
        r["subject"]: int(r["eyeglasses_without_sunglasses"])
        for r in _csv(LABELS / "cmu_eyeglasses_subjects.csv")
    }
    rows = _crop_set(
        "cmu_faces_sunglasses_pose",
        cache_dir,
        lambda r: (max(int(r["sunglasses"]), cmu_glasses[r["subject"]]), int(r["sunglasses"])),
        lambda r: r["subject"],
    )
    add(
        "cmu_faces_sunglasses_pose",
        rows,
        _subject_parts([r[4] for r in rows], [cmu_glasses[r[4]] for r in rows]),
    )

    # Face-mask photos: the hand-labelled faces, in the mask head's photo split.
    labelled = {
        (r["image"], tuple(float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax"))): r
        for r in _csv(LABELS / "facemask_headwear_eyewear.csv")
    }
    boxed = facemask_faces(cache_dir)
    part_of = {}
    for p, idx in zip(PARTS, split(boxed), strict=True):
        for i in idx:
            part_of[int(i)] = p
    for i, f in enumerate(boxed):
        lab = labelled.get((f.image, f.box))
        if lab is None or f.ctx is None:
            continue
        key = f"{f.image}:{','.join(str(int(v)) for v in f.box)}"
        faces.append(
            EyeFace(
                "facemask_kaggle_voc",
                key,
                f.image,
                part_of[i],
                f.ctx,
                _opt(lab["eyeglasses"]),
                _opt(lab["sunglasses"]),
            )
        )

    # Evaluation only.
    slinko_sg = {
        r["file"]: _opt(r["sunglasses"]) for r in _csv(LABELS / "glasses_slinko_sunglasses.csv")
    }
    rows = _crop_set(
        "glasses_slinko",
        cache_dir,
        lambda r: (int(r["eyeglasses_any"]), slinko_sg.get(r["file"])),
        lambda r: r["file"],
    )
    add("glasses_slinko", rows, None)
    rows = _crop_set(
        "meglass_samples",
        cache_dir,
        lambda r: (int(r["eyeglasses_black"]), None),
        lambda r: r["file"],
        images="",
    )
    add("meglass_samples", rows, None)
    rows = _crop_set("sunglasses_selfies_scraped", cache_dir, lambda r: (1, 1), lambda r: r["file"])
    add("sunglasses_selfies_scraped", rows, None)
    return faces


# -- augmentation ----------------------------------------------------------------------------


def photometric(rgb: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Resolution loss, blur, gamma, contrast, colour cast, noise, mirroring."""
    x: npt.NDArray[np.integer | np.floating] = rgb.astype(np.float32)
    size = x.shape[0]
    r = rng.random()
    if r < 0.35:
        s = int(rng.choice([8, 10, 12, 16, 20]))
        small = cv2.resize(x, (s, s), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    elif r < 0.55:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 1.5)))
    x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** float(np.exp(rng.normal(0.0, 0.3)))
    mean = x.mean()
    x = (x - mean) * float(np.exp(rng.normal(0.0, 0.25))) + mean + float(rng.normal(0.0, 12.0))
    x = x * np.exp(rng.normal(0.0, 0.08, 3)).astype(np.float32)
    if rng.random() < 0.5:
        x = x + rng.normal(0.0, rng.uniform(1.0, 6.0), x.shape).astype(np.float32)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    return np.asarray(np.clip(x, 0, 255), np.uint8)


_TINTS = (
    (1.0, 1.0, 1.0),
    (1.25, 1.0, 0.75),
    (0.85, 1.05, 0.85),
    (0.8, 0.92, 1.25),
    (1.2, 0.85, 0.9),
)


def rounded_rect(
    mask: npt.NDArray[np.float32], cx: float, cy: float, hw: float, hh: float, rad: int
) -> None:
    """Fill (with 1) a rectangle centred at (cx, cy), half-sizes (hw, hh), corners of radius rad."""
    x0, y0, x1, y1 = round(cx - hw), round(cy - hh), round(cx + hw), round(cy + hh)
    cv2.rectangle(mask, (x0 + rad, y0), (x1 - rad, y1), 1.0, -1)
    cv2.rectangle(mask, (x0, y0 + rad), (x1, y1 - rad), 1.0, -1)
    for px, py in (
        (x0 + rad, y0 + rad),
        (x1 - rad, y0 + rad),
        (x0 + rad, y1 - rad),
        (x1 - rad, y1 - rad),
    ):
        cv2.circle(mask, (px, py), rad, 1.0, -1)


def streak_line(
    streak: npt.NDArray[np.float32], xs: float, cy: float, hw: float, hh: float, thickness: int
) -> None:
    """A reflection streak across a lens: a slanted line through (xs, cy)."""
    p0 = (round(xs - 0.3 * hw), round(cy + 0.5 * hh))
    cv2.line(streak, p0, (round(xs + 0.3 * hw), round(cy - 0.5 * hh)), 1.0, thickness)


def draw_eyewear(
    rgb: npt.NDArray[np.uint8],
    rng: np.random.Generator,
    dark: bool,
    eyes: tuple[float, float, float] = (12.0, 36.0, 24.0),
) -> npt.NDArray[np.uint8]:
    """Draw synthetic glasses on a 48x48 eye crop (``glasses.EYE_CROP``).

    ``dark``: sunglasses - lenses 8-70% as bright as the skin (or a mirror-like colour field),
    tinted, often graded, nearly opaque; otherwise clear glasses - a frame with a faint lens.
    ``eyes``: x of the right and left eye and their y in the crop (the default: the eye crop).
    Drawn at 4x and shrunk, so the edges are smooth like a real picture's."""
    k = 4
    size = rgb.shape[0]
    big = cv2.resize(rgb, (size * k, size * k), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    u = (eyes[1] - eyes[0]) * k
    ey = eyes[2] * k + rng.normal(0.0, 0.02) * u
    shape = int(rng.integers(0, 3))  # ellipse, rounded rectangle, round
    hw = rng.uniform(0.22, 0.32) * u
    hh = hw * rng.uniform(0.85, 1.0) if shape == 2 else rng.uniform(0.14, 0.24) * u
    cy = ey + rng.uniform(-0.02, 0.06) * u
    lens = np.zeros(big.shape[:2], np.float32)
    centres = []
    for ex in (eyes[0] * k, eyes[1] * k):
        cx = ex + rng.normal(0.0, 0.02) * u
        centres.append(cx)
        c = (round(cx), round(cy))
        if shape == 1:
            rounded_rect(lens, cx, cy, hw, hh, int(min(hw, hh) * 0.5))
        else:
            cv2.ellipse(lens, c, (round(hw), round(hh)), 0.0, 0.0, 360.0, 1.0, -1)
    x_mid = (eyes[0] + eyes[1]) / 2 * k
    skin = float(
        np.median(
            big[int(ey + 0.6 * u) : int(ey + 0.8 * u), int(x_mid - 0.7 * u) : int(x_mid + 0.7 * u)]
        )
    )
    ys = (np.arange(big.shape[0], dtype=np.float32)[:, None] - cy) / hh
    if dark:
        if rng.random() < 0.2:  # mirror-like: a smooth bright colour field
            field = rng.uniform(40, 230, (3, 3, 3)).astype(np.float32)
            colour = cv2.resize(field, (big.shape[1], big.shape[0]), interpolation=cv2.INTER_CUBIC)
        else:
            level = skin * float(np.exp(rng.uniform(np.log(0.08), np.log(0.7))))
            tint = np.array(_TINTS[int(rng.integers(0, len(_TINTS)))], np.float32)
            grade = 1.0 + rng.uniform(0.0, 0.6) * np.clip(ys, -1.0, 1.0)
            colour = level * tint[None, None, :] * grade[..., None]
            colour = np.broadcast_to(colour, big.shape).astype(np.float32)
        alpha = rng.uniform(0.8, 1.0)
    else:
        tint = np.array(_TINTS[int(rng.integers(0, len(_TINTS)))], np.float32)
        colour = big * tint[None, None, :] * rng.uniform(0.85, 1.05)
        alpha = rng.uniform(0.0, 0.3)
    a = lens[..., None] * alpha
    out = big * (1.0 - a) + colour * a
    if rng.random() < 0.4:  # a reflection streak
        streak = np.zeros(big.shape[:2], np.float32)
        xs = centres[int(rng.integers(0, 2))] + rng.uniform(-0.5, 0.5) * hw
        streak_line(streak, xs, cy, hw, hh, max(1, round(rng.uniform(0.03, 0.1) * u)))
        streak *= lens * rng.uniform(0.2, 0.6)
        out = out * (1.0 - streak[..., None]) + 255.0 * streak[..., None]
    if not dark or rng.random() < 0.75:  # frame, bridge and arms
        frame = np.zeros(big.shape[:2], np.uint8)
        t = max(1, round(rng.uniform(0.03, 0.1 if dark else 0.08) * u))
        edge = cv2.dilate((lens > 0).astype(np.uint8), np.ones((2 * t + 1, 2 * t + 1), np.uint8))
        frame = edge - (lens > 0).astype(np.uint8)
        yb = round(cy - rng.uniform(0.1, 0.6) * hh)
        cv2.line(frame, (round(centres[0] + hw), yb), (round(centres[1] - hw), yb), 1, t)
        cv2.line(frame, (0, yb), (round(centres[0] - hw), yb), 1, t)
        cv2.line(frame, (round(centres[1] + hw), yb), (big.shape[1], yb), 1, t)
        if rng.random() < 0.6:
            fcol = np.full(3, rng.uniform(0, 60), np.float32)
        else:
            fcol = rng.uniform(0, 255, 3).astype(np.float32)
        m = frame.astype(np.float32)[..., None]
        out = out * (1.0 - m) + fcol[None, None, :] * m
    small = cv2.resize(np.clip(out, 0, 255), (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.uint8)


#: Lens tints (RGB factors) of the synthetic glasses.
_VARIED_TINTS = (*_TINTS, (1.3, 1.1, 0.6), (0.7, 0.8, 1.3))
#: Kinds of synthetic eyewear of :func:`draw_varied_eyewear`.
KINDS = ("clear", "tint", "dark", "mirror")


def _lens_shape(
    hw_size: tuple[int, int],
    shape: int,
    centre: tuple[float, float],
    half: tuple[float, float],
    side: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """The filled area (0/1) of one lens: ``shape`` 0 ellipse, 1 rounded rectangle, 2 round,
    3 aviator (drooping toward the nose), 4 cat-eye / browline (outer top corner raised);
    ``side`` -1 for the lens on the picture's left, +1 on its right."""
    cx, cy = centre
    hw, hh = half
    m = np.zeros(hw_size, np.float32)
    if shape == 0:
        cv2.ellipse(m, (round(cx), round(cy)), (round(hw), round(hh)), 0.0, 0.0, 360.0, 1.0, -1)
    elif shape == 1:
        rounded_rect(m, cx, cy, hw, hh, int(min(hw, hh) * rng.uniform(0.2, 0.6)))
    elif shape == 2:
        cv2.circle(m, (round(cx), round(cy)), round(min(hw, hh * 1.1)), 1.0, -1)
    elif shape == 3:
        t = np.linspace(0.0, 2.0 * np.pi, 60)
        xs, ys = np.cos(t), np.sin(t)
        ys = np.where(ys > 0, ys * (1.0 + 0.35 * (-side * xs)), ys * 0.8)
        pts = np.stack([cx + hw * xs, cy + hh * ys], 1).round().astype(np.int32)
        cv2.fillPoly(m, [pts], 1.0)
    else:
        up = rng.uniform(0.1, 0.4) * hh
        outer, inner = cx + side * hw, cx - side * hw
        pts = (
            np.array(
                [
                    (inner, cy - hh),
                    (outer + side * 0.1 * hw, cy - hh - up),
                    (outer - side * 0.1 * hw, cy + 0.6 * hh),
                    (cx, cy + hh),
                    (inner + side * 0.15 * hw, cy + 0.7 * hh),
                ]
            )
            .round()
            .astype(np.int32)
        )
        cv2.fillPoly(m, [pts], 1.0)
        m = (cv2.GaussianBlur(m, (0, 0), max(1.0, 0.08 * hw)) > 0.5).astype(np.float32)
    return m


def draw_varied_eyewear(
    rgb: npt.NDArray[np.uint8],
    rng: np.random.Generator,
    kind: str,
    scene: npt.NDArray[np.uint8] | None = None,
    eyes: tuple[float, float, float] = (12.0, 36.0, 24.0),
) -> tuple[npt.NDArray[np.uint8], int | None]:
    """Draw synthetic glasses of one of :data:`KINDS` on a 48x48 eye crop; returns the crop and
    its ``sunglasses`` label (None for ``tint``: light lenses the eyes show through, left out of
    the sunglasses training). Every kind is ``eyeglasses``.

    * ``clear``: a frame with a faint, slightly tinted lens;
    * ``tint``: lenses passing 55-85% of the light, tinted;
    * ``dark``: lenses 5-60% as bright as the skin, tinted, a third of them graded (dark at the
      top, lighter below), 75-100% opaque;
    * ``mirror``: an opaque smooth colour field, or a blurred piece of ``scene`` (a photo) as a
      reflection.

    Lens shapes: ellipse, rounded rectangle, round, aviator, cat-eye; some oversized, a few
    one-piece shields; frames thin to thick, black, metal or coloured, some rimless or half-rim;
    reflection streaks and glare. Drawn at 4x and shrunk, so the edges are smooth.
    ``eyes``: x of the two eyes and their y in the crop."""
    k = 4
    size = rgb.shape[0]
    big = cv2.resize(rgb, (size * k, size * k), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    h, w = big.shape[:2]
    u = (eyes[1] - eyes[0]) * k
    ey = eyes[2] * k + rng.normal(0.0, 0.02) * u
    shape = int(rng.integers(0, 5))
    dark = kind in ("dark", "mirror")
    shield = dark and rng.random() < 0.08
    oversized = rng.random() < (0.35 if dark else 0.15)
    hw = rng.uniform(0.22, 0.40 if oversized else 0.30) * u
    hh = (
        hw * rng.uniform(0.85, 1.0)
        if shape == 2
        else rng.uniform(0.14, 0.32 if oversized else 0.24) * u
    )
    cy = ey + rng.uniform(-0.03, 0.08) * u
    x_mid = (eyes[0] + eyes[1]) / 2 * k
    lens = np.zeros((h, w), np.float32)
    centres: list[float] = []
    if shield:
        half = rng.uniform(0.85, 1.05) * u
        pts = np.array(
            [
                (x_mid - half, cy - hh * 0.9),
                (x_mid + half, cy - hh * 0.9),
                (x_mid + half * 0.95, cy + hh),
                (x_mid + 0.12 * u, cy + hh * 0.9),
                (x_mid, cy + 0.3 * hh),
                (x_mid - 0.12 * u, cy + hh * 0.9),
                (x_mid - half * 0.95, cy + hh),
            ]
        )
        cv2.fillPoly(lens, [pts.round().astype(np.int32)], 1.0)
        centres = [eyes[0] * k, eyes[1] * k]
    else:
        for side, ex in ((-1, eyes[0] * k), (1, eyes[1] * k)):
            cx = ex + rng.normal(0.0, 0.02) * u + side * rng.uniform(0.0, 0.04) * u
            centres.append(cx)
            lens = np.maximum(lens, _lens_shape((h, w), shape, (cx, cy), (hw, hh), side, rng))
    skin = float(
        np.median(
            big[int(ey + 0.6 * u) : int(ey + 0.8 * u), int(x_mid - 0.7 * u) : int(x_mid + 0.7 * u)]
        )
    )
    skin = max(skin, 30.0)
    ys = np.broadcast_to((np.arange(h, dtype=np.float32)[:, None] - cy) / hh, (h, w))
    sunglasses: int | None
    if kind == "mirror":
        if scene is not None and rng.random() < 0.6:
            src = scene.astype(np.float32)
            sh, sw = src.shape[:2]
            ch, cw = int(rng.uniform(0.2, 0.6) * sh), int(rng.uniform(0.2, 0.6) * sw)
            y0, x0 = int(rng.integers(0, max(1, sh - ch))), int(rng.integers(0, max(1, sw - cw)))
            colour = cv2.resize(
                src[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_AREA
            )
            colour = cv2.GaussianBlur(colour, (0, 0), rng.uniform(1.0, 6.0)) * rng.uniform(0.5, 1.2)
        else:
            field = rng.uniform(30, 240, (3, 3, 3)).astype(np.float32)
            colour = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
        alpha, sunglasses = rng.uniform(0.85, 1.0), 1
    elif kind == "dark":
        level = skin * float(np.exp(rng.uniform(np.log(0.05), np.log(0.6))))
        tint = np.array(_VARIED_TINTS[int(rng.integers(0, len(_VARIED_TINTS)))], np.float32)
        if rng.random() < 0.35:  # graded: dark at the top, lighter below
            grade = 1.0 + rng.uniform(0.3, 1.2) * np.clip((ys + 1) / 2, 0, 1.2)
        else:
            grade = 1.0 + rng.uniform(-0.1, 0.3) * np.clip(ys, -1.0, 1.0)
        colour = np.broadcast_to(level * tint[None, None, :] * grade[..., None], big.shape)
        alpha, sunglasses = rng.uniform(0.75, 1.0), 1
    elif kind == "tint":
        trans = rng.uniform(0.55, 0.85)
        tint = np.array(_VARIED_TINTS[int(rng.integers(0, len(_VARIED_TINTS)))], np.float32)
        colour = big * trans * tint[None, None, :]
        alpha, sunglasses = 1.0, None
    else:
        tint = np.array(_VARIED_TINTS[int(rng.integers(0, len(_VARIED_TINTS)))], np.float32)
        colour = big * tint[None, None, :] * rng.uniform(0.85, 1.08)
        alpha, sunglasses = rng.uniform(0.0, 0.3), 0
    a = lens[..., None] * alpha
    out = big * (1.0 - a) + colour * a
    if rng.random() < 0.45:  # reflection streaks, sometimes a soft glare
        streak = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(1, 3))):
            xs = centres[int(rng.integers(0, 2))] + rng.uniform(-0.5, 0.5) * hw
            streak_line(streak, xs, cy, hw, hh, max(1, round(rng.uniform(0.03, 0.12) * u)))
        if rng.random() < 0.3:
            streak = cv2.GaussianBlur(streak, (0, 0), rng.uniform(2, 8))
            streak = streak / max(1e-3, float(streak.max()))
        streak *= lens * rng.uniform(0.2, 0.7)
        out = out * (1.0 - streak[..., None]) + 255.0 * streak[..., None]
    rimless = rng.random() < (0.25 if dark else 0.12)
    half_rim = (not rimless) and rng.random() < 0.15
    if not rimless or shield:
        t = max(1, round(rng.uniform(0.02, 0.11) * u))
        inside = (lens > 0.5).astype(np.uint8)
        frame = cv2.dilate(inside, np.ones((2 * t + 1, 2 * t + 1), np.uint8)) - inside
        if half_rim:
            frame[int(cy) :, :] = 0
    else:
        frame = np.zeros((h, w), np.uint8)
        t = max(1, round(rng.uniform(0.02, 0.05) * u))
    if not shield:  # bridge
        yb = round(cy - rng.uniform(0.1, 0.7) * hh)
        cv2.line(frame, (round(centres[0] + hw), yb), (round(centres[1] - hw), yb), 1, t)
    yb = round(cy - rng.uniform(0.3, 0.8) * hh)  # arms
    cv2.line(frame, (0, yb), (round(centres[0] - hw), yb), 1, t)
    cv2.line(frame, (round(centres[1] + hw), yb), (w, yb), 1, t)
    r = rng.random()
    if r < 0.55:
        fcol = np.full(3, rng.uniform(0, 60), np.float32)
    elif r < 0.75:  # metal
        fcol = np.full(3, rng.uniform(150, 230), np.float32) * np.array(
            _TINTS[int(rng.integers(0, 2))], np.float32
        )
    else:
        fcol = rng.uniform(0, 255, 3).astype(np.float32)
    m = frame.astype(np.float32)[..., None]
    out = out * (1.0 - m) + fcol[None, None, :] * m
    small = cv2.resize(np.clip(out, 0, 255), (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.uint8), sunglasses


# -- training --------------------------------------------------------------------------------

#: Augmented copies of each real training face (jittered alignment + :func:`photometric`).
COPIES = 3
#: Epochs of the network (20 up to version 3; 12 from version 4, with the glasses drawn in the
#: photos: train/synth_sunglasses.py).
EPOCHS = 12
#: Glasses drawn in the face-mask training photos around the mesh's eye contours, per bare
#: face (train/synth_sunglasses.py).
MESH_DRAWN: tuple[str, ...] = ("dark", "mirror", "clear")
#: Threads used to train the network (the rebuild is byte for byte with the same count).
THREADS = 1


@dataclass
class Rows:
    """Eye crops (RGB 48x48) with both labels (-1: unknown), their source and kind."""

    rgb: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]  # (N, 2): eyeglasses, sunglasses
    source: list[str]
    kind: list[str]


def _label(v: int | None) -> int:
    return -1 if v is None else int(v)


def judgeable(f: EyeFace) -> bool:
    return (
        f.ctx is not None
        and G.unjudgeable(f.ctx, 0) is None
        and (f.eyeglasses is not None or f.sunglasses is not None)
    )


def scene_photos(faces: list[EyeFace]) -> list[npt.NDArray[np.uint8]]:
    """The training photos of the face-mask set (street and indoor scenes): reflections on
    synthetic mirrored lenses."""
    seen: set[str] = set()
    out = []
    for f in faces:
        if (
            f.part == "train"
            and f.source == "facemask_kaggle_voc"
            and f.ctx is not None
            and f.group not in seen
        ):
            seen.add(f.group)
            out.append(f.ctx.rgb)
    return out


def crops_of(
    faces: list[EyeFace],
    part: str,
    rng: np.random.Generator,
    copies: int = 0,
    synthetic: bool = False,
    scenes: list[npt.NDArray[np.uint8]] | None = None,
) -> Rows:
    """The eye crops of one part: each judgeable face as it is, then ``copies`` augmented
    copies; with ``synthetic``, three faces drawn with glasses for each face labelled without
    eyewear (dark, clear, and one of mirror / tint / dark / clear / mirror), jittered and
    photometrically changed."""
    rgb: list[npt.NDArray[np.uint8]] = []
    labels: list[tuple[int, int]] = []
    source: list[str] = []
    kind: list[str] = []
    for f in faces:
        if f.part != part or not judgeable(f):
            continue
        assert f.ctx is not None
        crops = [G.eye_crop(f.ctx, 0)]
        crops += [photometric(G.eye_crop(jittered(f.ctx, rng), 0), rng) for _ in range(copies)]
        for c in crops:
            rgb.append(c)
            labels.append((_label(f.eyeglasses), _label(f.sunglasses)))
            source.append(f.source)
            kind.append("real")
        if synthetic and f.eyeglasses == 0 and f.sunglasses in (0, None):
            assert scenes
            extra = str(rng.choice(["mirror", "tint", "dark", "clear", "mirror"]))
            for kd in ("dark", "clear", extra):
                c0 = G.eye_crop(jittered(f.ctx, rng), 0)
                c, sg = draw_varied_eyewear(c0, rng, kd, scenes[int(rng.integers(0, len(scenes)))])
                rgb.append(photometric(c, rng))
                labels.append((1, _label(sg)))
                source.append(f.source)
                kind.append(f"synthetic {kd}")
            if f.source == "facemask_kaggle_voc":  # web-like photos: glasses drawn in the photo
                for kd in MESH_DRAWN:
                    drawn = draw_mesh_sunglasses(
                        f.ctx, rng, kd, scenes[int(rng.integers(0, len(scenes)))]
                    )
                    if drawn is None:
                        continue
                    rgb.append(G.eye_crop(drawn, 0))
                    labels.append((1, MESH_KINDS[kd]))
                    source.append(f.source)
                    kind.append(f"mesh {kd}")
    return Rows(np.stack(rgb), np.asarray(labels, np.int64), source, kind)


def train_network(rows: Rows) -> bytes:
    """The 2-output network (eyeglasses, sunglasses logits) of train/cnn.py on the grey crops,
    multi-label, each output's classes weighted to equal total weight; returns ONNX bytes."""
    from train import cnn

    y = rows.labels
    w = np.ones(y.shape, np.float32)
    for k in range(2):
        pos, neg = int((y[:, k] == 1).sum()), int((y[:, k] == 0).sum())
        w[y[:, k] == 1, k] = (pos + neg) / (2 * pos)
        w[y[:, k] == 0, k] = (pos + neg) / (2 * neg)
    cnn.THREADS = THREADS
    gray = np.stack([to_gray(c) for c in rows.rgb])
    net = cnn.train_net(
        gray, y, weights=w, outputs=2, multilabel=True, epochs=EPOCHS, seed=SEED, log=True
    )
    return cnn.export_onnx(net, G.EYE_CROP[0])


def features(rgb: npt.NDArray[np.uint8], attr: str, net: ConvNet) -> npt.NDArray[np.float32]:
    """The eyeglasses head's features; for sunglasses the network's two logits alone (the
    interim head written here; train/refit_sunglasses.py then refits the shipped one over the
    logits and the lens and iris measurements)."""
    logits = G.eyewear_logits(rgb, net)
    return G.eyeglasses_features(rgb, logits) if attr == "eyeglasses" else logits


def feature_rows(rows: Rows, attr: str, net: ConvNet) -> npt.NDArray[np.float32]:
    return np.stack([features(c, attr, net) for c in rows.rgb]).astype(np.float32)


#: Per attribute: (hidden units, inverse regularisation C) of a head fitted over the features,
#: or None for the network's own logit of that attribute, calibrated alone (chosen on the
#: validation part: docs/attributes.md).
SETTINGS: dict[str, tuple[int, float] | None] = {"eyeglasses": (0, 1.0), "sunglasses": None}


def logit_head(
    k: int, n_features: int, x_val: npt.NDArray[np.float32], y_val: npt.NDArray[np.int64]
) -> Fitted:
    """A head that reads feature ``k`` (a logit of the network) as it is, with an isotonic
    calibration fitted on the validation part."""
    coef = np.zeros((1, n_features), np.float32)
    coef[0, k] = 1.0
    head = Head(
        ("no", "yes"),
        np.zeros(n_features, np.float32),
        np.ones(n_features, np.float32),
        coef,
        np.zeros(1, np.float32),
    )
    head = calibrate(head, x_val, y_val)
    return Fitted(head, classification_report(head.proba(x_val), y_val))


def train(faces: list[EyeFace]) -> tuple[dict[str, Head], dict[str, dict[str, float]]]:
    """The network on the train part (augmented, with synthetic eyewear), then per attribute a
    logistic head over its features fitted on the train part and calibrated on the validation
    part as it is (real faces only): Platt for eyeglasses, isotonic for the interim sunglasses
    head (train/refit_sunglasses.py refits the shipped one)."""
    import time

    rng = np.random.default_rng(SEED)
    scenes = scene_photos(faces)
    tr = crops_of(faces, "train", rng, COPIES, synthetic=True, scenes=scenes)
    va = crops_of(faces, "validation", rng)
    n_eg, n_sg = int((tr.labels[:, 0] == 1).sum()), int((tr.labels[:, 1] == 1).sum())
    print(
        f"network: {len(tr.labels)} training crops ({n_eg} with glasses, {n_sg} with "
        f"sunglasses), {len(va.labels)} validation",
        flush=True,
    )
    t0 = time.time()
    net = ConvNet(train_network(tr))
    print(f"network trained in {time.time() - t0:.0f} s", flush=True)
    heads: dict[str, Head] = {}
    reports: dict[str, dict[str, float]] = {}
    for k, attr in enumerate(("eyeglasses", "sunglasses")):
        setting = SETTINGS[attr]
        mt, mv = tr.labels[:, k] >= 0, va.labels[:, k] >= 0
        xt, xv = feature_rows(tr, attr, net), feature_rows(va, attr, net)
        if setting is None:
            fitted = logit_head(k, xv.shape[1], xv[mv], va.labels[mv, k])
        else:
            # a logistic regression on the training part, Platt-calibrated on the validation
            # part as it is (no class weights: its own share of glasses)
            hidden, c = setting
            linear = fit_linear(xt[mt], tr.labels[mt, k], ("no", "yes"), hidden=hidden, c=c)
            raw = linear.raw_scores(xv[mv])[:, 0].astype(np.float64)
            head = platt(linear, raw, va.labels[mv, k], weighted=False)
            fitted = Fitted(head, classification_report(head.proba(xv[mv]), va.labels[mv, k]))
        heads[attr] = replace(fitted.head, net=net)
        reports[attr] = fitted.report
        print(f"{attr}: {int(mt.sum())} training rows, {int(mv.sum())} validation")
    return heads, reports


def evaluate(head: Head, faces: list[EyeFace], attr: str) -> dict[str, dict[str, float]]:
    """Per source, on the test part and the evaluation-only sets (as they are, no synthetic)."""
    assert head.net is not None
    out: dict[str, dict[str, float]] = {}
    for source in sorted({f.source for f in faces}):
        rows = [
            f
            for f in faces
            if f.source == source
            and f.part in ("test", "eval")
            and f.ctx is not None
            and getattr(f, attr) is not None
            and G.unjudgeable(f.ctx, 0) is None
        ]
        if not rows:
            continue
        x = np.stack(
            [features(G.eye_crop(f.ctx, 0), attr, head.net) for f in rows if f.ctx is not None]
        )
        y = np.asarray([getattr(f, attr) for f in rows], np.int64)
        p = head.proba(x)
        if len(set(y.tolist())) > 1:
            out[source] = classification_report(p, y)
        else:
            out[source] = {"n": float(len(y)), "accuracy": float(((p[:, 1] >= 0.5) == y).mean())}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--check", action="store_true", help="train and report; write nothing")
    ap.add_argument("--no-cache", action="store_true", help="rerun the pipeline on every picture")
    ap.add_argument(
        "--sunglasses-only",
        action="store_true",
        help="write only attr_sunglasses.npz (the new network + the refitted head); leave the "
        "eyeglasses head and its network as they are",
    )
    args = ap.parse_args(argv)
    faces = eyewear_faces(None if args.no_cache else DEFAULT_CACHE)
    heads, reports = train(faces)
    for attr, head in heads.items():
        print(f"{attr} validation:", {k: round(v, 3) for k, v in reports[attr].items()})
        for source, rep in evaluate(head, faces, attr).items():
            print(f"  {source}:", {k: round(v, 3) for k, v in rep.items()})
        if not args.check and not (args.sunglasses_only and attr == "eyeglasses"):
            write_head(head, f"attr_{attr}")
    if not args.check:
        # the sunglasses head over the new network's logits and the lens / iris measurements
        from train import refit_sunglasses

        heads_sg = refit_sunglasses.refit(faces, heads["sunglasses"].net)
        write_head(
            replace(heads_sg[refit_sunglasses.CHOSEN], net=heads["sunglasses"].net),
            "attr_sunglasses",
        )


if __name__ == "__main__":
    main()
