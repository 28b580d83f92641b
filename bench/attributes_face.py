"""Benchmark of the face-shape attributes ``smile``, ``eyes_open`` and ``mouth_open``.

Usage (from the repository root; needs ``../shared/data``)::

    .venv/bin/python bench/attributes_face.py              # everything
    .venv/bin/python bench/attributes_face.py --limit 200  # a quick look

The faces of the crop sets are cached in ``bench/.cache/faces`` (git-ignored; the first run
takes ~20 min on 2 cores, mostly SMILEsmileD's 13,165 crops through the pipeline).

Every figure is measured on data that was never used to train, calibrate or tune the
attribute it measures:

* ``smile``: trained on SMILEsmileD, measured on GENKI-4K (``genki4k_crops``, rows with
  ``crop_status == ok``: a cross-data-set figure); the SMILEsmileD held-out split (15%, never
  trained or calibrated on) is shown for comparison.
* ``eyes_open``: closed-eye recall on the held-out 30% of CEW (split by source picture, as in
  train/train_eyes.py) and the false-"closed" rate on the HELEN faces whose human-landmark eye
  aspect ratio is >= 0.2 for both eyes (open; HELEN is research use, evaluation only). A face
  counts as "called closed" (CEW) only when every judged eye is called closed, and as falsely
  called closed (HELEN) when any judged eye is. The per-eye table pools both sets. Also the
  share of everyday street faces called closed: the CC0 face-mask TEST photos (the mask head's
  split by photo; never trained on or used to choose), faces >= 40 px, whose eyes nobody
  labelled - ASSUMED open, so a few "closed" answers there may be right.
* ``mouth_open``: against HELEN, where "open" means the human-landmark ``mouth_inner_ratio``
  (mean inner-lip gap / inner mouth width, from the 68 human points) is > 0.10. No labelled
  mouth-open data set exists here: that derived label is the truth.

Faces come from mien's own pipeline (``train.common.pipeline``: landmarks, head pose, mesh):
for the crop sets the main face of each crop, for HELEN the detected face whose box holds both
human eye centres, nearest to them. Pictures where no face is found are counted apart. Metrics:
accuracy, balanced accuracy, ROC AUC (of p(positive)), ECE (10 equal bins of the reported
confidence), all on the faces the attribute judged; "unknown" is the share of found faces the
attribute declined (value null), "no face" the share of pictures without a face. "ms/face" is
the attribute's own time per face (features + head, not the detector or mesh), wall clock on
this machine. Output: Markdown tables on stdout, everything in bench/results/attributes_face.json.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.eyes import EyesOpenAnalyzer
from mien.analyzers.attributes.mouth import OPEN_RATIO, MouthOpenAnalyzer
from mien.analyzers.attributes.smile import SmileAnalyzer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from train.common import (  # noqa: E402
    SHARED_DATA,
    CropFaces,
    classification_report,
    crop_faces,
    load_rgb,
    pipeline,
)

from metrics import bootstrap_interval, wilson_interval  # noqa: E402

OUT = REPO / "bench" / "results" / "attributes_face.json"
HELEN_OPEN_EAR = 0.2
#: A judge of one face: ``(value, confidence)``, ``(None, reason)``, or for eyes_open with one
#: eye null ``(value, confidence, why)`` (mien.analyzers.attributes.base.Verdict)
Judge = Callable[[FaceContext, int], tuple[Any, ...]]


def _rows(name: str) -> list[dict[str, str]]:
    with open(SHARED_DATA / name / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def timed(judge: Judge, ctx: FaceContext) -> tuple[Any, float | str, float]:
    ctx = ctx.without_caches()  # each attribute timed with all its own work
    t = time.perf_counter()
    verdict = judge(ctx, 0)
    return verdict[0], verdict[1], (time.perf_counter() - t) * 1000.0


def binary_metrics(
    p_pos: npt.NDArray[np.float64], y: npt.NDArray[np.int64], n_total: int, n_noface: int
) -> dict[str, float]:
    """Metrics of judged faces: ``p_pos`` the calibrated p(positive), ``y`` the truth."""
    proba = np.stack([1.0 - p_pos, p_pos], axis=1).astype(np.float32)
    rep = classification_report(proba, y) if len(y) else {"n": 0.0}
    n_found = n_total - n_noface
    rep["n_pictures"] = float(n_total)
    rep["no_face"] = n_noface / max(n_total, 1)
    rep["unknown"] = (n_found - len(y)) / max(n_found, 1)
    rep["positives"] = float(y.sum())
    if len(y):
        pred = p_pos > 0.5
        if len(set(y.tolist())) == 2:
            lo, hi = bootstrap_interval(y, pred.astype(np.int64))
            rep["balanced_accuracy_lo"], rep["balanced_accuracy_hi"] = lo, hi
        rep["recall_positive"] = float(pred[y == 1].mean()) if (y == 1).any() else float("nan")
        rep["recall_negative"] = float((~pred)[y == 0].mean()) if (y == 0).any() else float("nan")
    return rep


# ---------------------------------------------------------------------------- smile


def judge_all(
    items: Iterable[tuple[FaceContext | None, int]], judge: Judge
) -> tuple[dict[str, float], list[float], dict[str, int]]:
    """Judge each (face, truth) pair; a None face counts as "no face found". Returns the binary
    metrics of the judged faces, the ms per face and the reasons of the "unknown" answers."""
    p, y, ms = [], [], []
    reasons: dict[str, int] = {}
    noface = n = 0
    for ctx, truth in items:
        n += 1
        if ctx is None:
            noface += 1
            continue
        value, second, t = timed(judge, ctx)
        ms.append(t)
        if value is None:
            key = str(second).split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
            continue
        p.append(float(second) if value else 1.0 - float(second))
        y.append(truth)
    rep = binary_metrics(np.asarray(p), np.asarray(y, np.int64), n, noface)
    return rep, ms, reasons


def smile_on(
    faces: CropFaces, y_all: npt.NDArray[np.int64], rows: npt.NDArray[np.intp], judge: Judge
) -> tuple[dict[str, float], list[float], dict[str, int]]:
    items = ((faces.context(int(k)) if faces.found[k] else None, int(y_all[k])) for k in rows)
    return judge_all(items, judge)


def bench_smile(limit: int | None) -> dict[str, Any]:
    analyzer = SmileAnalyzer()
    out: dict[str, Any] = {}
    rows = [r for r in _rows("genki4k_crops") if r["crop_status"] == "ok"]
    faces = crop_faces(
        "genki4k_crops", [SHARED_DATA / "genki4k_crops" / "images" / r["file"] for r in rows]
    )
    y = np.array([int(r["smile"]) for r in rows], np.int64)
    idx = np.arange(len(rows))[:limit]
    rep, ms, reasons = smile_on(faces, y, idx, analyzer.judge)
    out["genki4k"] = {**rep, "ms_per_face": float(np.mean(ms)), "unknown_reasons": reasons}

    from train.train_smile import load, splits

    files, y_s, paths = load()
    held = splits(files)[2][:limit]
    faces_s = crop_faces("smilesmiled", paths)
    rep, ms, reasons = smile_on(faces_s, y_s, held, analyzer.judge)
    out["smilesmiled_heldout"] = {
        **rep,
        "ms_per_face": float(np.mean(ms)),
        "unknown_reasons": reasons,
    }
    return out


# ---------------------------------------------------------------------------- HELEN


def helen_faces(limit: int | None) -> list[tuple[dict[str, str], FaceContext | None]]:
    """Every HELEN face of faces.csv with mien's matching face (None when not found)."""
    with open(SHARED_DATA / "helen_afw_300w" / "faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:limit]
    with open(SHARED_DATA / "helen_afw_300w" / "landmarks68.json") as fh:
        marks = json.load(fh)
    analyzer = pipeline()
    out: list[tuple[dict[str, str], FaceContext | None]] = []
    for r in rows:
        folder, name = r["image"].split("/", 1)
        pts = np.asarray(marks[folder][name][int(r["face_index"])]["landmarks68"], np.float64)
        eyes_h = np.stack([pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)])
        rgb = load_rgb(SHARED_DATA / "helen_afw_300w" / r["image"])
        faces = analyzer.analyze_array(rgb)
        best, best_d = None, np.inf
        for j in range(len(faces)):
            b = faces.boxes[j]
            inside = all(b[0] <= x <= b[2] and b[1] <= yy <= b[3] for x, yy in eyes_h)
            assert faces.landmarks is not None
            d = float(np.abs(faces.landmarks[j, :2] - eyes_h).sum())
            if inside and d < best_d:
                best, best_d = j, d
        ctx = None
        if best is not None:
            assert faces.mesh is not None and faces.head_pose is not None
            assert faces.landmarks is not None
            ctx = FaceContext(
                rgb=rgb,
                boxes=faces.boxes[best : best + 1],
                landmarks=faces.landmarks[best : best + 1],
                mesh=faces.mesh[best : best + 1],
                head_pose=faces.head_pose[best : best + 1],
            )
        out.append((r, ctx))
    return out


