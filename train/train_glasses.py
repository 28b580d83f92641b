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
* Synthetic eyewear: dark lenses (sunglasses) and empty frames (clear glasses) drawn on the
  training faces that wear none (:func:`draw_eyewear`) - real sunglasses in the data are almost
  all one model (CMU), and the head must see the variety of real ones.

Each part is split train / validation / test (60/20/20 by subject or photo, fixed seed): the
heads are fitted on train (with augmentation: jittered alignment, blur, resolution, contrast,
colour, mirroring), calibrated (isotonic) on validation, and measured on test and on the
evaluation-only sets by bench/attributes_cover.py.

Usage::

    .venv/bin/python train/train_glasses.py           # writes attr_{eyeglasses,sunglasses}.npz
    .venv/bin/python train/train_glasses.py --check   # train and report, write nothing
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import glasses as G
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.heads import Head
from train.common import (
    REPO,
    SEED,
    CachedPipeline,
    classification_report,
    face_in_crop,
    fit_head,
    group_split,
    require_data,
)
from train.train_mask import DEFAULT_CACHE, facemask_faces, jittered, split, write_head

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
    x = rgb.astype(np.float32)
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
    return np.clip(x, 0, 255).astype(np.uint8)


_TINTS = (
    (1.0, 1.0, 1.0),
    (1.25, 1.0, 0.75),
    (0.85, 1.05, 0.85),
    (0.8, 0.92, 1.25),
    (1.2, 0.85, 0.9),
)


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
            rad = int(min(hw, hh) * 0.5)
            x0, y0, x1, y1 = round(cx - hw), round(cy - hh), round(cx + hw), round(cy + hh)
            cv2.rectangle(lens, (x0 + rad, y0), (x1 - rad, y1), 1.0, -1)
            cv2.rectangle(lens, (x0, y0 + rad), (x1, y1 - rad), 1.0, -1)
            for px, py in (
                (x0 + rad, y0 + rad),
                (x1 - rad, y0 + rad),
                (x0 + rad, y1 - rad),
                (x1 - rad, y1 - rad),
            ):
                cv2.circle(lens, (px, py), rad, 1.0, -1)
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
        x0 = centres[int(rng.integers(0, 2))] + rng.uniform(-0.5, 0.5) * hw
        cv2.line(
            streak,
            (round(x0 - 0.3 * hw), round(cy + 0.5 * hh)),
            (round(x0 + 0.3 * hw), round(cy - 0.5 * hh)),
            1.0,
            max(1, round(rng.uniform(0.03, 0.1) * u)),
        )
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


# -- training --------------------------------------------------------------------------------


def training_rows(
    faces: list[EyeFace],
    attr: str,
    part: str,
    rng: np.random.Generator,
    copies: int,
    synthetic: bool,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Features and labels of one part; ``copies`` augmented copies per face (0: the face as
    it is), and, with ``synthetic``, one face drawn with dark and one with clear glasses for
    each face labelled without eyewear."""
    x: list[npt.NDArray[np.float32]] = []
    y: list[int] = []
    for f in faces:
        if f.part != part or f.ctx is None or G.unjudgeable(f.ctx, 0) is not None:
            continue
        label = getattr(f, attr)
        if label is None:
            continue
        crops = [G.eye_crop(f.ctx, 0)]
        crops += [photometric(G.eye_crop(jittered(f.ctx, rng), 0), rng) for _ in range(copies)]
        for c in crops:
            x.append(FEATURES[attr](c))
            y.append(int(label))
        if synthetic and f.eyeglasses == 0 and f.sunglasses in (0, None):
            for dark in (True, False):
                c = draw_eyewear(G.eye_crop(jittered(f.ctx, rng), 0), rng, dark)
                if copies:
                    c = photometric(c, rng)
                x.append(FEATURES[attr](c))
                y.append(1 if attr == "eyeglasses" else int(dark))
    return np.stack(x).astype(np.float32), np.asarray(y, np.int64)


FEATURES: dict[str, Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]] = {
    "eyeglasses": G.eyeglasses_features,
    "sunglasses": G.sunglasses_features,
}
#: Head shape per attribute: (hidden units, inverse regularisation C).
SETTINGS: dict[str, tuple[int, float]] = {"eyeglasses": (32, 0.1), "sunglasses": (0, 1.0)}
#: Augmented copies of each training face.
COPIES = 3


def train(faces: list[EyeFace], attr: str) -> tuple[Head, dict[str, float]]:
    """Fit on the train part (augmented, with synthetic eyewear), calibrate on the validation
    part as it is (real faces only)."""
    rng = np.random.default_rng(SEED)
    hidden, c = SETTINGS[attr]
    xt, yt = training_rows(faces, attr, "train", rng, COPIES, synthetic=True)
    xv, yv = training_rows(faces, attr, "validation", rng, 0, synthetic=False)
    fitted = fit_head(xt, yt, xv, yv, ("no", "yes"), hidden=hidden, c=c)
    print(f"{attr}: {len(yt)} training rows ({int(yt.sum())} positive), {len(yv)} validation")
    return fitted.head, fitted.report


def evaluate(head: Head, faces: list[EyeFace], attr: str) -> dict[str, dict[str, float]]:
    """Per source, on the test part and the evaluation-only sets (as they are, no synthetic)."""
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
        x = np.stack([FEATURES[attr](G.eye_crop(f.ctx, 0)) for f in rows if f.ctx is not None])
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
    args = ap.parse_args(argv)
    faces = eyewear_faces(None if args.no_cache else DEFAULT_CACHE)
    for attr in ("eyeglasses", "sunglasses"):
        head, report = train(faces, attr)
        print("  validation:", {k: round(v, 3) for k, v in report.items()})
        for source, rep in evaluate(head, faces, attr).items():
            print(f"  {source}:", {k: round(v, 3) for k, v in rep.items()})
        if not args.check:
            write_head(head, f"attr_{attr}")


if __name__ == "__main__":
    main()
