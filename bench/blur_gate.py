"""How blurred may a face be before mien's attributes stop being reliable? (sets BLUR_GATE)

The experiment behind the "too blurred" rule of the observable attributes
(:data:`mien.analyzers.attributes.base.MIN_SHARPNESS`): labelled faces are blurred with a
Gaussian of sigma = k x face size (k = 0, 0.02, 0.04, 0.07, 0.10, 0.14), run through mien's
pipeline, and each attribute's answer is compared with the label, binned by the face's
``quality.sharpness`` (the measure a user sees, and the one the gate uses).

Data (never used to train the heads it measures):

* smile: GENKI-4K crops (``genki4k_crops``, rows with ``crop_status == ok``, the first N),
  smile labels from the data set;
* eyes_open: CEW held-out closed-eye crops (train/train_eyes.py's test split) and HELEN faces
  whose human landmarks show both eyes open (eye aspect ratio >= 0.2);
* mouth_open: the same HELEN faces, "open" = human inner-lip ratio > OPEN_RATIO.

The gate is the top of the highest sharpness bin (of >= ``--min-n`` faces) where any attribute
falls more than ``--tolerance`` (balanced accuracy; accuracy where a bin holds one class) below
its unblurred figure. Usage::

    .venv/bin/python bench/blur_gate.py              # writes bench/results/blur_gate.{md,json}
    .venv/bin/python bench/blur_gate.py --limit 40   # a quick look
    .venv/bin/python bench/blur_gate.py --render     # re-render the .md from the .json
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from train.common import SHARED_DATA, face_in_crop, load_rgb, pipeline  # noqa: E402

from mien.analyzers.attributes.base import FaceContext  # noqa: E402
from mien.analyzers.attributes.eyes import EyesOpenAnalyzer  # noqa: E402
from mien.analyzers.attributes.mouth import OPEN_RATIO, MouthOpenAnalyzer  # noqa: E402
from mien.analyzers.attributes.smile import SmileAnalyzer  # noqa: E402
from mien.analyzers.quality import face_quality  # noqa: E402

OUT = REPO / "bench" / "results" / "blur_gate"
LEVELS = (0.0, 0.02, 0.04, 0.07, 0.10, 0.14)
BINS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.01)


def blurred(rgb: npt.NDArray[np.uint8], sigma: float) -> npt.NDArray[np.uint8]:
    return rgb if sigma <= 0 else cv2.GaussianBlur(rgb, (0, 0), sigma)


def sharpness(ctx: FaceContext) -> float:
    return float(face_quality(ctx.rgb, ctx.boxes, ctx.landmarks)["sharpness"][0])


def helen_match(rgb: npt.NDArray[np.uint8], eyes_h: npt.NDArray[np.float64]) -> FaceContext | None:
    """mien's face whose box holds both human eye centres (nearest landmarks)."""
    faces = ANALYZER.analyze_array(rgb)
    best, best_d = None, np.inf
    for j in range(len(faces)):
        b = faces.boxes[j]
        if not all(b[0] <= x <= b[2] and b[1] <= y <= b[3] for x, y in eyes_h):
            continue
        assert faces.landmarks is not None
        d = float(np.abs(faces.landmarks[j, :2] - eyes_h).sum())
        if d < best_d:
            best, best_d = j, d
    if best is None:
        return None
    assert faces.mesh is not None and faces.head_pose is not None and faces.landmarks is not None
    s = slice(best, best + 1)
    return FaceContext(rgb, faces.boxes[s], faces.landmarks[s], faces.mesh[s], faces.head_pose[s])


def samples(limit: int) -> list[dict[str, Any]]:
    """Labelled pictures: path, face size in px (for sigma), and what they are labelled."""
    out: list[dict[str, Any]] = []
    with open(SHARED_DATA / "genki4k_crops" / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["crop_status"] == "ok"][:limit]
    for r in rows:
        out.append(
            {
                "set": "genki",
                "path": SHARED_DATA / "genki4k_crops" / "images" / r["file"],
                "smile": int(r["smile"]),
            }
        )
    from train.train_eyes import cew_heldout_files

    for f in cew_heldout_files()[:limit]:
        out.append(
            {"set": "cew", "path": SHARED_DATA / "cew_closed_faces" / "images" / f, "eyes_open": 0}
        )
    with open(SHARED_DATA / "helen_afw_300w" / "faces.csv", newline="") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if float(r["ear_right_eye"]) >= 0.2 and float(r["ear_left_eye"]) >= 0.2
        ][:limit]
    with open(SHARED_DATA / "helen_afw_300w" / "landmarks68.json") as fh:
        marks = json.load(fh)
    for r in rows:
        folder, name = r["image"].split("/", 1)
        pts = np.asarray(marks[folder][name][int(r["face_index"])]["landmarks68"], np.float64)
        out.append(
            {
                "set": "helen",
                "path": SHARED_DATA / "helen_afw_300w" / r["image"],
                "size": float(r["lm_xmax"]) - float(r["lm_xmin"]),
                "eyes": np.stack([pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)]),
                "eyes_open": 1,
                "mouth_open": int(float(r["mouth_inner_ratio"]) > OPEN_RATIO),
            }
        )
    return out


