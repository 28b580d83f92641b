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
* headwear: the TRAINING and VALIDATION photos, which its head was fitted on together
  (train/train_headwear.py; its calibration on out-of-fold scores), so neither part is held out
  and the figure is optimistic either way; together they hold 35 covered heads, the validation
  photos alone 4 (issue 17, third round: with 4 the band was only the 0.90 floor, and covered
  heads were called bare at 0.91-0.96);
* smile, mouth_open: the TRAINING and VALIDATION photos (neither the smile head nor the
  mouth_open measurement was trained or tuned on these photos; the mask head that hides the
  mouth was).

Rule: over the confidences 0.50, 0.51, ... 0.99, the band is the lowest ``t`` such that the
answers with confidence >= ``t`` are right >= :data:`TARGET` of the time - overall, on the real
(face-mask) photos alone, and within each true class with >= :data:`MIN_PER_CLASS` judged faces
(a rare class's wrong answers are not hidden by a common one's), and within each answered value
given >= :data:`MIN_PER_CLASS` times (issue 17: a "none" said of masked faces is a confident
wrong answer even when the many masked faces answered "worn" keep their class right) - for ``t``
and every higher
step; when no step meets it, :data:`NEVER_BELOW`. eyeglasses and sunglasses add the VALIDATION
subjects of their head's own studio sets (Olivetti, CMU: train/train_glasses.py's split),
eyes_open the CALIBRATION part of CEW's closed eyes (train/train_eyes.py's split): the face-mask
photos have no sunglasses and no closed eyes in their validation part. Where the labelled REAL
faces (the face-mask photos) are too few to choose honestly - fewer than :data:`MIN_PER_CLASS`
of some class, or fewer than :data:`MIN_FACES` in all - the band is at least :data:`FEW_FLOOR`,
and the report says so.

Usage::

    .venv/bin/python train/abstention.py            # print the table and write the bands
    .venv/bin/python train/abstention.py --check    # print only
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import CARDS, create
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.mask import CLASSES
from mien.models.registry import CARDS_DIR
from train.common import REPO, SEED, group_split
from train.train_mask import DEFAULT_CACHE, BoxedFace, facemask_faces, split

#: Answers given must be right at least this often.
TARGET = 0.95
GRID = tuple(round(0.5 + 0.01 * k, 2) for k in range(50))
#: The band when no step of the grid meets the target (almost everything withheld).
NEVER_BELOW = 0.99
#: Too few labelled faces to choose honestly: fewer than this per class (of the judged faces)...
MIN_PER_CLASS = 20
#: ... or fewer than this in all; the band is then at least FEW_FLOOR.
MIN_FACES = 40
FEW_FLOOR = 0.90

LABELS = REPO / "train" / "labels"
REGISTRY_PY = REPO / "src" / "mien" / "models" / "registry.py"

#: attribute -> (label file, column, photo parts chosen on)
SOURCES: dict[str, tuple[str | None, str, tuple[str, ...]]] = {
    "eyeglasses": ("facemask_headwear_eyewear.csv", "eyeglasses", ("validation",)),
    "sunglasses": ("facemask_headwear_eyewear.csv", "sunglasses", ("validation",)),
    "headwear": ("facemask_headwear_eyewear.csv", "headwear", ("train", "validation")),
    "mask": (None, "mask", ("validation",)),
    "eyes_open": ("facemask_eyes_mouth.csv", "eyes_open", ("validation",)),
    "smile": ("facemask_eyes_mouth.csv", "smile", ("train", "validation")),
    "mouth_open": ("facemask_eyes_mouth.csv", "mouth_open", ("train", "validation")),
}


@dataclass
class Judged:
    """The raw answers of one attribute on its labelled faces: truth, right or wrong,
    confidence, data set (faces the attribute cannot judge at all are counted apart)."""

    truth: list[Any] = field(default_factory=list)
    right: list[bool] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    unjudged: int = 0
    #: the answer given (eyes_open: "closed" / "open" by its judged eyes); empty in dumps made
    #: before this field existed (the per-value rule of :func:`meets` is then skipped)
    value: list[Any] = field(default_factory=list)


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


def answer_value(attribute: str, value: Any) -> Any:
    """The answer as one comparable value (eyes_open: "open", "closed" or "mixed")."""
    if attribute == "eyes_open":
        eyes = {bool(v) for v in value.values() if v is not None}
        return "mixed" if len(eyes) != 1 else ("open" if eyes.pop() else "closed")
    if attribute == "mask":
        return str(value)
    return bool(value)


Labelled = Iterator[tuple[str, FaceContext, Any]]


