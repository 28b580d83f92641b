"""Benchmark of the attributes ``mask``, ``eyeglasses``, ``sunglasses`` and ``headwear``: every
figure on faces that were never used to train, calibrate or tune the attribute measured.

Usage (from the repository root)::

    .venv/bin/python bench/attributes_cover.py              # Markdown on stdout + JSON
    .venv/bin/python bench/attributes_cover.py --no-cache   # rerun detection + mesh too

Data (read-only, ``../shared/data``; see each set's SOURCE.txt):

* mask: the TEST photos of ``facemask_kaggle_voc`` (the 20% split off by photo in
  train/train_mask.py), faces whose labelled box is >= 20 px wide (and, for the record, the
  smaller ones).
* eyeglasses: the held-out subjects of ``olivetti_glasses`` and ``cmu_faces_sunglasses_pose``,
  the test photos' hand-labelled faces of ``facemask_kaggle_voc``
  (train/labels/facemask_headwear_eyewear.csv), and the evaluation-only ``glasses_slinko``
  (eyeglasses_any: any eyewear), ``meglass_samples`` and ``sunglasses_selfies_scraped`` (all
  positive, weak labels: recall only).
* sunglasses: the same held-out parts (Olivetti and the face-mask test photos have no
  sunglasses: accuracy = share correctly called "no"), ``glasses_slinko`` with sunglasses read
  off by eye (train/labels/glasses_slinko_sunglasses.csv) and the selfies (recall only).
* headwear: the test photos' hand-labelled faces of ``facemask_kaggle_voc``.

Columns: ``n`` faces judged; accuracy, balanced accuracy, ROC AUC (mask: macro one-vs-rest)
and ECE (10 equal-width bins of the reported value's confidence) on them; ``ms/face`` the
attribute's own time per face (crop, features, head; the detector and mesh excluded), mean
over the set, one thread; ``unknown`` the share of found faces the attribute declined to judge
(too small, too turned... and, since issue 17, answers withheld below the attribute's abstention
band: ``abstained``, part of ``unknown``; accuracy and the rest are then those of the answers
given); ``coverage`` the share of labelled faces that mien found at all
(detector; face-mask photos: a detection with IoU >= 0.4 to the labelled box).

The faces come through mien's own pipeline (:func:`train.common.pipeline`, cached in
/tmp/mien-train-cache unless ``--no-cache``); the attributes are the shipped analyzers.
Writes bench/results/attributes_cover.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from train.common import expected_calibration_error  # noqa: E402
from train.train_glasses import eyewear_faces  # noqa: E402
from train.train_headwear import headwear_faces  # noqa: E402
from train.train_mask import DEFAULT_CACHE, facemask_faces, split  # noqa: E402

from metrics import bootstrap_interval, wilson_interval  # noqa: E402
from mien.analyzers.attributes import create  # noqa: E402
from mien.analyzers.attributes.base import FaceContext  # noqa: E402
from mien.analyzers.attributes.mask import CLASSES  # noqa: E402

OUT = REPO / "bench" / "results" / "attributes_cover.json"


def run_attribute(
    analyzer: Any, contexts: Sequence[FaceContext], reasons: list[str | None] | None = None
) -> tuple[list[Any], list[float], float]:
    """Values, confidences and mean ms per face of ``analyzer`` on one-face contexts (the
    reasons of the nulls appended to ``reasons`` when given)."""
    values: list[Any] = []
    conf: list[float] = []
    total = 0.0
    for ctx in contexts:
        c = ctx.without_caches()  # each attribute timed with all its own work
        t0 = time.perf_counter()
        col = analyzer(c)
        total += time.perf_counter() - t0
        values.append(col.values[0])
        conf.append(float(col.confidence[0]))
        if reasons is not None:
            reasons.append(col.reasons[0])
    return values, conf, 1000.0 * total / max(1, len(contexts))


def binary_row(
    name: str,
    labels: Sequence[int],
    values: Sequence[Any],
    conf: Sequence[float],
    n_labelled: int,
    ms: float,
    note: str = "",
    reasons: Sequence[str | None] = (),
) -> dict[str, Any]:
    """Metrics of a yes/no attribute; ``labels`` and ``values`` for the found faces."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    judged = [i for i, v in enumerate(values) if v is not None]
    y = np.asarray([labels[i] for i in judged], np.int64)
    pred = np.asarray([bool(values[i]) for i in judged], np.int64)
    c = np.asarray([conf[i] for i in judged], np.float64)
    p_yes = np.where(pred == 1, c, 1.0 - c)
    row: dict[str, Any] = {
        "set": name,
        "n": len(judged),
        "positives": int(y.sum()),
        "accuracy": float((pred == y).mean()) if len(y) else math.nan,
        "balanced_accuracy": math.nan,
        "roc_auc": math.nan,
        "ece": expected_calibration_error(c, pred == y) if len(y) else math.nan,
        "recall": float(pred[y == 1].mean()) if (y == 1).any() else math.nan,
        "ms_per_face": ms,
        "unknown": 1.0 - len(judged) / max(1, len(values)),
        "abstained": _abstained(reasons, len(values)),
        "coverage": len(values) / max(1, n_labelled),
        "note": note,
    }
    if (y == 1).any():
        row["recall_ci"] = wilson_interval(int(pred[y == 1].sum()), int((y == 1).sum()))
    if len(set(y.tolist())) == 2:
        row["balanced_accuracy"] = float(balanced_accuracy_score(y, pred))
        row["balanced_accuracy_ci"] = bootstrap_interval(y, pred)
        row["roc_auc"] = float(roc_auc_score(y, p_yes))
    return row


