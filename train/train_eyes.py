"""Train the ``eyes_open`` head (one head for both eyes) and write ``attr_eyes.npz``.

Usage (from the repository root; needs scikit-learn and ``../shared/data``)::

    .venv/bin/python train/train_eyes.py            # train, print metrics, write the head + card
    .venv/bin/python train/train_eyes.py --dry-run  # train and print, write nothing

Data (every picture goes through mien's own pipeline, ``train.common.crop_faces``; pictures
without a face or mesh are counted and left out; eyes the analyzer would not judge — turned
away, too small — are left out too):

* closed eyes: CEW ``cew_closed_faces`` (both eyes closed; research use), split by source
  picture into training (50%), calibration (20%) and held-out (30%). The held-out part is
  never trained or calibrated on: ``bench/attributes_face.py`` measures closed-eye recall on it.
* open eyes: SMILEsmileD (LFW crops, research use, no licence stated; 4,000 crops drawn with a
  fixed seed), Olivetti (``olivetti_glasses``, all 300; credit Olivetti Research Laboratory)
  and the CMU faces without sunglasses (``cmu_faces_sunglasses_pose``; UCI teaching data,
  research use), each split the same way (SMILEsmileD by file, the others by subject).

Training faces are also used altered (``augmented_rows``: lost detail, imprecise eye
corners): four copies of each closed face, one of each open face. HELEN is never read here
(evaluation only, bench/attributes_face.py). Closed and open eyes are weighted equally in
training and in calibration (the closed eyes are repeated, deterministically), so the
calibrated confidence assumes no prior preference. Everything is seeded; rerunning rebuilds
``attr_eyes.npz`` byte for byte and rewrites the sha256 in
``src/mien/models/cards/attr_eyes.toml``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import eyes
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.mouth import unknown_reason
from train.common import (
    SEED,
    CropFaces,
    classification_report,
    crop_faces,
    fit_head,
    group_split,
    require_data,
    write_head,
)
from train.train_smile import balanced

HIDDEN = 64
C = 1.0
#: Augmented copies of each training face: closed (CEW) and open.
COPIES_CLOSED = 4
COPIES_OPEN = 1
FRACTIONS = (0.5, 0.2, 0.3)
SMILESMILED_OPEN = 4000


@dataclass
class Source:
    """One data set's pictures, their faces, eye state (1 open, 0 closed) and split groups."""

    name: str
    faces: CropFaces
    open_: int
    groups: list[str]