# ---------------------------------------------------------------------------- eyes


def bench_eyes(
    helen: list[tuple[dict[str, str], FaceContext | None]], limit: int | None
) -> dict[str, Any]:
    from train.train_eyes import cew_heldout

    analyzer = EyesOpenAnalyzer()
    eye_p: list[float] = []
    eye_y: list[int] = []
    ms: list[float] = []
    out: dict[str, Any] = {}

    def run(
        items: list[FaceContext | None], truth_open: int, per_eye: bool = True
    ) -> tuple[dict[str, float], dict[str, int]]:
        noface = unknown = called_closed = judged = eyes_judged = eyes_closed = 0
        reasons: dict[str, int] = {}
        for ctx in items:
            if ctx is None:
                noface += 1
                continue
            value, second, t = timed(analyzer.judge, ctx)
            ms.append(t)
            if value is None:
                unknown += 1
                key = str(second).split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
                continue
            judged += 1
            states = [v for v in value.values() if v is not None]
            sides = [side for side in ("left", "right") if value[side] is not None]
            closed = [not s for s in states]
            eyes_judged += len(closed)
            eyes_closed += sum(closed)
            if per_eye:
                p_open = _eyes_p_open(analyzer, ctx, sides)
                eye_p.extend(float(v) for v in p_open)
                eye_y.extend([truth_open] * len(p_open))
            if truth_open:
                called_closed += any(closed)
            else:
                called_closed += all(closed)
        n = len(items)
        return {
            "n_faces": float(n),
            "judged": float(judged),
            "called_closed": called_closed / max(judged, 1),
            "called_closed_lo": wilson_interval(called_closed, judged)[0],
            "called_closed_hi": wilson_interval(called_closed, judged)[1],
            "no_face": noface / max(n, 1),
            "unknown": unknown / max(n - noface, 1),
            "eyes_judged": float(eyes_judged),
            "eyes_called_closed": eyes_closed / max(eyes_judged, 1),
        }, reasons

    faces, held = cew_heldout()
    held = held[:limit]
    items = [faces.context(int(k)) if faces.found[k] else None for k in held]
    out["cew_heldout_closed"], out["cew_unknown_reasons"] = run(items, 0)
    open_items = [
        ctx
        for r, ctx in helen
        if float(r["ear_right_eye"]) >= HELEN_OPEN_EAR
        and float(r["ear_left_eye"]) >= HELEN_OPEN_EAR
    ]
    out["helen_open"], out["helen_unknown_reasons"] = run(open_items, 1)
    # everyday street photos: the CC0 face-mask TEST photos (never trained on, nor used to
    # choose), faces >= 40 px; nobody labelled their eyes: ASSUMED open, so a few "closed"
    # answers may be right (blinks, eyes cast down); not part of the per-eye metrics
    from train.train_eyes import FACEMASK_MIN_FACE_PX
    from train.train_mask import facemask_faces
    from train.train_mask import split as facemask_split

    boxed = facemask_faces()
    street = [
        boxed[k].ctx
        for k in sorted(int(r) for r in facemask_split(boxed)[2])
        if boxed[k].width >= FACEMASK_MIN_FACE_PX
    ][:limit]
    out["facemask_test_open"], out["facemask_unknown_reasons"] = run(street, 1, per_eye=False)
    rep = binary_metrics(np.asarray(eye_p), np.asarray(eye_y, np.int64), len(eye_y), 0)
    rep.pop("unknown")
    rep.pop("no_face")
    rep.pop("n_pictures")
    out["per_eye"] = rep
    out["ms_per_face"] = float(np.mean(ms))
    return out