def _abstained(reasons: Sequence[str | None], n: int) -> float:
    """Share of the found faces whose answer was withheld below the attribute's abstention band
    (reason "uncertain (...)"; part of ``unknown``)."""
    if not reasons:
        return math.nan
    return sum((r or "").startswith("uncertain (") for r in reasons) / max(1, n)


def eyewear_rows(cache: Path | None, analyzers: dict[str, Any]) -> list[dict[str, Any]]:
    faces = eyewear_faces(cache)
    sets = [
        ("olivetti_glasses", "test", "held-out subjects"),
        ("cmu_faces_sunglasses_pose", "test", "held-out subjects; 4 poses"),
        (
            "facemask_kaggle_voc",
            "test",
            "test photos, faces >= 40 px found by mien, labelled by eye",
        ),
        ("glasses_slinko", "eval", "evaluation only"),
        ("meglass_samples", "eval", "evaluation only; smoke test"),
        ("sunglasses_selfies_scraped", "eval", "evaluation only; weak labels, recall only"),
    ]
    rows = []
    for attr in ("eyeglasses", "sunglasses"):
        for source, part, note in sets:
            labelled = [
                f
                for f in faces
                if f.source == source and f.part == part and getattr(f, attr) is not None
            ]
            if not labelled:
                continue
            found = [f for f in labelled if f.ctx is not None]
            why: list[str | None] = []
            values, conf, ms = run_attribute(
                analyzers[attr], [f.ctx for f in found if f.ctx is not None], why
            )
            labels = [int(getattr(f, attr)) for f in found]
            row = binary_row(source, labels, values, conf, len(labelled), ms, note, why)
            row["attribute"] = attr
            rows.append(row)
    return rows


def headwear_rows(cache: Path | None, analyzer: Any) -> list[dict[str, Any]]:
    faces = [f for f in headwear_faces(cache) if f.part == "test"]
    why: list[str | None] = []
    values, conf, ms = run_attribute(analyzer, [f.ctx for f in faces], why)
    row = binary_row(
        "facemask_kaggle_voc",
        [f.headwear for f in faces],
        values,
        conf,
        len(faces),
        ms,
        "test photos, faces >= 40 px found by mien, labelled by eye (coverage not measurable)",
        why,
    )
    row["attribute"] = "headwear"
    return [row]


