"""Choose each attribute's abstention band on labelled real photos, and write it into its card.

An attribute's *abstention band* is a confidence below which its answer is withheld (value
``None``, reason ``"uncertain (confidence 0.62; answers below 0.80 are withheld)"``;
:func:`mien.analyzers.attributes.base.withhold`). It is chosen so that the answers that ARE given
are right at least :data:`TARGET` of the time on real photos with people.

Data: the faces >= 40 px that mien finds on the CC0 Kaggle face-mask photos
(``../shared/data/facemask_kaggle_voc``), hand-labelled by eye (``train/labels/``:
``facemask_headwear_eyewear.csv`` for headwear / eyeglasses / sunglasses,
``facemask_eyes_mouth.csv`` for eyes_open / smile / mouth_open; blank = unsure, left out), and
the set's own mask class for every found face. Split: the mask head's split BY PHOTO
(``train.train_mask.split``, 60 / 20 / 20, fixed seed); the TEST photos are never read here.

* mask, eyeglasses, sunglasses, eyes_open: the VALIDATION photos (their heads were trained on
  the training photos - eyes_open with the eyes of those photos assumed open);
* headwear: the VALIDATION photos too, although its head was fitted on training and
  validation photos together (train/train_headwear.py; its calibration on out-of-fold scores):
  the figure is optimistic;
* smile, mouth_open: the TRAINING and VALIDATION photos (neither the smile head nor the
  mouth_open measurement was trained or tuned on these photos; the mask head that hides the
  mouth was).

Rule: over the confidences 0.50, 0.51, ... 0.99, the band is the lowest ``t`` such that the
answers with confidence >= ``t`` are right >= :data:`TARGET` of the time, for ``t`` and every
higher step that still leaves an answer; when no step meets it, :data:`NEVER_BELOW`. Where the
labelled faces are too few to choose honestly - fewer than :data:`MIN_PER_CLASS` judged faces of
some class, or fewer than :data:`MIN_FACES` in all - the band is at least :data:`FEW_FLOOR`, and
the report says so.

Usage::

    .venv/bin/python train/abstention.py            # print the table and write the bands
    .venv/bin/python train/abstention.py --check    # print only
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import CARDS, create
from mien.analyzers.attributes.mask import CLASSES
from mien.models.registry import CARDS_DIR
from train.common import REPO
from train.train_mask import DEFAULT_CACHE, BoxedFace, facemask_faces, split

#: Answers given must be right at least this often.
TARGET = 0.95
GRID = tuple(round(0.5 + 0.01 * k, 2) for k in range(50))
#: The band when no step of the grid meets the target (almost everything withheld).
NEVER_BELOW = 0.99
#: Too few labelled faces to choose honestly: fewer than this per class (of the judged faces)...
MIN_PER_CLASS = 10
#: ... or fewer than this in all; the band is then at least FEW_FLOOR.
MIN_FACES = 40
FEW_FLOOR = 0.90

LABELS = REPO / "train" / "labels"
REGISTRY_PY = REPO / "src" / "mien" / "models" / "registry.py"

#: attribute -> (label file, column, photo parts chosen on)
SOURCES: dict[str, tuple[str | None, str, tuple[str, ...]]] = {
    "eyeglasses": ("facemask_headwear_eyewear.csv", "eyeglasses", ("validation",)),
    "sunglasses": ("facemask_headwear_eyewear.csv", "sunglasses", ("validation",)),
    "headwear": ("facemask_headwear_eyewear.csv", "headwear", ("validation",)),
    "mask": (None, "mask", ("validation",)),
    "eyes_open": ("facemask_eyes_mouth.csv", "eyes_open", ("validation",)),
    "smile": ("facemask_eyes_mouth.csv", "smile", ("train", "validation")),
    "mouth_open": ("facemask_eyes_mouth.csv", "mouth_open", ("train", "validation")),
}


@dataclass
class Judged:
    """The raw answers of one attribute on its labelled faces: truth, right or wrong,
    confidence (faces the attribute cannot judge at all are counted apart)."""

    truth: list[Any]
    right: list[bool]
    conf: list[float]
    unjudged: int


def _labels(name: str) -> dict[tuple[str, tuple[float, ...]], dict[str, str]]:
    with open(LABELS / name, newline="") as fh:
        return {
            (r["image"], tuple(float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax"))): r
            for r in csv.DictReader(fh)
        }


def is_right(attribute: str, value: Any, truth: Any) -> bool:
    """Whether a (non-None) answer agrees with the label; eyes_open: every judged eye."""
    if attribute == "eyes_open":
        eyes = [v for v in value.values() if v is not None]
        return bool(eyes) and all(bool(v) == bool(truth) for v in eyes)
    if attribute == "mask":
        return bool(value == CLASSES[int(truth)])
    return bool(value) == bool(truth)


def judge(attribute: str, faces: Sequence[BoxedFace], parts: dict[int, str]) -> Judged:
    """Run the raw analyzer of ``attribute`` (no band) on its labelled faces."""
    file, column, chosen = SOURCES[attribute]
    labels = _labels(file) if file else {}
    (analyzer,) = create([attribute], _withhold=False)
    out = Judged([], [], [], 0)
    for i, f in enumerate(faces):
        if f.ctx is None or parts[i] not in chosen:
            continue
        if file is None:
            truth: Any = f.label
        else:
            row = labels.get((f.image, f.box))
            if row is None or not row[column].strip():
                continue
            truth = int(row[column])
        col = analyzer(f.ctx.without_caches())
        value = col.values[0]
        if value is None:
            out.unjudged += 1
            continue
        out.truth.append(truth)
        out.right.append(is_right(attribute, value, truth))
        out.conf.append(float(col.confidence[0]))
    return out


def choose(j: Judged) -> tuple[float, bool]:
    """The band (:data:`GRID` rule in the module doc) and whether the faces were too few."""
    conf = np.asarray(j.conf, np.float64)
    right = np.asarray(j.right, bool)
    ok = []
    for t in GRID:
        answered = conf >= t
        ok.append(not answered.any() or right[answered].mean() >= TARGET)
    band = NEVER_BELOW
    for k in range(len(GRID)):
        if all(ok[k:]):
            band = GRID[k]
            break
    counts = [j.truth.count(c) for c in sorted(set(j.truth))]
    few = len(j.truth) < MIN_FACES or len(counts) < 2 or min(counts) < MIN_PER_CLASS
    if few:
        band = max(band, FEW_FLOOR)
    return band, few


def summary(attribute: str, j: Judged, band: float, few: bool) -> dict[str, Any]:
    conf = np.asarray(j.conf, np.float64)
    right = np.asarray(j.right, bool)
    answered = conf >= band
    classes = sorted(set(j.truth))
    return {
        "attribute": attribute,
        "photos": "+".join(SOURCES[attribute][2]),
        "judged": len(j.truth),
        "per_class": {str(c): j.truth.count(c) for c in classes},
        "unjudged": j.unjudged,
        "accuracy_all": float(right.mean()) if len(right) else math.nan,
        "band": band,
        "answered": int(answered.sum()),
        "answered_accuracy": float(right[answered].mean()) if answered.any() else math.nan,
        "abstention": float(1.0 - answered.mean()) if len(answered) else math.nan,
        "few": few,
    }


def write_band(attribute: str, band: float) -> Path:
    """Write ``abstain_below = band`` into the attribute's card (mouth_open, which has no card:
    ``MOUTH_OPEN_ABSTAIN_BELOW`` in mien/models/registry.py)."""
    card = CARDS[attribute]
    if card is None:
        path = REGISTRY_PY
        text = path.read_text(encoding="utf-8")
        text, n = re.subn(
            r"^MOUTH_OPEN_ABSTAIN_BELOW: float \| None = .*$",
            f"MOUTH_OPEN_ABSTAIN_BELOW: float | None = {band:.2f}",
            text,
            count=1,
            flags=re.M,
        )
        assert n == 1, "registry.py has no MOUTH_OPEN_ABSTAIN_BELOW line"
    else:
        path = CARDS_DIR / f"{card}.toml"
        text = path.read_text(encoding="utf-8")
        line = f"abstain_below = {band:.2f}"
        text, n = re.subn(r"^abstain_below = .*$", line, text, count=1, flags=re.M)
        if n == 0:  # first time: after the sha256 line
            text = re.sub(r"^(sha256 = .*)$", rf"\1\n{line}", text, count=1, flags=re.M)
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="print only; write no band")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--only", help="comma-separated attributes (default: all)")
    args = ap.parse_args(argv)
    faces = facemask_faces(args.cache)
    parts: dict[int, str] = {}
    for p, idx in zip(("train", "validation", "test"), split(faces), strict=True):
        for i in idx:
            parts[int(i)] = p
    names = args.only.split(",") if args.only else list(SOURCES)
    print(
        "| attribute | photos | judged (per class) | right, all | band | answered "
        "| right, answered | abstained | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        j = judge(name, faces, parts)
        band, few = choose(j)
        s = summary(name, j, band, few)
        per = "/".join(f"{k}:{v}" for k, v in s["per_class"].items())
        note = "too few labelled faces: band at least 0.90" if few else ""
        print(
            f"| {name} | {s['photos']} | {s['judged']} ({per}) | {s['accuracy_all']:.3f} "
            f"| {band:.2f} | {s['answered']} | {s['answered_accuracy']:.3f} "
            f"| {s['abstention']:.3f} | {note} |",
            flush=True,
        )
        if not args.check:
            write_band(name, band)


if __name__ == "__main__":
    main()