def _rows(name: str) -> list[dict[str, str]]:
    with open(require_data(name) / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def cew_groups() -> tuple[list[dict[str, str]], list[str]]:
    """CEW rows and their split groups: the source pictures (``closed_eye_NNNN.jpg``)."""
    rows = _rows("cew_closed_faces")
    return rows, [r["file"].split("_face_")[0] for r in rows]


def cew_heldout_files() -> list[str]:
    """File names of the CEW faces never trained or calibrated on (no pipeline run)."""
    rows, groups = cew_groups()
    return [rows[k]["file"] for k in group_split(groups, FRACTIONS, seed=SEED)[2]]


def cew() -> Source:
    """CEW closed faces, grouped by source picture."""
    rows, groups = cew_groups()
    root = require_data("cew_closed_faces", "images")
    faces = crop_faces("cew_closed_faces", [root / r["file"] for r in rows])
    return Source("cew", faces, 0, groups)


def cew_heldout() -> tuple[CropFaces, npt.NDArray[np.intp]]:
    """The CEW faces never trained or calibrated on, as row indices of their faces."""
    src = cew()
    return src.faces, group_split(src.groups, FRACTIONS, seed=SEED)[2]


def _subset(faces: CropFaces, pick: npt.NDArray[np.intp]) -> CropFaces:
    return CropFaces(
        [faces.paths[k] for k in pick],
        faces.found[pick],
        faces.boxes[pick],
        faces.landmarks[pick],
        faces.mesh[pick],
        faces.head_pose[pick],
    )


def _all_faces(name: str, folder: str) -> tuple[list[dict[str, str]], CropFaces]:
    rows = _rows(name)
    root = require_data(name, folder) if folder else require_data(name)
    return rows, crop_faces(name, [root / r["file"] for r in rows])


def open_sources() -> list[Source]:
    """Open-eyed faces: a fixed subset of SMILEsmileD, Olivetti, CMU without sunglasses."""
    rows, faces = _all_faces("smilesmiled", "")
    rng = np.random.default_rng(SEED)
    pick = np.sort(rng.choice(len(rows), SMILESMILED_OPEN, replace=False))
    out = [Source("smilesmiled", _subset(faces, pick), 1, [rows[k]["file"] for k in pick])]
    rows, faces = _all_faces("olivetti_glasses", "images")
    out.append(Source("olivetti", faces, 1, [r["subject"] for r in rows]))
    rows, faces = _all_faces("cmu_faces_sunglasses_pose", "images")
    pick = np.array([k for k, r in enumerate(rows) if r["sunglasses"] == "0"], np.intp)
    out.append(Source("cmu", _subset(faces, pick), 1, [rows[k]["subject"] for k in pick]))
    return out


def eye_rows(src: Source) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """Features of every judgeable eye of ``src`` and the picture index each comes from."""
    feats: list[npt.NDArray[np.float32]] = []
    owner: list[int] = []
    for k in np.nonzero(src.faces.found)[0]:
        ctx = src.faces.context(int(k))
        if unknown_reason(ctx, 0, eyes.MIN_EYE_PX, eyes.MAX_YAW) is not None:
            continue
        for eye in (eyes.RIGHT, eyes.LEFT):
            if eyes.eye_unknown(ctx, 0, eye) is None:
                feats.append(eyes.eye_features(ctx, 0, eye))
                owner.append(int(k))
    return np.stack(feats), np.asarray(owner, np.intp)


def augmented_rows(
    src: Source, rows: npt.NDArray[np.intp], copies: int, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Features of ``copies`` altered versions of each face of ``rows`` (training only): the
    picture shrunk to 40-100% and enlarged back (lost detail), and each eye corner moved by
    a normal offset of 4% of the eye's width (imprecise alignment)."""
    feats: list[npt.NDArray[np.float32]] = []
    for k in rows:
        if not src.faces.found[k]:
            continue
        ctx = src.faces.context(int(k))
        if unknown_reason(ctx, 0, eyes.MIN_EYE_PX, eyes.MAX_YAW) is not None:
            continue
        for _ in range(copies):
            rgb, mesh = ctx.rgb, ctx.mesh.copy()
            s = float(rng.uniform(0.4, 1.0))
            if s < 0.95 and eyes.eye_width(mesh[0], eyes.RIGHT) * s >= eyes.MIN_EYE_WIDTH_PX:
                h, w = rgb.shape[:2]
                small = cv2.resize(
                    rgb, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA
                )
                rgb = np.ascontiguousarray(
                    cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8
                )
            for eye in (eyes.RIGHT, eyes.LEFT):
                width = eyes.eye_width(mesh[0], eye)
                for idx in (eye.outer, eye.inner):
                    mesh[0, idx, :2] += rng.normal(0.0, 0.04 * width, 2).astype(np.float32)
            alt = FaceContext(
                rgb=rgb,
                boxes=ctx.boxes,
                landmarks=ctx.landmarks,
                mesh=mesh,
                head_pose=ctx.head_pose,
            )
            for eye in (eyes.RIGHT, eyes.LEFT):
                if eyes.eye_unknown(alt, 0, eye) is None:
                    feats.append(eyes.eye_features(alt, 0, eye))
    return np.stack(feats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="train and print; write nothing")
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--c", type=float, default=C)
    args = ap.parse_args()

    t0 = time.time()
    xs: list[list[npt.NDArray[np.float32]]] = [[], [], []]
    ys: list[list[npt.NDArray[np.int64]]] = [[], [], []]
    names: list[list[str]] = [[], [], []]
    rng = np.random.default_rng(SEED)
    for src in [cew(), *open_sources()]:
        x, owner = eye_rows(src)
        parts = group_split(src.groups, FRACTIONS, seed=SEED)
        x_aug = augmented_rows(src, parts[0], COPIES_OPEN if src.open_ else COPIES_CLOSED, rng)
        xs[0].append(x_aug)
        ys[0].append(np.full(len(x_aug), src.open_, np.int64))
        names[0] += [f"{src.name} (altered)"] * len(x_aug)
        missing = int((~src.faces.found).sum())
        print(
            f"{src.name}: {len(src.groups)} pictures, no face or no mesh in {missing} "
            f"({missing / len(src.groups):.1%}); {len(x)} judgeable eyes "
            f"({'open' if src.open_ else 'closed'})"
        )
        for p, rows in enumerate(parts):
            m = np.isin(owner, rows)
            xs[p].append(x[m])
            ys[p].append(np.full(int(m.sum()), src.open_, np.int64))
            names[p] += [src.name] * int(m.sum())
    x_parts = [np.concatenate(v) for v in xs]
    y_parts = [np.concatenate(v) for v in ys]
    print(f"features: {x_parts[0].shape[1]} per eye ({time.time() - t0:.0f} s)")
    tr = balanced(np.arange(len(y_parts[0])), y_parts[0], SEED)
    ca = balanced(np.arange(len(y_parts[1])), y_parts[1], SEED + 1)
    fitted = fit_head(
        x_parts[0][tr],
        y_parts[0][tr],
        x_parts[1][ca],
        y_parts[1][ca],
        ("closed", "open"),
        hidden=args.hidden,
        c=args.c,
        seed=SEED,
    )
    head = fitted.head
    for label, x, y, src_names in zip(
        ("training", "calibration", "held-out"), x_parts, y_parts, names, strict=True
    ):
        proba = head.proba(x)
        rep = classification_report(proba, y)
        called_closed = proba[:, 1] <= 0.5
        per = "  ".join(
            f"{n}: {called_closed[np.asarray(src_names) == n].mean():.3f}"
            for n in dict.fromkeys(src_names)
        )
        print(
            f"{label:12s} eyes={len(y):5d}  acc {rep['accuracy']:.3f}  bal.acc "
            f"{rep['balanced_accuracy']:.3f}  AUC {rep['roc_auc']:.3f}  ECE {rep['ece']:.3f}  "
            f"share called closed: {per}"
        )
    if args.dry_run:
        return
    write_head(head, "attr_eyes")


if __name__ == "__main__":
    main()
