"""Redaction benchmark: does every face end up covered? mien and deface side by side, one run.

Usage (from the repository root, after ``bash bench/setup_deface.sh``)::

    .venv/bin/python bench/redaction.py                      # facemask_kaggle_voc, all 611 photos
    .venv/bin/python bench/redaction.py --limit 40           # quick look
    .venv/bin/python bench/redaction.py --sweep --dataset widerface_val200   # tuning set

Data (read-only): ``<repo>/../shared/data`` or ``--data DIR``.

* Reported: ``facemask_kaggle_voc``, every photo of annotations.csv (611 web photos, 3,041
  face boxes): the same images bench/detection.py evaluates on (it has no held-out split).
* Tuning (``--sweep``): ``widerface_val200`` (200 WIDER FACE validation photos, official
  boxes, ``invalid`` faces left out), a different data set. mien's redaction defaults
  (threshold 0.25, scale 1.6, no mirrored upscaled pass) were chosen there, never on the
  reported photos.

Protocol, per photo, the two tools interleaved photo by photo (order alternating):

* **deface** 1.5.0 as ``pip install deface onnx onnxruntime`` gives it, in its own virtualenv
  (bench/.cache/deface-venv), through ``deface.deface.image_detect`` — the function its CLI
  runs for a picture — with the CLI's defaults: threshold 0.2, ``--scale`` None (native
  size), ``--mask-scale`` 1.3 (deface grows each side by 0.3 box, i.e. a 1.6x box), blur,
  ellipse, backend ``auto`` (onnxruntime). Timed: the whole call (read, detect, blur, write
  the JPEG).
* **mien**: ``mien.redact.redact_image(path, out.jpg)`` with its defaults (threshold 0.25,
  upscaled and tiled passes, blur, ellipse, scale 1.6, metadata stripped), 2 threads. Timed:
  the whole call (read, detect, cover, write the JPEG).
* A second mien row, ``--threshold 0.2 --scale 1.8``: the recall-first corner of the tuning
  sweep (more covered area, more false covers), timed the same way.
* **Covered area**: each tool's own covering code is re-run with the boxes it found on a
  picture of random noise; a pixel is covered when it changed. So both are measured the same
  way, on what the tool really paints.
* **Recall**: share of ground-truth faces whose box (pixels ``[x1, x2) x [y1, y2)``) is at
  least 90% covered, by face width (< 10 px, 10-20 px, >= 20 px; width = xmax - xmin).
* **False cover**: covered blobs (8-connected) that touch no ground-truth box, as a share of all
  covered pixels (the annotations miss some tiny background faces, so part of it may be real
  faces). Also the share of covered pixels outside every ground-truth box, which includes the
  margin each tool adds on purpose around a face.
* **images/s**: 1 / mean wall time per photo on this machine (2 cores), after 3 warm-up photos.

Results: Markdown on stdout and in bench/results/redaction.md, everything in
bench/results/redaction.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common_pose
import detection
from mien.options import AnalyzerOptions
from mien.redact import REDACT_THRESHOLD, RedactOptions, redact_regions
from mien.redact.image import (
    UPSCALE_FLIP,
    redact_image,
    redaction_analyzer_options,
)

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parent.parent / "shared" / "data"
DEFACE_PY = BENCH / ".cache" / "deface-venv" / "bin" / "python"
RESULTS = BENCH / "results"
COVER = 0.90
BINS = (("<10", 0.0, 10.0), ("10-20", 10.0, 20.0), (">=20", 20.0, float("inf")))
WARMUP = 3
THREADS = 2
MIEN = "mien (defaults)"
MIEN_RECALL_FIRST = "mien --threshold 0.2 --scale 1.8"
PACKAGES = ("mien", "numpy", "onnxruntime", "opencv-python-headless", "pillow")

# Runs inside bench/.cache/deface-venv. One JSON request per line on stdin:
# {"path", "out", "mask"} -> runs deface's image_detect with its CLI defaults (timed), records
# the boxes deface drew, re-runs deface's anonymize_frame with them on noise, saves the mask.
DEFACE_WORKER = r"""
import json, sys, time, importlib.metadata as md
import numpy as np
import deface.deface as dd
from deface.centerface import CenterFace

# The CLI's defaults (deface 1.5.0 parse_cli_args): thresh 0.2, scale None, mask-scale 1.3,
# replacewith blur, ellipse (not --boxes), backend auto, mosaicsize 20, no metadata.
DEF = dict(threshold=0.2, replacewith="blur", mask_scale=1.3, ellipse=True, draw_scores=False,
           enable_preview=False, keep_metadata=False, replaceimg=None, mosaicsize=20)
