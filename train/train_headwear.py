"""Train the ``headwear`` head on the hand-labelled faces of the Kaggle face-mask photos.

Labels: ``train/labels/facemask_headwear_eyewear.csv`` - every face >= 40 px wide that mien
finds in the CC0 face-mask photos (``../shared/data/facemask_kaggle_voc``), labelled by eye
(headwear 1/0, blank = unsure) from 140x140 aligned crops. No other labelled headwear data
exists in ../shared/data.

Split: the mask head's split BY PHOTO (train/train_mask.py). The head is fitted on the faces of
the train and validation photos together (the labels are too few to set a validation part
aside): a logistic regression on the 42 measurements of
:func:`mien.analyzers.attributes.headwear.headwear_features` (balanced class weights, strong
regularisation), calibrated by Platt scaling of its out-of-fold scores (5 folds by photo; the
photos' own share of headwear, no class weights; version 3 - version 2 had an isotonic table).
It is measured on the test photos' faces only (bench/attributes_cover.py).

Usage::

    .venv/bin/python train/train_headwear.py            # writes attr_headwear.npz
    .venv/bin/python train/train_headwear.py --check    # train and report, write nothing
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import headwear as H
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.heads import Head, sigmoid
from train.common import REPO, SEED, classification_report, group_split, platt_fit, with_platt
from train.train_mask import (
    DEFAULT_CACHE,
    colour_jitter,
    facemask_faces,
    jittered,
    split,
    write_head,
)

LABELS = REPO / "train" / "labels" / "facemask_headwear_eyewear.csv"
#: Inverse regularisation of the logistic regression (on standardised features).
C = 0.01
#: Augmented copies per training face (besides the face and its mirror image).
COPIES = 2


@dataclass
class HeadwearFace:
    image: str
    box: tuple[float, float, float, float]
    part: str  # train / validation / test
    ctx: FaceContext
    headwear: int


def headwear_faces(cache_dir: Path | None = DEFAULT_CACHE) -> list[HeadwearFace]:
    """The labelled faces (headwear 0/1; unsure ones left out), with their part."""
    with open(LABELS, newline="") as fh:
        labels = {
            (r["image"], tuple(float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax"))): r
            for r in csv.DictReader(fh)
        }
    faces = facemask_faces(cache_dir)
    part_of: dict[int, str] = {}
    for p, idx in zip(("train", "validation", "test"), split(faces), strict=True):
        for i in idx:
            part_of[int(i)] = p
    out = []
    for i, f in enumerate(faces):
        lab = labels.get((f.image, f.box))
        if lab is None or f.ctx is None or not lab["headwear"].strip():
            continue
        out.append(HeadwearFace(f.image, f.box, part_of[i], f.ctx, int(lab["headwear"])))
    return out


def judged(faces: list[HeadwearFace]) -> list[HeadwearFace]:
    return [f for f in faces if H.unjudgeable(f.ctx, 0) is None]


def _rows(
    faces: list[HeadwearFace], rng: np.random.Generator | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], list[str]]:
    x: list[npt.NDArray[np.float32]] = []
    y: list[int] = []
    g: list[str] = []
    for f in faces:
        crop = H.headwear_crop(f.ctx, 0)
        crops = [crop]
        if rng is not None:
            crops.append(np.ascontiguousarray(crop[:, ::-1]))
            crops += [
                colour_jitter(H.headwear_crop(jittered(f.ctx, rng), 0), rng) for _ in range(COPIES)
            ]
        for c in crops:
            x.append(H.headwear_features(c))
            y.append(f.headwear)
            g.append(f.image)
    return np.stack(x).astype(np.float32), np.asarray(y, np.int64), g


def _logistic(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
]:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0).astype(np.float32)
    scale = (x.std(axis=0) + 1e-6).astype(np.float32)
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=SEED)
    lr.fit((x - mean) / scale, y)
    return mean, scale, lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32)


def calibration_pool(faces: list[HeadwearFace]) -> list[HeadwearFace]:
    """The judged faces of the train and validation photos: fitted on, and (out of fold)
    calibrated on."""
    return [f for f in judged(faces) if f.part in ("train", "validation")]


def out_of_fold_scores(pool: list[HeadwearFace]) -> npt.NDArray[np.float64]:
    """The regression's logit for each face of ``pool``, from a fit on the other 4 of 5 folds
    (by photo; each face scored as it is, unaugmented): what the calibration is fitted on."""
    folds = group_split([f.image for f in pool], [0.2] * 5, seed=SEED)
    oof = np.zeros(len(pool))
    for k in range(5):
        fit_rows = [pool[int(i)] for j in range(5) if j != k for i in folds[j]]
        mean, scale, coef, icpt = _logistic(*_rows(fit_rows, np.random.default_rng(SEED + k))[:2])
        xk, _, _ = _rows([pool[int(i)] for i in folds[k]], None)
        oof[folds[k]] = (((xk - mean) / scale) @ coef.T + icpt)[:, 0]
    return oof


def train(faces: list[HeadwearFace]) -> Head:
    pool = calibration_pool(faces)
    oof = out_of_fold_scores(pool)
    y_pool = np.asarray([f.headwear for f in pool], np.int64)
    mean, scale, coef, icpt = _logistic(*_rows(pool, np.random.default_rng(SEED))[:2])
    # Platt scaling of the out-of-fold logits (the photos' own share of headwear, no class
    # weights), folded into the final regression's last layer
    a, b = platt_fit(oof, y_pool, weighted=False)
    head = with_platt(Head(("no", "yes"), mean, scale, coef, icpt), a, b)
    cal = sigmoid(a * oof + b)
    rep = classification_report(np.stack([1 - cal, cal], axis=1).astype(np.float32), y_pool)
    print(f"headwear: {len(pool)} faces ({int(y_pool.sum())} with headwear) to fit")
    print("  out-of-fold (train + validation photos):", {k: round(v, 3) for k, v in rep.items()})
    return head


def test_report(head: Head, faces: list[HeadwearFace]) -> dict[str, float]:
    test = [f for f in judged(faces) if f.part == "test"]
    x, y, _ = _rows(test, None)
    return classification_report(head.proba(x), y)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--check", action="store_true", help="train and report; write nothing")
    ap.add_argument("--no-cache", action="store_true", help="rerun the pipeline on every photo")
    args = ap.parse_args(argv)
    faces = headwear_faces(None if args.no_cache else DEFAULT_CACHE)
    head = train(faces)
    print("  test photos:", {k: round(v, 3) for k, v in test_report(head, faces).items()})
    if not args.check:
        write_head(head, "attr_headwear")


if __name__ == "__main__":
    main()