def _eyes_p_open(
    analyzer: EyesOpenAnalyzer, ctx: FaceContext, sides: list[str]
) -> npt.NDArray[np.float32]:
    """Calibrated p(open) of the named eyes of the face of ``ctx``."""
    from mien.analyzers.attributes import eyes

    inputs = [eyes.eye_inputs(ctx, 0, eyes.LEFT if s == "left" else eyes.RIGHT) for s in sides]
    return eyes.open_probability(analyzer.head, [p for p, _ in inputs], [g for _, g in inputs])


# ---------------------------------------------------------------------------- mouth


def bench_mouth(helen: list[tuple[dict[str, str], FaceContext | None]]) -> dict[str, Any]:
    analyzer = MouthOpenAnalyzer()
    items = ((ctx, int(float(r["mouth_inner_ratio"]) > OPEN_RATIO)) for r, ctx in helen)
    rep, ms, reasons = judge_all(items, analyzer.judge)
    return {"helen": {**rep, "ms_per_face": float(np.mean(ms)), "unknown_reasons": reasons}}


# ---------------------------------------------------------------------------- report


def _pct(v: float) -> str:
    return f"{v:.1%}" if np.isfinite(v) else "–"


def _ci(r: dict[str, float], key: str) -> str:
    """``r[key]`` with its 95% interval (``key_lo``-``key_hi``) when there is one: balanced
    accuracies by bootstrap over the faces (within each class), rates by Wilson's interval."""
    if f"{key}_lo" not in r:
        return f"{r[key]:.3f}"
    return f"{r[key]:.3f} ({r[key + '_lo']:.2f}-{r[key + '_hi']:.2f})"