centerface = CenterFace(in_shape=None, backend="auto")
orig = dd.anonymize_frame
seen = []
def recording(dets, frame, **kw):
    seen.append(np.array(dets, dtype=np.float64).reshape(-1, 5))
    return orig(dets, frame, **kw)
dd.anonymize_frame = recording
print(json.dumps({"ready": True, "backend": centerface.backend,
                  "versions": {d: md.version(d) for d in
                               ("deface", "onnxruntime", "onnx", "opencv-python", "numpy",
                                "imageio", "scikit-image")}}), flush=True)
rng = np.random.default_rng(0)
for line in sys.stdin:
    req = json.loads(line)
    seen.clear()
    t0 = time.perf_counter()
    dd.image_detect(ipath=req["path"], opath=req["out"], centerface=centerface, **DEF)
    ms = (time.perf_counter() - t0) * 1000
    dets = seen[0] if seen else np.zeros((0, 5))
    h, w = req["h"], req["w"]
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame = noise.copy()
    orig(dets, frame, mask_scale=DEF["mask_scale"], replacewith="blur", ellipse=True,
         draw_scores=False, replaceimg=None, mosaicsize=20)
    np.save(req["mask"], (frame != noise).any(axis=2))
    print(json.dumps({"ms": ms, "boxes": dets[:, :4].tolist(), "scores": dets[:, 4].tolist()}),
          flush=True)
"""


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def load_widerface(data: Path) -> detection.Dataset:
    """widerface_val200: 200 WIDER FACE val photos (416x416), official boxes, invalid left out."""
    root = data / "widerface_val200"
    table: dict[str, list[list[float]]] = {}
    with (root / "images.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            table[row["image"]] = []
    with (root / "labels.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["invalid"] == "1":
                continue
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            if w > 0 and h > 0:
                table[row["image"]].append([x, y, x + w, y + h])
    samples = [
        detection.Sample(root / "images" / n, np.asarray(b, np.float64).reshape(-1, 4), (416, 416))
        for n, b in sorted(table.items())
    ]
    return detection.Dataset("widerface_val200", "200 WIDER FACE val photos (tuning set)", samples)


DATASETS = {"facemask_kaggle_voc": detection.load_facemask, "widerface_val200": load_widerface}


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def coverage(mask: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Covered share of each ground-truth box (pixels [x1, x2) x [y1, y2), rounded)."""
    h, w = mask.shape
    out = np.zeros(len(gt))
    for i, (x1, y1, x2, y2) in enumerate(gt):
        a, b = int(np.clip(round(x1), 0, w)), int(np.clip(round(x2), 0, w))
        c, d = int(np.clip(round(y1), 0, h)), int(np.clip(round(y2), 0, h))
        out[i] = mask[c:d, a:b].mean() if b > a and d > c else 1.0
    return out


def false_cover(mask: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """(covered px, px of blobs touching no ground-truth box, covered px outside all boxes)."""
    covered = int(mask.sum())
    if covered == 0:
        return 0, 0, 0
    inside = np.zeros_like(mask)
    h, w = mask.shape
    for x1, y1, x2, y2 in gt:
        a, b = int(np.clip(round(x1), 0, w)), int(np.clip(round(x2), 0, w))
        c, d = int(np.clip(round(y1), 0, h)), int(np.clip(round(y2), 0, h))
        inside[c:d, a:b] = True
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[inside & mask])
    false_px = int(np.isin(labels, touching, invert=True)[mask].sum())
    return covered, false_px, int((mask & ~inside).sum())


@dataclass
class Tally:
    """Per-tool totals over a data set."""

    cov: list[np.ndarray]
    widths: list[np.ndarray]
    covered: int = 0
    false_px: int = 0
    outside_px: int = 0
    ms: list[float] | None = None

    def add(self, mask: np.ndarray, gt: np.ndarray) -> None:
        self.cov.append(coverage(mask, gt))
        self.widths.append(gt[:, 2] - gt[:, 0])
        c, f, o = false_cover(mask, gt)
        self.covered += c
        self.false_px += f
        self.outside_px += o

    def summary(self) -> dict[str, Any]:
        cov = np.concatenate(self.cov) if self.cov else np.zeros(0)
        wid = np.concatenate(self.widths) if self.widths else np.zeros(0)
        hit = cov >= COVER
        bins = {}
        for name, lo, hi in BINS:
            sel = (wid >= lo) & (wid < hi)
            bins[name] = {
                "faces": int(sel.sum()),
                "recall": float(hit[sel].mean()) if sel.any() else None,
                "mean_covered": float(cov[sel].mean()) if sel.any() else None,
            }
        out: dict[str, Any] = {
            "faces": len(cov),
            "recall_all": float(hit.mean()) if len(cov) else None,
            "recall_by_width": bins,
            "false_cover_rate": self.false_px / self.covered if self.covered else 0.0,
            "outside_gt_share": self.outside_px / self.covered if self.covered else 0.0,
        }
        if self.ms:
            timed = self.ms[WARMUP:] if len(self.ms) > WARMUP else self.ms
            out["ms_mean"] = float(np.mean(timed))
            out["ms_median"] = float(np.median(timed))
            out["images_per_s"] = 1000.0 / float(np.mean(timed))
        return out