def facemask_labelled(
    attribute: str, faces: Sequence[BoxedFace], parts: dict[int, str]
) -> Labelled:
    """``(data set, face, truth)`` of the face-mask photos' labelled faces for ``attribute``."""
    file, column, chosen = SOURCES[attribute]
    labels = _labels(file) if file else {}
    for i, f in enumerate(faces):
        if f.ctx is None or parts[i] not in chosen:
            continue
        if file is None:
            yield "facemask_kaggle_voc", f.ctx, f.label
            continue
        row = labels.get((f.image, f.box))
        if row is not None and row[column].strip():
            yield "facemask_kaggle_voc", f.ctx, int(row[column])


def eyewear_labelled(attribute: str, cache: Path | None) -> Labelled:
    """The VALIDATION subjects of the eyewear head's own studio sets (train/train_glasses.py's
    split by subject): Olivetti (no sunglasses) and CMU (the only real sunglasses)."""
    from train.train_glasses import LABELS as GLABELS
    from train.train_glasses import _crop_set, _csv, _subject_parts

    cmu_glasses = {
        r["subject"]: int(r["eyeglasses_without_sunglasses"])
        for r in _csv(GLABELS / "cmu_eyeglasses_subjects.csv")
    }
    sets = (
        ("olivetti_glasses", lambda r: (int(r["eyeglasses"]), 0)),
        (
            "cmu_faces_sunglasses_pose",
            lambda r: (
                max(int(r["sunglasses"]), cmu_glasses[r["subject"]]),
                int(r["sunglasses"]),
            ),
        ),
    )
    for name, label in sets:
        rows = _crop_set(name, cache, label, lambda r: r["subject"])
        parts = _subject_parts([r[4] for r in rows], [r[2] or 0 for r in rows])
        for (_, ctx, eg, sg, _), part in zip(rows, parts, strict=True):
            truth = eg if attribute == "eyeglasses" else sg
            if part == "validation" and ctx is not None and truth is not None:
                yield name, ctx, truth


def cew_labelled() -> Labelled:
    """The CALIBRATION part of CEW's closed eyes (train/train_eyes.py's split by source
    picture; the eyes head is calibrated on it): both eyes closed."""
    from train.train_eyes import FRACTIONS as EFRACTIONS
    from train.train_eyes import cew

    src = cew()
    for k in group_split(src.groups, EFRACTIONS, seed=SEED)[1]:
        if src.faces.found[k]:
            yield "cew_closed_faces", src.faces.context(int(k)), 0


def judge(attribute: str, items: Labelled) -> Judged:
    """Run the raw analyzer of ``attribute`` (no band) on its labelled faces."""
    (analyzer,) = create([attribute], _withhold=False)
    out = Judged()
    for source, ctx, truth in items:
        col = analyzer(ctx.without_caches())
        value = col.values[0]
        if value is None:
            out.unjudged += 1
            continue
        out.truth.append(truth)
        out.value.append(answer_value(attribute, value))
        out.right.append(is_right(attribute, value, truth))
        out.conf.append(float(col.confidence[0]))
        out.source.append(source)
    return out


def meets(j: Judged, t: float) -> bool:
    """Whether the answers with confidence >= ``t`` are right >= :data:`TARGET` of the time,
    overall and within each true class that has >= :data:`MIN_PER_CLASS` judged faces (so that
    a rare class's answers are not hidden by a common one's)."""
    conf = np.asarray(j.conf, np.float64)
    right = np.asarray(j.right, bool)
    truth = np.asarray([str(v) for v in j.truth])
    answered = conf >= t
    if answered.any() and right[answered].mean() < TARGET:
        return False
    # and on the real photos alone (the face-mask photos), overall
    real = answered & np.asarray([s == "facemask_kaggle_voc" for s in j.source], bool)
    if real.any() and right[real].mean() < TARGET:
        return False
    for c in set(truth.tolist()):
        cls = truth == c
        if (
            cls.sum() >= MIN_PER_CLASS
            and (answered & cls).any()
            and right[answered & cls].mean() < TARGET
        ):
            return False
    # and within each answered VALUE given >= MIN_PER_CLASS times: a rare wrong value (a masked
    # face called "none") must not hide among the common right answers of the other value
    values = np.asarray([str(v) for v in j.value]) if j.value else None
    if values is not None:
        for v in set(values[answered].tolist()):
            given = answered & (values == v)
            if given.sum() >= MIN_PER_CLASS and right[given].mean() < TARGET:
                return False
    return True