def run(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    smile, eyes, mouth = SmileAnalyzer(), EyesOpenAnalyzer(), MouthOpenAnalyzer()
    rows: list[dict[str, Any]] = []
    for n, it in enumerate(items):
        rgb0 = load_rgb(it["path"])
        size = it.get("size") or 0.5 * min(rgb0.shape[:2])
        for k in LEVELS:
            rgb = blurred(rgb0, k * size)
            ctx = (
                helen_match(rgb, it["eyes"])
                if it["set"] == "helen"
                else face_in_crop(ANALYZER, rgb)
            )
            if ctx is None:
                continue
            row: dict[str, Any] = {"set": it["set"], "k": k, "sharpness": sharpness(ctx)}
            for name, an in (("smile", smile), ("eyes_open", eyes), ("mouth_open", mouth)):
                if name not in it:
                    continue
                value, _ = an.judge(ctx, 0)
                if value is None:
                    row[name] = None
                elif name == "eyes_open":
                    states = [v for v in value.values() if v is not None]
                    # open face: wrong when any eye is called closed; closed face: right when all
                    row[name] = int(all(states)) if it[name] else int(not any(states))
                else:
                    row[name] = int(bool(value) == bool(it[name]))
                row[name + "_truth"] = it[name]
            rows.append(row)
        if n % 50 == 0:
            print(f"{n}/{len(items)}", file=sys.stderr)
    return rows


def score(rows: list[dict[str, Any]], name: str) -> tuple[float, int, float]:
    """(balanced accuracy over the labelled classes, faces judged, share unknown)."""
    had = [r for r in rows if name + "_truth" in r]
    judged = [r for r in had if r[name] is not None]
    if not judged:
        return float("nan"), 0, float("nan")
    per_class = [
        np.mean([r[name] for r in judged if r[name + "_truth"] == c])
        for c in (0, 1)
        if any(r[name + "_truth"] == c for r in judged)
    ]
    return float(np.mean(per_class)), len(judged), 1.0 - len(judged) / len(had)


NAMES = ("smile", "eyes_open", "mouth_open")


def gate_of(table: list[dict[str, Any]], ref: dict[str, float], tol: float, min_n: int) -> float:
    """The top of the highest bin (with >= ``min_n`` faces) where an attribute falls more than
    ``tol`` below its unblurred figure."""
    gate = 0.0
    for row in table:
        if any(row[n][1] >= min_n and row[n][0] < ref[n] - tol for n in NAMES):
            gate = max(gate, row["bin"][1])
    return gate


def render(doc: dict[str, Any]) -> str:
    ref, table = doc["reference"], doc["bins"]
    gate = gate_of(table, ref, doc["tolerance"], doc["min_n"])
    lines = [
        "# Blur gate: attribute accuracy by face sharpness",
        "",
        f"Command: `.venv/bin/python bench/blur_gate.py --limit {doc['limit']}` "
        f"(tolerance {doc['tolerance']}, bins of >= {doc['min_n']} faces). Faces blurred with "
        f"sigma = k x face size, k in {list(LEVELS)}; data: GENKI-4K crops (smile), CEW "
        "held-out closed eyes + HELEN open eyes (eyes_open), HELEN (mouth_open). Cells: balanced "
        "accuracy (accuracy where a bin holds one class), faces judged, share unknown.",
        "",
        "| sharpness | " + " | ".join(NAMES) + " |",
        "|---|" + "---|" * len(NAMES),
        "| unblurred (k = 0) | "
        + " | ".join(f"{ref[n]:.3f} (n={doc['reference_n'][n]})" for n in NAMES)
        + " |",
    ]
    for row in table:
        cells = [
            f"{row[n][0]:.3f} (n={row[n][1]}, unk {row[n][2]:.2f})" if row[n][1] else "-"
            for n in NAMES
        ]
        lines.append(f"| [{row['bin'][0]:.1f}, {row['bin'][1]:.1f}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Suggested gate (this rule): sharpness < **{gate:.2f}**. The gate mien uses "
        "(MIN_SHARPNESS in mien/analyzers/attributes/base.py) also weighs natural "
        "low-resolution faces; see docs/attributes.md.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="pictures per data set (default 100)")
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--min-n", type=int, default=30, help="ignore bins with fewer faces")
    ap.add_argument("--render", action="store_true", help="re-render the .md from the .json")
    args = ap.parse_args()
    if args.render:
        doc = json.loads(OUT.with_suffix(".json").read_text())
        doc.update(tolerance=args.tolerance, min_n=args.min_n)
    else:
        global ANALYZER
        ANALYZER = pipeline()
        rows = run(samples(args.limit))
        table: list[dict[str, Any]] = []
        for lo, hi in itertools.pairwise(BINS):
            b = [r for r in rows if lo <= r["sharpness"] < hi]
            table.append({"bin": [lo, min(hi, 1.0)], **{n: score(b, n) for n in NAMES}})
        sharp = [r for r in rows if r["k"] == 0.0]
        doc = {
            "reference": {n: score(sharp, n)[0] for n in NAMES},
            "reference_n": {n: score(sharp, n)[1] for n in NAMES},
            "bins": table,
            "limit": args.limit,
            "tolerance": args.tolerance,
            "min_n": args.min_n,
        }
    doc["gate"] = gate_of(doc["bins"], doc["reference"], args.tolerance, args.min_n)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    OUT.with_suffix(".md").write_text(render(doc))
    print(render(doc))


ANALYZER: Any = None

if __name__ == "__main__":
    main()