def noise_mask(
    shape: tuple[int, int], boxes: np.ndarray, opts: RedactOptions, rng: np.random.Generator
) -> np.ndarray:
    """Pixels mien's covering code changes for ``boxes`` (run on random noise)."""
    noise = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    return (redact_regions(noise, boxes, opts) != noise).any(axis=2)


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


class Deface:
    """The persistent deface worker process (its own virtualenv)."""

    def __init__(self) -> None:
        if not DEFACE_PY.exists():
            raise SystemExit(f"{DEFACE_PY} is missing: run bash bench/setup_deface.sh first")
        self.proc = subprocess.Popen(
            [str(DEFACE_PY), "-c", DEFACE_WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("the deface worker stopped")
            if line.startswith("{"):
                out: dict[str, Any] = json.loads(line)
                return out

    def run(self, path: Path, out: Path, mask: Path, h: int, w: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        req = {"path": str(path), "out": str(out), "mask": str(mask), "h": h, "w": w}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run_compare(ds: detection.Dataset, limit: int | None) -> dict[str, Any]:
    samples = ds.samples[:limit] if limit else ds.samples
    deface = Deface()
    an_opts = redaction_analyzer_options(
        AnalyzerOptions(threshold=REDACT_THRESHOLD, num_threads=THREADS)
    )
    ropts = RedactOptions()
    # A second mien row: the recall-first corner of the tuning sweep, as CLI flags.
    first_opts = redaction_analyzer_options(AnalyzerOptions(threshold=0.2, num_threads=THREADS))
    first_ropts = RedactOptions(scale=1.8)
    variants = {
        MIEN: (an_opts, ropts),
        MIEN_RECALL_FIRST: (first_opts, first_ropts),
    }
    tallies = {name: Tally([], [], ms=[]) for name in (*variants, "deface")}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for i, s in enumerate(samples):
            rgb = detection.read_rgb(s)  # checks the size against the CSV
            h, w = rgb.shape[:2]

            def do_deface(s: detection.Sample = s, h: int = h, w: int = w) -> None:
                r = deface.run(s.path, t / "deface.jpg", t / "mask.npy", h, w)
                tallies["deface"].add(np.load(t / "mask.npy"), s.boxes)
                assert tallies["deface"].ms is not None
                tallies["deface"].ms.append(r["ms"])

            def do_mien(s: detection.Sample = s, h: int = h, w: int = w) -> None:
                for name, (ao, ro) in variants.items():
                    t0 = time.perf_counter()
                    rep = redact_image(s.path, t / "mien.jpg", analyzer_options=ao, options=ro)
                    ms = (time.perf_counter() - t0) * 1000
                    boxes = np.array([r.box for r in rep.regions], np.float64).reshape(-1, 4)
                    tallies[name].add(noise_mask((h, w), boxes, ro, rng), s.boxes)
                    ms_list = tallies[name].ms
                    assert ms_list is not None
                    ms_list.append(ms)

            for fn in (do_deface, do_mien) if i % 2 == 0 else (do_mien, do_deface):
                fn()
            if (i + 1) % 50 == 0:
                print(f"{ds.name}: {i + 1}/{len(samples)}", file=sys.stderr, flush=True)
    deface.close()
    return {
        "dataset": ds.name,
        "images": len(samples),
        "tools": {k: v.summary() for k, v in tallies.items()},
        "deface_worker": deface.info,
        "mien_settings": {
            "threshold": an_opts.threshold,
            "upscale": an_opts.upscale,
            "tiling": an_opts.tiling,
            "method": ropts.method,
            "shape": ropts.shape,
            "scale": ropts.scale,
            "threads": THREADS,
            "upscale_flip": UPSCALE_FLIP,
        },
    }


SWEEP_PLANS = {  # name -> (upscale, upscale_flip)
    "upscale2+flip": (2.0, True),
    "upscale2": (2.0, False),
    "no-upscale": (1.0, False),
}
SWEEP_THRESHOLDS = (0.2, 0.25, 0.3, 0.4)
SWEEP_SCALES = (1.3, 1.4, 1.5, 1.6, 1.8)


def run_sweep(ds: detection.Dataset, limit: int | None) -> dict[str, Any]:
    """mien alone: detector plans x thresholds x scales (detections made once at 0.05)."""
    from mien.redact.image import _detector, redaction_plan

    samples = ds.samples[:limit] if limit else ds.samples
    det = _detector(THREADS)
    keys = [(p, th, sc) for p in SWEEP_PLANS for th in SWEEP_THRESHOLDS for sc in SWEEP_SCALES]
    tallies = {k: Tally([], []) for k in keys}
    ms: dict[str, list[float]] = {p: [] for p in SWEEP_PLANS}
    rng = np.random.default_rng(0)
    for s in samples:
        rgb = detection.read_rgb(s)
        for pname, (up, flip) in SWEEP_PLANS.items():
            plan = redaction_plan(AnalyzerOptions(threshold=0.05, upscale=up), upscale_flip=flip)
            t0 = time.perf_counter()
            found = det.detect(rgb, plan)
            ms[pname].append((time.perf_counter() - t0) * 1000)
            for th in SWEEP_THRESHOLDS:
                boxes = found.boxes[found.scores >= th]
                for sc in SWEEP_SCALES:
                    mask = noise_mask(rgb.shape[:2], boxes, RedactOptions(scale=sc), rng)
                    tallies[(pname, th, sc)].add(mask, s.boxes)
    return {
        "dataset": ds.name,
        "images": len(samples),
        "detect_ms_mean_at_0.05": {p: float(np.mean(v)) for p, v in ms.items()},
        "sweep": [
            {"plan": p, "threshold": th, "scale": sc, **tallies[(p, th, sc)].summary()}
            for (p, th, sc) in keys
        ],
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _f(x: float | None, nd: int = 3) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def markdown(res: dict[str, Any], command: str) -> str:
    lines = [
        f"### Redaction recall — {res['dataset']} ({res['images']} photos)",
        "",
        f"Command: `{command}`",
        "",
    ]
    if "sweep" in res:
        lines += [
            f"Detection ms/photo (mean, at threshold 0.05): {res['detect_ms_mean_at_0.05']}",
            "",
            "| plan | threshold | scale | recall <10 | recall 10-20 | recall >=20 | false cover |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in res["sweep"]:
            b = r["recall_by_width"]
            lines.append(
                f"| {r['plan']} | {r['threshold']} | {r['scale']} | "
                f"{_f(b['<10']['recall'])} | "
                f"{_f(b['10-20']['recall'])} | {_f(b['>=20']['recall'])} | "
                f"{_f(r['false_cover_rate'])} |"
            )
        return "\n".join(lines) + "\n"
    t = res["tools"]
    b0 = t[MIEN]["recall_by_width"]
    lines += [
        "| tool | recall <10 px | recall 10-20 px | recall >=20 px | recall all | false cover "
        "| covered px outside GT boxes | images/s | ms/image (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in (MIEN, MIEN_RECALL_FIRST, "deface"):
        r = t[name]
        b = r["recall_by_width"]
        lines.append(
            f"| {name} | {_f(b['<10']['recall'])} | {_f(b['10-20']['recall'])} | "
            f"{_f(b['>=20']['recall'])} | {_f(r['recall_all'])} | {_f(r['false_cover_rate'])} | "
            f"{_f(r['outside_gt_share'])} | {_f(r['images_per_s'], 1)} | {_f(r['ms_median'], 1)} |"
        )
    m, d = t[MIEN], t["deface"]

    def ratio(key: str) -> float:
        a, b = m["recall_by_width"][key]["recall"], d["recall_by_width"][key]["recall"]
        return float(a / b) if a is not None and b else float("nan")

    lines += [
        "",
        f"Faces: {b0['<10']['faces']} narrower than 10 px, {b0['10-20']['faces']} of 10-20 px, "
        f"{b0['>=20']['faces']} of 20 px or more. Ratios mien / deface: recall >=20 px "
        f"{ratio('>=20'):.3f}, recall 10-20 px {ratio('10-20'):.3f}, "
        f"images/s {m['images_per_s'] / d['images_per_s']:.2f}.",
        "",
        f"deface backend: {res['deface_worker'].get('backend')}, versions "
        f"{res['deface_worker'].get('versions')}; mien settings {res['mien_settings']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="facemask_kaggle_voc")
    ap.add_argument("--limit", type=int, default=None, help="first N photos only")
    ap.add_argument(
        "--sweep", action="store_true", help="mien alone over thresholds x scales (the tuning run)"
    )
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default results/)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    ds = DATASETS[args.dataset](args.data)
    res = run_sweep(ds, args.limit) if args.sweep else run_compare(ds, args.limit)
    res["machine"] = common_pose.machine_info(PACKAGES)
    command = ".venv/bin/python bench/redaction.py " + shlex.join(list(argv or sys.argv[1:]))
    res["command"] = command.strip()
    md = markdown(res, res["command"])
    print(md)
    stem = "redaction_sweep" if args.sweep else "redaction"
    out = args.out or RESULTS / f"{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