def choose(j: Judged) -> tuple[float, bool]:
    """The band (:data:`GRID` rule in the module doc) and whether the faces were too few."""
    ok = [meets(j, t) for t in GRID]
    band = NEVER_BELOW
    for k in range(len(GRID)):
        if all(ok[k:]):
            band = GRID[k]
            break
    # "few" counts the REAL photos only (the face-mask photos): the studio and crop sets help
    # choose the band but cannot show that it holds on photos of people
    real = [t for t, s in zip(j.truth, j.source, strict=True) if s == "facemask_kaggle_voc"]
    classes = CLASSES if j.truth and isinstance(j.truth[0], int) and max(j.truth) > 1 else (0, 1)
    counts = [real.count(c) for c in range(len(classes))]
    few = len(real) < MIN_FACES or min(counts) < MIN_PER_CLASS
    if few:
        band = max(band, FEW_FLOOR)
    return band, few


def curve(name: str, j: Judged) -> str:
    """One line per band step of interest: per true class, right / answered of judged."""
    conf = np.asarray(j.conf, np.float64)
    right = np.asarray(j.right, bool)
    truth = np.asarray([str(v) for v in j.truth])
    real = np.asarray([s == "facemask_kaggle_voc" for s in j.source], bool)
    out = [f"{name}:"]
    for t in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98):
        a = conf >= t
        cells = []
        for c in sorted(set(truth.tolist())):
            for what, m in (("all", truth == c), ("real", (truth == c) & real)):
                if m.any():
                    cells.append(
                        f"{c}/{what} {int((right & a & m).sum())}/{int((a & m).sum())}"
                        f" of {int(m.sum())}"
                    )
        out.append(f"  >= {t:.2f}: " + "; ".join(cells))
    return "\n".join(out)


def summary(attribute: str, j: Judged, band: float, few: bool) -> dict[str, Any]:
    conf = np.asarray(j.conf, np.float64)
    right = np.asarray(j.right, bool)
    answered = conf >= band
    classes = sorted(set(j.truth))
    truth = np.asarray([str(v) for v in j.truth])
    per_class_answered = {
        str(c): (
            float(right[answered & (truth == str(c))].mean())
            if (answered & (truth == str(c))).any()
            else math.nan
        )
        for c in classes
    }
    real = np.asarray([s == "facemask_kaggle_voc" for s in j.source], bool)
    return {
        "real": f"{int((right & answered & real).sum())}/{int((answered & real).sum())}"
        f" of {int(real.sum())}",
        "answered_accuracy_per_class": per_class_answered,
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
    ap.add_argument(
        "--reuse", metavar="DIR", help="keep the raw answers in DIR and reuse them (a scratch dir)"
    )
    args = ap.parse_args(argv)
    faces = facemask_faces(args.cache)
    parts: dict[int, str] = {}
    for p, idx in zip(("train", "validation", "test"), split(faces), strict=True):
        for i in idx:
            parts[int(i)] = p
    names = args.only.split(",") if args.only else list(SOURCES)
    curves: list[str] = []
    print(
        "| attribute | facemask photos | judged per class (right, answered) | right, all "
        "| band | answered "
        "| right, answered | abstained | real photos: right/answered of judged | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        items: Labelled = facemask_labelled(name, faces, parts)
        if name in ("eyeglasses", "sunglasses"):
            items = itertools.chain(items, eyewear_labelled(name, args.cache))
        elif name == "eyes_open":
            items = itertools.chain(items, cew_labelled())
        dump = Path(args.reuse) / f"{name}.json" if args.reuse else None
        if dump is not None and dump.exists():
            j = Judged(**json.loads(dump.read_text()))
        else:
            j = judge(name, items)
            if dump is not None:
                dump.parent.mkdir(parents=True, exist_ok=True)
                dump.write_text(json.dumps(j.__dict__))
        curves.append(curve(name, j))
        band, few = choose(j)
        s = summary(name, j, band, few)
        per = ", ".join(
            f"{k}: {v} ({s['answered_accuracy_per_class'][k]:.3f})"
            for k, v in s["per_class"].items()
        )
        note = "too few labelled real faces: band at least 0.90" if few else ""
        print(
            f"| {name} | {s['photos']} | {per} | {s['accuracy_all']:.3f} "
            f"| {band:.2f} | {s['answered']} | {s['answered_accuracy']:.3f} "
            f"| {s['abstention']:.3f} | {s['real']} | {note} |",
            flush=True,
        )
        if not args.check:
            write_band(name, band)
    print("\nRight among the answers given, per true class, by band (answered / judged):")
    print("\n".join(curves))


if __name__ == "__main__":
    main()