def _row(name: str, r: dict[str, float], ms: float) -> str:
    return (
        f"| {name} | {int(r['n'])} | {r['accuracy']:.3f} | {_ci(r, 'balanced_accuracy')} | "
        f"{r['roc_auc']:.3f} | {r['ece']:.3f} | {ms:.2f} | {_pct(r['unknown'])} | "
        f"{_pct(r['no_face'])} |"
    )


HEADER = (
    "| attribute, data | n judged | accuracy | bal. acc. (95% interval) | ROC AUC | ECE | ms/face "
    "| unknown "
    "| no face |\n|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N pictures of each set")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    command = " ".join(["python", "bench/attributes_face.py", *map(shlex.quote, sys.argv[1:])])
    t0 = time.time()
    smile = bench_smile(args.limit)
    helen = helen_faces(args.limit)
    eyes = bench_eyes(helen, args.limit)
    mouth = bench_mouth(helen)

    print(f"Command: `.venv/bin/{command}`\n")
    print(HEADER)
    g, s = smile["genki4k"], smile["smilesmiled_heldout"]
    print(_row("smile, GENKI-4K (cross-data-set)", g, g["ms_per_face"]))
    print(_row("smile, SMILEsmileD held-out (same data set)", s, s["ms_per_face"]))
    e = eyes["per_eye"]
    e["unknown"] = float("nan")
    e["no_face"] = float("nan")
    print(_row("eyes_open per eye (n = eyes), CEW held-out + HELEN open", e, eyes["ms_per_face"]))
    m = mouth["helen"]
    print(_row(f"mouth_open, HELEN (human ratio > {OPEN_RATIO})", m, m["ms_per_face"]))
    c, h = eyes["cew_heldout_closed"], eyes["helen_open"]
    print(
        "\n| eyes_open, per face | faces | judged | called closed (95% interval) | unknown "
        "| no face |\n"
        "|---|---|---|---|---|---|"
    )
    print(
        f"| CEW held-out, both eyes closed (target >= 0.95) | {int(c['n_faces'])} | "
        f"{int(c['judged'])} | {_ci(c, 'called_closed')} | {c['unknown']:.1%} | "
        f"{c['no_face']:.1%} |"
    )
    print(
        f"| HELEN, open (human EAR >= {HELEN_OPEN_EAR} both eyes; target <= 0.05) | "
        f"{int(h['n_faces'])} | {int(h['judged'])} | {_ci(h, 'called_closed')} | "
        f"{h['unknown']:.1%} | {h['no_face']:.1%} |"
    )
    f = eyes["facemask_test_open"]
    print(
        f"| face-mask test photos, faces >= 40 px (eyes ASSUMED open, not labelled) | "
        f"{int(f['n_faces'])} | {int(f['judged'])} | {_ci(f, 'called_closed')} | "
        f"{f['unknown']:.1%} | {f['no_face']:.1%} |"
    )
    print(
        f"\neyes called closed, per eye: CEW held-out {c['eyes_called_closed']:.3f} of "
        f"{int(c['eyes_judged'])}, HELEN open {h['eyes_called_closed']:.3f} of "
        f"{int(h['eyes_judged'])}, face-mask test {f['eyes_called_closed']:.3f} of "
        f"{int(f['eyes_judged'])}"
    )
    print(
        f"\nrecall of smiles / of non-smiles: GENKI-4K {g['recall_positive']:.3f} / "
        f"{g['recall_negative']:.3f} ({int(g['positives'])} smiles of {int(g['n'])}); "
        f"SMILEsmileD held-out {s['recall_positive']:.3f} / {s['recall_negative']:.3f}. "
        f"mouth_open, HELEN: recall of open {m['recall_positive']:.3f} / of closed "
        f"{m['recall_negative']:.3f} ({int(m['positives'])} open of {int(m['n'])})"
    )
    print(
        f"\nunknown reasons: smile GENKI {g['unknown_reasons']}, eyes CEW "
        f"{eyes['cew_unknown_reasons']}, eyes HELEN {eyes['helen_unknown_reasons']}, eyes "
        f"face-mask {eyes['facemask_unknown_reasons']}, mouth HELEN {m['unknown_reasons']}"
    )
    report = {
        "command": command,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "seconds": round(time.time() - t0, 1),
        "smile": smile,
        "eyes_open": eyes,
        "mouth_open": mouth,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