def mask_rows(cache: Path | None, analyzer: Any) -> list[dict[str, Any]]:
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    faces = facemask_faces(cache)
    _, _, test = split(faces)
    rows = []
    for lo, hi, label in ((20, math.inf, ">= 20 px"), (10, 20, "10-20 px"), (0, 10, "< 10 px")):
        labelled = [faces[int(i)] for i in test if lo <= faces[int(i)].width < hi]
        found = [f for f in labelled if f.ctx is not None]
        why: list[str | None] = []
        values, conf, ms = run_attribute(analyzer, [f.ctx for f in found if f.ctx is not None], why)
        judged = [i for i, v in enumerate(values) if v is not None]
        y = np.asarray([found[i].label for i in judged], np.int64)
        pred = np.asarray([CLASSES.index(values[i]) for i in judged], np.int64)
        c = np.asarray([conf[i] for i in judged])
        row: dict[str, Any] = {
            "attribute": "mask",
            "set": f"facemask_kaggle_voc test, {label}",
            "n": len(judged),
            "per_class": [int((y == k).sum()) for k in range(3)],
            "accuracy": float((pred == y).mean()) if len(y) else math.nan,
            "balanced_accuracy": math.nan,
            "balanced_accuracy_covered_vs_none": math.nan,
            "recall_per_class": [
                float((pred[y == k] == k).mean()) if (y == k).any() else math.nan for k in range(3)
            ],
            "roc_auc": math.nan,
            "ece": expected_calibration_error(c, pred == y) if len(y) else math.nan,
            "ms_per_face": ms,
            "unknown": 1.0 - len(judged) / max(1, len(values)),
            "abstained": _abstained(why, len(values)),
            "coverage": len(found) / max(1, len(labelled)),
        }
        if len(y) and len(set(y.tolist())) > 1:
            row["balanced_accuracy"] = float(balanced_accuracy_score(y, pred))
            row["balanced_accuracy_covered_vs_none"] = float(
                balanced_accuracy_score(y > 0, pred > 0)
            )
            row["balanced_accuracy_ci"] = bootstrap_interval(y, pred)
            row["balanced_accuracy_covered_vs_none_ci"] = bootstrap_interval(y > 0, pred > 0)
            x = np.stack([analyzer.features(found[i].ctx, 0) for i in judged])
            proba = analyzer.head.proba(x)
            if len(set(y.tolist())) == 3:  # macro one-vs-rest needs every class
                row["roc_auc"] = float(
                    roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=[0, 1, 2])
                )
        rows.append(row)
    return rows


def _f(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _ci(r: dict[str, Any], key: str) -> str:
    """``r[key]`` with its 95% interval (``key + "_ci"``) when there is one."""
    ci = r.get(key + "_ci")
    if ci is None or any(math.isnan(v) for v in ci):
        return _f(r[key])
    return f"{_f(r[key])} ({ci[0]:.2f}-{ci[1]:.2f})"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The tables; values in brackets are 95% intervals: balanced accuracies by bootstrap over
    the faces (within each class), recalls by Wilson's score interval."""
    out = []
    mask = [r for r in rows if r["attribute"] == "mask"]
    out += [
        "### mask (facemask_kaggle_voc, test photos)",
        "",
        "| faces | n | none/worn/incorrect | acc | bal. acc (3 classes; 95% interval) "
        "| bal. acc (covered vs none; 95% interval) | recall none/worn/incorrect | ROC AUC | ECE "
        "| ms/face | unknown | abstained | coverage |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in mask:
        rec = "/".join(_f(v, 2) for v in r["recall_per_class"])
        out.append(
            f"| {r['set'].split(', ')[1]} | {r['n']} | {'/'.join(map(str, r['per_class']))} "
            f"| {_f(r['accuracy'])} | {_ci(r, 'balanced_accuracy')} "
            f"| {_ci(r, 'balanced_accuracy_covered_vs_none')} | {rec} | {_f(r['roc_auc'])} "
            f"| {_f(r['ece'])} | {_f(r['ms_per_face'], 2)} | {_f(r['unknown'])} "
            f"| {_f(r.get('abstained', math.nan))} | {_f(r['coverage'])} |"
        )
    for attr in ("eyeglasses", "sunglasses", "headwear"):
        sel = [r for r in rows if r["attribute"] == attr]
        out += [
            "",
            f"### {attr}",
            "",
            "| set | n | positives | acc | bal. acc (95% interval) | recall (95% interval) "
            "| ROC AUC | ECE | ms/face | unknown | abstained "
            "| coverage | note |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sel:
            out.append(
                f"| {r['set']} | {r['n']} | {r['positives']} | {_f(r['accuracy'])} "
                f"| {_ci(r, 'balanced_accuracy')} | {_ci(r, 'recall')} | {_f(r['roc_auc'])} "
                f"| {_f(r['ece'])} | {_f(r['ms_per_face'], 2)} | {_f(r['unknown'])} "
                f"| {_f(r.get('abstained', math.nan))} | {_f(r['coverage'])} | {r['note']} |"
            )
    return "\n".join(out)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--no-cache", action="store_true", help="rerun detection and mesh")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    cache = None if args.no_cache else DEFAULT_CACHE
    analyzers = {a.name: a for a in create(["eyeglasses", "sunglasses", "mask", "headwear"])}
    rows = mask_rows(cache, analyzers["mask"])
    rows += eyewear_rows(cache, analyzers)
    rows += headwear_rows(cache, analyzers["headwear"])
    command = ".venv/bin/python bench/attributes_cover.py" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    text = markdown(rows)
    print(text)
    print(f"\nCommand: `{command}`")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": command,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
        },
        "models": {a.name: [m.sha256 for m in a.models] for a in analyzers.values()},
        "rows": _clean(rows),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
