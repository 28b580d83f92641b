"""Landmark benchmark: mien's face mesh against human 68-point landmarks (iBUG 300-W, HELEN).

Usage (from the repository root)::

    .venv/bin/python bench/landmarks.py               # all HELEN test faces (~2 min on 2 cores)
    .venv/bin/python bench/landmarks.py --limit 40    # quick look

Data (read-only, never copied): ``<repo>/../shared/data/helen_afw_300w`` or ``--data DIR``:
HELEN test photos resized to a 640 px long side, with the 300-W 68-point annotations scaled to
match (``landmarks68.json``; research use only, so evaluation only).

Protocol
--------
* Faces are sorted by (file name, face index). The first ``--tune-fraction`` (20%) form the
  *tuning* split, used only for the mapping check below (it chose the mesh indices of the
  68-point nose-tip and nose-base points in ``mien.landmarks.topology.IBUG68_TO_MESH``); every
  headline number is over the remaining 80% (*eval* split).
* mien runs with ``AnalyzerOptions(features=("detection", "landmarks", "head_pose", "mesh"),
  threshold=0.3)``. The peer, "CenterFace 5-pt", is the same detector's own five points:
  ``features=("detection", "landmarks"), mesh_min_face=1e9`` (no mesh), same threshold, so
  both see the same detections.
* Matching, per image: ground-truth face <-> detection by the highest IoU between the box of
  the 68 ground-truth points and the detection box (greedy, IoU >= 0.3); a face left over is
  matched to the nearest unmatched detection whose centre lies inside its landmark box.
  Unmatched faces are misses (counted, not in the NME).
* NME of a face = mean over points of ||predicted - true|| / inter-ocular distance, the
  distance between the outer eye corners (0-based 68-point indices 36 and 45) of the ground
  truth. "68->mesh": the 68-point indices listed in ``IBUG68_TO_MESH`` (26 points: chin,
  nose, eyes, mouth; no jaw line, no brows). Groups: eyes 36-47, nose 27-35, mouth 48-67,
  chin 8. Failure rate: share of faces with NME > 0.1. Target: mean NME <= 0.08.
* Five named points: eye centres (mean of 68-point 36-41 and 42-47) vs ``right_eye`` /
  ``left_eye`` (mien: iris centres), nose tip 30 vs ``nose_tip``, mouth corners 48 / 54 vs
  ``mouth_right`` / ``mouth_left``.
* Mapping check (tuning split): for every listed 68-point index, the error of its mesh index
  and of the best mesh index (0-467) there, with the mean signed offset (mesh - human, in
  inter-ocular distances, x right / y down).
* ms/img and ms/face: wall clock of ``FaceAnalyzer.analyze(rgb)`` on decoded images (decoding
  excluded), after one warm-up image, 2 threads; ms/face = total time / detected faces.

Output: Markdown tables on stdout, everything in ``bench/results/landmarks.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common_pose as C
import mien
from mien.landmarks.topology import IBUG68_TO_MESH

DATASET = "helen_afw_300w"
DEFAULT_OUT = C.RESULTS / "landmarks.json"
MATCH_IOU = 0.3
FAIL_NME = 0.1
TARGET_NME = 0.08
RIGHT_OUTER, LEFT_OUTER = 36, 45
GROUPS: dict[str, tuple[int, ...]] = {
    "eyes": tuple(range(36, 48)),
    "nose": tuple(range(27, 36)),
    "mouth": tuple(range(48, 68)),
    "chin": (8,),
}
FIVE_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")
#: Entries of IBUG68_TO_MESH before this benchmark's mapping check replaced them; used only to
#: show the old indices' error next to the new ones.
PREVIOUS_MAPPING: dict[int, int] = {30: 1, 31: 98, 35: 327}


@dataclass
class Face:
    """One ground-truth face."""

    file: str
    index: int
    gt: np.ndarray  # (68, 2)

    @property
    def box(self) -> np.ndarray:
        return np.r_[self.gt.min(0), self.gt.max(0)]

    @property
    def iod(self) -> float:
        return float(np.linalg.norm(self.gt[RIGHT_OUTER] - self.gt[LEFT_OUTER]))

    def five(self) -> np.ndarray:
        g = self.gt
        return np.stack([g[36:42].mean(0), g[42:48].mean(0), g[30], g[48], g[54]])


@dataclass
class Run:
    """Per-image outputs of one analyzer configuration."""

    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    five: dict[str, np.ndarray] = field(default_factory=dict)
    mesh: dict[str, np.ndarray | None] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    n_det: int = 0


def load_faces(root: Path) -> list[Face]:
    """All faces, sorted by (file, face index); checks the JSON against faces.csv."""
    table = json.loads((root / "landmarks68.json").read_text())
    faces = []
    for folder, files in table.items():
        for name, entries in files.items():
            for i, entry in enumerate(entries):
                gt = np.asarray(entry["landmarks68"], dtype=np.float64)
                if gt.shape != (68, 2):
                    raise SystemExit(f"{folder}/{name} face {i}: landmarks shape {gt.shape}")
                faces.append(Face(f"{folder}/{name}", i, gt))
    faces.sort(key=lambda f: (f.file, f.index))
    with (root / "faces.csv").open(newline="") as fh:
        rows = {(r["image"], int(r["face_index"])): r for r in csv.DictReader(fh)}
    if len(rows) != len(faces):
        raise SystemExit(f"faces.csv has {len(rows)} faces, landmarks68.json {len(faces)}")
    for f in faces:
        r = rows[(f.file, f.index)]
        ref = np.array([float(r[k]) for k in ("lm_xmin", "lm_ymin", "lm_xmax", "lm_ymax")])
        if np.abs(ref - f.box).max() > 0.1:
            raise SystemExit(f"{f.file}: faces.csv landmark extent disagrees with the JSON")
    return faces


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` (4,) with boxes ``b`` (M, 4)."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match(faces: Sequence[Face], boxes: np.ndarray) -> list[int | None]:
    """Detection index for each face of one image (None: missed); see the module docstring."""
    out: list[int | None] = [None] * len(faces)
    if len(boxes) == 0:
        return out
    m = np.stack([iou(f.box, boxes) for f in faces])
    while True:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        if m[i, j] < MATCH_IOU:
            break
        out[i] = int(j)
        m[i, :] = -1.0
        m[:, j] = -1.0
    used = {j for j in out if j is not None}
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    for i, f in enumerate(faces):
        if out[i] is not None:
            continue
        b = f.box
        inside = [
            j
            for j in range(len(boxes))
            if j not in used and b[0] <= centres[j, 0] <= b[2] and b[1] <= centres[j, 1] <= b[3]
        ]
        if inside:
            c = (b[:2] + b[2:]) / 2
            j = min(inside, key=lambda k: float(np.linalg.norm(centres[k] - c)))
            out[i] = j
            used.add(j)
    return out


def run_analyzer(
    analyzer: mien.FaceAnalyzer, images: dict[str, np.ndarray], keep_mesh: bool, label: str
) -> Run:
    run = Run()
    analyzer.analyze(next(iter(images.values())))  # warm-up (interpreters, sessions)
    for k, (name, rgb) in enumerate(images.items()):
        t0 = time.perf_counter()
        faces = analyzer.analyze(rgb).faces
        run.seconds.append(time.perf_counter() - t0)
        assert faces is not None and faces.landmarks is not None
        run.boxes[name] = np.asarray(faces.boxes, np.float64)
        run.five[name] = np.asarray(faces.landmarks, np.float64)
        run.mesh[name] = np.asarray(faces.mesh, np.float64) if keep_mesh else None
        run.n_det += len(faces.boxes)
        if (k + 1) % 50 == 0:
            print(f"  {label}: {k + 1}/{len(images)} images", file=sys.stderr)
    return run


@dataclass
class Matched:
    """The matched faces of one run: ground truth and predictions, stacked."""

    faces: list[Face]
    five: np.ndarray  # (N, 5, 2)
    mesh: np.ndarray | None  # (N, 478, 3)
    missed: list[Face]


def collect(faces: Sequence[Face], run: Run) -> Matched:
    by_file: dict[str, list[Face]] = {}
    for f in faces:
        by_file.setdefault(f.file, []).append(f)
    got, five, mesh, missed = [], [], [], []
    for name, fs in by_file.items():
        for f, j in zip(fs, match(fs, run.boxes[name]), strict=True):
            if j is None:
                missed.append(f)
                continue
            got.append(f)
            five.append(run.five[name][j])
            m = run.mesh[name]
            if m is not None:
                mesh.append(m[j])
    return Matched(
        got,
        np.array(five).reshape(-1, 5, 2),
        np.array(mesh).reshape(-1, 478, 3) if mesh else None,
        missed,
    )


def point_errors(pred: np.ndarray, gt: np.ndarray, iod: np.ndarray) -> np.ndarray:
    """(N, P) normalised errors of (N, P, 2) predictions."""
    return np.linalg.norm(pred - gt, axis=2) / iod[:, None]


def summarise(e: np.ndarray) -> dict[str, float]:
    """Statistics of per-face NMEs ``e`` (N,)."""
    if e.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "failure_rate": float("nan")}
    return {
        "mean": float(e.mean()),
        "median": float(np.median(e)),
        "failure_rate": float((e > FAIL_NME).mean()),
    }


def mesh_metrics(mt: Matched, mapping: dict[int, int]) -> dict[str, Any]:
    """68->mesh NME of matched faces under ``mapping``."""
    assert mt.mesh is not None
    idx68 = sorted(mapping)
    gt = np.stack([f.gt for f in mt.faces]) if mt.faces else np.zeros((0, 68, 2))
    iod = np.array([f.iod for f in mt.faces])
    pred = mt.mesh[:, [mapping[k] for k in idx68], :2]
    err = point_errors(pred, gt[:, idx68], iod)
    out: dict[str, Any] = {"nme": summarise(err.mean(1)) if len(err) else summarise(err)}
    out["groups"] = {}
    for g, members in GROUPS.items():
        cols = [c for c, k in enumerate(idx68) if k in members]
        out["groups"][g] = summarise(err[:, cols].mean(1)) if cols and len(err) else None
    signed = (pred - gt[:, idx68]) / iod[:, None, None] if len(err) else np.zeros((0, 0, 2))
    out["points"] = {
        str(k): {
            "mesh_index": mapping[k],
            "nme_mean": float(err[:, c].mean()) if len(err) else None,
            "nme_median": float(np.median(err[:, c])) if len(err) else None,
            "offset_mean": signed[:, c].mean(0).tolist() if len(err) else None,
        }
        for c, k in enumerate(idx68)
    }
    if len(err):
        diff = (pred - gt[:, idx68]).reshape(-1, 2)
        shifted = point_errors(pred, gt[:, idx68] - 1.0, iod).mean(1)
        out["signed_offset_px_mean"] = diff.mean(0).tolist()
        out["nme_if_gt_shifted_minus_1px"] = float(shifted.mean())
    return out


def five_metrics(mt: Matched) -> dict[str, Any]:
    if not mt.faces:
        return {"nme": summarise(np.zeros(0)), "points": {}}
    gt = np.stack([f.five() for f in mt.faces])
    iod = np.array([f.iod for f in mt.faces])
    err = point_errors(mt.five, gt, iod)
    return {
        "nme": summarise(err.mean(1)),
        "points": {n: float(err[:, i].mean()) for i, n in enumerate(FIVE_NAMES)},
    }


def mapping_check(mt: Matched) -> list[dict[str, Any]]:
    """Per listed 68-point index: error of its mesh index and of the best mesh index."""
    assert mt.mesh is not None
    if not mt.faces:
        return []
    gt = np.stack([f.gt for f in mt.faces])
    iod = np.array([f.iod for f in mt.faces])
    rows = []
    for k in sorted(IBUG68_TO_MESH):
        all_err = np.linalg.norm(mt.mesh[:, :468, :2] - gt[:, k][:, None], axis=2) / iod[:, None]
        mean = all_err.mean(0)
        order = np.argsort(mean)
        cur = IBUG68_TO_MESH[k]
        off = ((mt.mesh[:, cur, :2] - gt[:, k]) / iod[:, None]).mean(0)
        row: dict[str, Any] = {
            "ibug68": k,
            "mesh_index": cur,
            "nme": float(mean[cur]),
            "offset_mean": off.tolist(),
            "best": [(int(i), float(mean[i])) for i in order[:3]],
        }
        if k in PREVIOUS_MAPPING:
            row["previous_mesh_index"] = PREVIOUS_MAPPING[k]
            row["previous_nme"] = float(mean[PREVIOUS_MAPPING[k]])
        rows.append(row)
    return rows


def xy(v: Sequence[float]) -> str:
    """A signed (x, y) pair for a table cell."""
    return f"{v[0]:+.3f}, {v[1]:+.3f}"


def timing(run: Run) -> dict[str, float]:
    total = float(np.sum(run.seconds))
    return {
        "ms_per_image_mean": 1000 * total / max(len(run.seconds), 1),
        "ms_per_image_median": 1000 * float(np.median(run.seconds)) if run.seconds else 0.0,
        "ms_per_face": 1000 * total / max(run.n_det, 1),
        "detected_faces": run.n_det,
        "images": len(run.seconds),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=C.DEFAULT_DATA, help="shared data folder")
    ap.add_argument("--limit", type=int, help="first N images (sorted by name) only")
    ap.add_argument("--threshold", type=float, default=0.3, help="detector score threshold")
    ap.add_argument("--threads", type=int, default=C.NUM_THREADS, help="mien num_threads")
    ap.add_argument(
        "--tune-fraction",
        type=float,
        default=0.2,
        help="share of faces (first by file name) kept for the mapping check",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = ap.parse_args(argv)

    command = C.command_line()
    print(f"Command: `{command}`\n")
    root = args.data.resolve() / DATASET
    if not (root / "landmarks68.json").is_file():
        raise SystemExit(f"{root} not found: pass --data DIR (the shared data folder)")
    faces = load_faces(root)
    files = sorted({f.file for f in faces})
    if args.limit:
        keep = set(files[: args.limit])
        faces = [f for f in faces if f.file in keep]
        files = sorted(keep)
    n_tune = round(args.tune_fraction * len(faces))
    tune, evals = faces[:n_tune], faces[n_tune:]

    print(f"Reading {len(files)} images ({len(faces)} faces) ...", file=sys.stderr)
    images = {name: C.read_rgb(root / name) for name in files}
    machine = C.machine_info()
    common = {"threshold": args.threshold, "num_threads": args.threads}
    mesh_opts = mien.AnalyzerOptions(
        features=("detection", "landmarks", "head_pose", "mesh"), **common
    )
    peer_opts = mien.AnalyzerOptions(
        features=("detection", "landmarks"), mesh_min_face=1e9, **common
    )
    mesh_run = run_analyzer(mien.FaceAnalyzer(mesh_opts), images, True, "mien mesh")
    peer_run = run_analyzer(mien.FaceAnalyzer(peer_opts), images, False, "CenterFace 5-pt")

    ev_mesh, ev_peer = collect(evals, mesh_run), collect(evals, peer_run)
    all_mesh, tune_mesh = collect(faces, mesh_run), collect(tune, mesh_run)
    results = {
        "mien_mesh_eval": {
            "faces": len(evals),
            "matched": len(ev_mesh.faces),
            "misses": [f"{f.file}#{f.index}" for f in ev_mesh.missed],
            "mesh68": mesh_metrics(ev_mesh, IBUG68_TO_MESH),
            "mesh68_previous_mapping": mesh_metrics(
                ev_mesh, {**IBUG68_TO_MESH, **PREVIOUS_MAPPING}
            ),
            "five": five_metrics(ev_mesh),
        },
        "mien_mesh_all": {
            "faces": len(faces),
            "matched": len(all_mesh.faces),
            "misses": [f"{f.file}#{f.index}" for f in all_mesh.missed],
            "mesh68": mesh_metrics(all_mesh, IBUG68_TO_MESH),
            "five": five_metrics(all_mesh),
        },
        "centerface5_eval": {
            "faces": len(evals),
            "matched": len(ev_peer.faces),
            "misses": [f"{f.file}#{f.index}" for f in ev_peer.missed],
            "five": five_metrics(ev_peer),
        },
    }
    machine["load_average_after"] = C.machine_info()["load_average"]
    check = mapping_check(tune_mesh)
    t_mesh, t_peer = timing(mesh_run), timing(peer_run)

    print(C.machine_line(machine, args.threads) + "\n")
    print(
        f"HELEN test (300-W 68-pt), {len(faces)} faces in {len(files)} images; tuning split = "
        f"first {len(tune)} faces by file name (mapping check only), eval split = the other "
        f"{len(evals)}. NME normalised by the outer-eye-corner distance (36-45). "
        f"Detector threshold {args.threshold}.\n"
    )
    hdr = ["method", "split", "matched / faces", "misses", "NME mean", "NME median"]
    hdr += ["fail (>0.1)", "eyes", "nose", "mouth", "chin", "5-pt NME", "ms/img", "ms/face"]
    rows = []
    for label, split, key, t in (
        ("mien mesh, 68->mesh points", "eval 80%", "mien_mesh_eval", t_mesh),
        ("mien mesh, 68->mesh points", "all", "mien_mesh_all", t_mesh),
        ("CenterFace 5-pt (mesh_min_face=1e9)", "eval 80%", "centerface5_eval", t_peer),
    ):
        r = results[key]
        m = r.get("mesh68")
        cells = [label, split, f"{r['matched']} / {r['faces']}", len(r["misses"])]
        if m:
            g = m["groups"]
            cells += [C.fmt(m["nme"]["mean"]), C.fmt(m["nme"]["median"])]
            cells += [C.fmt(m["nme"]["failure_rate"])]
            cells += [C.fmt(g[k]["mean"]) if g[k] else "-" for k in ("eyes", "nose", "mouth")]
            cells += [C.fmt(g["chin"]["mean"]) if g["chin"] else "-"]
        else:
            cells += ["-"] * 7
        cells += [C.fmt(r["five"]["nme"]["mean"])]
        cells += [f"{t['ms_per_image_mean']:.1f}", f"{t['ms_per_face']:.1f}"]
        rows.append(cells)
    print(C.markdown_table(hdr, rows) + "\n")

    five_rows = []
    for label, key in (
        ("mien (mesh: iris centres, mesh 4, 61, 291)", "mien_mesh_eval"),
        ("CenterFace 5-pt", "centerface5_eval"),
    ):
        f5 = results[key]["five"]
        five_rows.append(
            [label]
            + [C.fmt(f5["points"].get(n)) for n in FIVE_NAMES]
            + [C.fmt(f5["nme"]["mean"]), C.fmt(f5["nme"]["median"])]
            + [C.fmt(f5["nme"]["failure_rate"])]
        )
    print("Five named points, eval split (eye centre = mean of 68-pt 36-41 / 42-47):\n")
    hdr5 = ["method", *FIVE_NAMES, "mean", "median", "fail (>0.1)"]
    print(C.markdown_table(hdr5, five_rows) + "\n")

    ev = results["mien_mesh_eval"]
    prev = ev["mesh68_previous_mapping"]
    print("Per point, eval split (offset = mean mesh - human / IOD, x right, y down):\n")
    pt_rows = []
    for k, p in ev["mesh68"]["points"].items():
        ik = int(k)
        old = (
            f"{PREVIOUS_MAPPING[ik]}: {C.fmt(prev['points'][k]['nme_mean'])}"
            if ik in PREVIOUS_MAPPING
            else ""
        )
        off = p["offset_mean"] or [float("nan")] * 2
        pt_rows.append(
            [k, p["mesh_index"], C.fmt(p["nme_mean"]), C.fmt(p["nme_median"]), xy(off), old]
        )
    hdr_pt = ["68-pt", "mesh", "NME mean", "NME median", "offset (x, y)", "previous mesh: NME"]
    print(C.markdown_table(hdr_pt, pt_rows) + "\n")
    print(
        f"Mean NME with the previous entries {PREVIOUS_MAPPING}: "
        f"{C.fmt(prev['nme']['mean'])} (now {C.fmt(ev['mesh68']['nme']['mean'])})."
    )
    off = ev["mesh68"].get("signed_offset_px_mean")
    if off:
        print(
            f"Mean signed offset mesh - human over the 68->mesh points: ({off[0]:+.2f}, "
            f"{off[1]:+.2f}) px; NME if the ground truth were shifted by -1 px in x and y "
            f"(1-based vs 0-based pixels): {C.fmt(ev['mesh68']['nme_if_gt_shifted_minus_1px'])}."
        )
    verdict = "meets" if ev["mesh68"]["nme"]["mean"] <= TARGET_NME else "MISSES"
    print(f"Target mean NME <= {TARGET_NME}: {verdict} it on the eval split.\n")

    print(f"Mapping check on the tuning split ({len(tune_mesh.faces)} matched faces):\n")
    ck_rows = []
    for r in check:
        best = ", ".join(f"{i} ({e:.3f})" for i, e in r["best"])
        old = (
            f"{r['previous_mesh_index']} ({r['previous_nme']:.3f})"
            if "previous_mesh_index" in r
            else ""
        )
        o = r["offset_mean"]
        ck_rows.append([r["ibug68"], r["mesh_index"], C.fmt(r["nme"]), xy(o), best, old])
    ck_hdr = ["68-pt", "mesh", "NME", "offset (x, y)", "best 3 mesh (NME)", "previous (NME)"]
    print(C.markdown_table(ck_hdr, ck_rows) + "\n")

    report = {
        "command": command,
        "machine": machine,
        "data": str(root),
        "protocol": {
            "normalisation": "ground-truth outer eye corners, 0-based 68-pt 36 and 45",
            "match": f"landmark box vs detection box, greedy IoU >= {MATCH_IOU}, then nearest "
            "detection centre inside the landmark box",
            "tuning_split": f"first {len(tune)} faces by (file, face index)",
            "eval_split": f"remaining {len(evals)} faces",
            "failure": f"NME > {FAIL_NME}",
            "target": f"mean NME <= {TARGET_NME} (68->mesh points, eval split)",
            "mien_options": {
                "mesh": {"features": list(mesh_opts.features), **common},
                "centerface5": {
                    "features": list(peer_opts.features),
                    "mesh_min_face": peer_opts.mesh_min_face,
                    **common,
                },
            },
            "timing": "analyze(rgb) on decoded arrays, 1 warm-up image; "
            "ms/face = total time / detections",
        },
        "ibug68_to_mesh": {str(k): v for k, v in sorted(IBUG68_TO_MESH.items())},
        "previous_mapping_entries": {str(k): v for k, v in PREVIOUS_MAPPING.items()},
        "results": results,
        "timing": {"mien_mesh": t_mesh, "centerface5": t_peer},
        "mapping_check_tuning_split": check,
    }
    C.write_json(args.out, report)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
