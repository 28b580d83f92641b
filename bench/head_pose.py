"""Head-pose benchmark (GENKI-4K crops) and pitch calibration (CMU faces).

Usage (from the repository root)::

    .venv/bin/python bench/head_pose.py --calibrate   # PITCH_OFFSET_DEG from CMU (~1 min)
    .venv/bin/python bench/head_pose.py               # GENKI-4K errors (~4 min on 2 cores)
    .venv/bin/python bench/head_pose.py --limit 200 --pad 0

Data (read-only, never copied): ``<repo>/../shared/data`` or ``--data DIR``.

Calibration (``--calibrate``)
----------------------------
``mien.analyzers.head_pose.PITCH_OFFSET_DEG`` is the pitch the mesh-based estimator reads for a
face looking straight into the camera. It is measured on ``cmu_faces_sunglasses_pose``, a set
used for nothing else here: the median raw pitch (offset forced to 0) over the ``straight``
images without sunglasses. The 128x120 CMU images do not have square pixels: faces are
stretched vertically (the ratio eye-to-mouth distance / eye-corner distance of the mesh is
~18% above that of HELEN photos, and undoing a 1.25 stretch - 4:3 camera frames stored as
128x120 - brings it back). A vertical stretch flattens the apparent pitch, so the images are
first resized to height 120 / ``--cmu-pixel-aspect`` (default 1.25; 1 = as stored). The script
prints the offset for both, the face-proportion check (HELEN mesh as the reference, first
``--aspect-reference`` images), and the sign sanity check on all CMU poses: mean yaw of
``left`` vs ``right`` (the subject's own left: yaw > 0 expected) and mean pitch of ``up`` vs
``straight``. Output: ``bench/results/head_pose_calibration.json``.

Evaluation (default)
--------------------
``genki4k_crops``: 64x64 face crops, rows with ``crop_status == ok`` only; labels yaw, pitch,
roll in radians (converted to degrees). mien runs with ``features=("detection", "landmarks",
"head_pose", "mesh"), threshold=0.3`` and the highest-scoring face of each crop is used.

* A crop where no face is found is a *miss* (counted and listed, not in the errors); a face
  without head pose (too small for the mesh) is counted separately.
* GENKI's sign conventions are not documented, so each axis's sign relation is taken from
  the Pearson correlation between the label and mien's value (on the unpadded run) and
  applied before the errors; the mapping is printed ("GENKI yaw = +mien yaw").
* MAE (and median absolute error, mean signed error = mapped mien - GENKI) per axis, on all
  evaluated crops and on those with |GENKI yaw| <= 30 deg. Target: yaw MAE <= 8 deg.
* The same is repeated with each crop padded by ``--pad`` pixels (cv2.BORDER_REPLICATE) to
  see whether the tight 64x64 crops cost detections (``--pad 0`` skips it).
* ms/face: wall clock of ``FaceAnalyzer.analyze(rgb)`` per crop, after one warm-up.

Output: Markdown tables on stdout, everything in ``bench/results/head_pose.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common_pose as C
import mien
import mien.analyzers.head_pose as hp

CMU = "cmu_faces_sunglasses_pose"
GENKI = "genki4k_crops"
HELEN = "helen_afw_300w"
AXES = ("yaw", "pitch", "roll")
TARGET_YAW_MAE = 8.0
SUBSET_YAW = 30.0
OUT_EVAL = C.RESULTS / "head_pose.json"
OUT_CAL = C.RESULTS / "head_pose_calibration.json"
# Mesh points for the face-proportion check (pixel aspect of the CMU images).
EYE_PTS = (33, 133, 362, 263)
MOUTH_PTS = (61, 291)


@contextlib.contextmanager
def raw_pitch() -> Iterator[None]:
    """Run mien with ``PITCH_OFFSET_DEG`` forced to 0 (raw pitch of the fitted face plane)."""
    saved = hp.PITCH_OFFSET_DEG
    hp.PITCH_OFFSET_DEG = 0.0
    try:
        yield
    finally:
        hp.PITCH_OFFSET_DEG = saved


def make_analyzer(args: argparse.Namespace) -> mien.FaceAnalyzer:
    return mien.FaceAnalyzer(
        mien.AnalyzerOptions(
            features=("detection", "landmarks", "head_pose", "mesh"),
            threshold=args.threshold,
            num_threads=args.threads,
        )
    )


@dataclass
class Pose:
    """The highest-scoring face of one image (``pose`` NaN when no face / no mesh)."""

    found: bool
    pose: np.ndarray  # (3,) degrees
    proportion: float  # eye-to-mouth distance / outer-eye-corner distance of the mesh
    seconds: float


def analyse(an: mien.FaceAnalyzer, rgb: np.ndarray) -> Pose:
    t0 = time.perf_counter()
    faces = an.analyze(rgb).faces
    dt = time.perf_counter() - t0
    assert faces is not None and faces.head_pose is not None and faces.mesh is not None
    if len(faces.scores) == 0:
        return Pose(False, np.full(3, np.nan), float("nan"), dt)
    j = int(np.argmax(faces.scores))
    m = faces.mesh[j].astype(np.float64)
    eye = m[list(EYE_PTS), :2].mean(0)
    mouth = m[list(MOUTH_PTS), :2].mean(0)
    iod = np.linalg.norm(m[EYE_PTS[0], :2] - m[EYE_PTS[-1], :2])
    prop = float(np.linalg.norm(mouth - eye) / iod) if np.isfinite(iod) and iod > 0 else np.nan
    return Pose(True, faces.head_pose[j].astype(np.float64), prop, dt)


def progress(label: str, k: int, n: int) -> None:
    if (k + 1) % 250 == 0 or k + 1 == n:
        print(f"  {label}: {k + 1}/{n}", file=sys.stderr)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------------------------
# Calibration on CMU
# --------------------------------------------------------------------------------------------


def squash(rgb: np.ndarray, aspect: float) -> np.ndarray:
    """Undo a vertical pixel stretch: height / ``aspect`` (1 = unchanged)."""
    if aspect == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w, round(h / aspect)), interpolation=cv2.INTER_AREA)


def calibrate(args: argparse.Namespace, data: Path, command: str) -> int:
    root = data / CMU
    if not (root / "labels.csv").is_file():
        raise SystemExit(f"{root} not found: pass --data DIR (the shared data folder)")
    rows = read_csv(root / "labels.csv")
    if args.limit:
        rows = rows[: args.limit]
    machine = C.machine_info()
    an = make_analyzer(args)
    images = [C.read_rgb(root / "images" / r["file"]) for r in rows]
    aspects = [1.0] if args.cmu_pixel_aspect == 1.0 else [1.0, args.cmu_pixel_aspect]
    poses: dict[float, list[Pose]] = {}
    with raw_pitch():
        an.analyze(images[0])
        for a in aspects:
            poses[a] = []
            for k, rgb in enumerate(images):
                poses[a].append(analyse(an, squash(rgb, a)))
                progress(f"CMU, pixel aspect {a}", k, len(images))
        ref_props = helen_proportions(an, data, args.aspect_reference)
    machine["load_average_after"] = C.machine_info()["load_average"]

    cal = [i for i, r in enumerate(rows) if r["pose"] == "straight" and r["sunglasses"] == "0"]
    if not cal:
        raise SystemExit("no straight faces without sunglasses in the selection")
    per_aspect: dict[str, Any] = {}
    for a in aspects:
        raw = np.array([poses[a][i].pose[1] for i in cal])
        ok = np.isfinite(raw)
        props = np.array([poses[a][i].proportion for i in cal])
        per_aspect[str(a)] = {
            "calibration_faces": int(ok.sum()),
            "calibration_misses": int((~ok).sum()),
            "median_raw_pitch": float(np.median(raw[ok])) if ok.any() else None,
            "mean_raw_pitch": float(raw[ok].mean()) if ok.any() else None,
            "iqr_raw_pitch": np.percentile(raw[ok], [25, 75]).tolist() if ok.any() else None,
            "median_face_proportion": float(np.nanmedian(props)),
        }
    chosen = per_aspect[str(args.cmu_pixel_aspect)]
    offset = chosen["median_raw_pitch"]
    if offset is None:
        raise SystemExit("no face found among the calibration images")
    offset_r = round(offset, 1)

    print(C.machine_line(machine, args.threads) + "\n")
    print(
        f"Calibration set: {CMU}, pose=straight, sunglasses=0: {len(cal)} images. Raw pitch = "
        "mien's pitch with PITCH_OFFSET_DEG forced to 0.\n"
    )
    hdr = ["CMU pixel aspect", "faces", "misses", "median raw pitch", "mean", "IQR"]
    hdr += ["face proportion (median)"]
    trows = []
    for a in aspects:
        s = per_aspect[str(a)]
        iqr = s["iqr_raw_pitch"] or [float("nan")] * 2
        trows.append(
            [
                f"{a:g}" + (" (used)" if a == args.cmu_pixel_aspect else " (as stored)"),
                s["calibration_faces"],
                s["calibration_misses"],
                C.fmt(s["median_raw_pitch"], 2),
                C.fmt(s["mean_raw_pitch"], 2),
                f"{iqr[0]:.1f} .. {iqr[1]:.1f}",
                C.fmt(s["median_face_proportion"]),
            ]
        )
    if ref_props is not None:
        trows.append(
            [
                f"reference: HELEN, first {len(ref_props)} photos",
                *([""] * 5),
                C.fmt(float(np.nanmedian(ref_props))),
            ]
        )
    print(C.markdown_table(hdr, trows) + "\n")
    print(
        "face proportion = |mean(mesh 33,133,362,263) - mean(mesh 61,291)| / |mesh 33 - mesh 263|"
        " (eye-to-mouth over eye-corner distance); square-pixel photos give the HELEN value.\n"
    )
    print(f"PITCH_OFFSET_DEG = {offset_r:.1f}  (median raw pitch {offset:.3f})")
    in_src = float(getattr(hp, "PITCH_OFFSET_DEG", float("nan")))
    print(
        f"src/mien/analyzers/head_pose.py has PITCH_OFFSET_DEG = {in_src}"
        + (" (matches)" if abs(in_src - offset_r) < 1e-9 else " (DIFFERS: update it)")
        + "\n"
    )

    # Sign sanity on all CMU images, pitch = raw - offset, at the chosen aspect.
    sanity: dict[str, Any] = {}
    srows = []
    use = poses[args.cmu_pixel_aspect]
    for pose_name in ("straight", "left", "right", "up"):
        for sg in ("0", "1", "all"):
            idx = [
                i
                for i, r in enumerate(rows)
                if r["pose"] == pose_name and (sg == "all" or r["sunglasses"] == sg)
            ]
            v = np.array([use[i].pose for i in idx]).reshape(-1, 3)
            v = v[np.isfinite(v[:, 0])]
            v[:, 1] -= offset_r
            mean = v.mean(0) if len(v) else np.full(3, np.nan)
            sanity[f"{pose_name}/sunglasses={sg}"] = {
                "images": len(idx),
                "faces": len(v),
                "mean_yaw_pitch_roll": mean.tolist(),
            }
            if sg == "all":
                srows.append(
                    [pose_name, len(idx), len(idx) - len(v)] + [C.fmt(float(x), 1) for x in mean]
                )
    print(f"Sign check, all CMU images (pitch with PITCH_OFFSET_DEG = {offset_r:.1f}):\n")
    print(
        C.markdown_table(["pose", "images", "misses", "mean yaw", "mean pitch", "mean roll"], srows)
        + "\n"
    )
    ml = sanity["left/sunglasses=all"]["mean_yaw_pitch_roll"]
    mr = sanity["right/sunglasses=all"]["mean_yaw_pitch_roll"]
    mu = sanity["up/sunglasses=all"]["mean_yaw_pitch_roll"]
    ms = sanity["straight/sunglasses=all"]["mean_yaw_pitch_roll"]
    yaw_ok, pitch_ok = ml[0] > mr[0], mu[1] > ms[1]
    print(
        f"yaw: left {ml[0]:+.1f} vs right {mr[0]:+.1f} ({'OK' if yaw_ok else 'WRONG SIGN'}: "
        f"turning to the subject's own left is yaw > 0); pitch: up {mu[1]:+.1f} vs straight "
        f"{ms[1]:+.1f} ({'OK' if pitch_ok else 'WRONG SIGN'}: looking up is pitch > 0)\n"
    )

    report = {
        "command": command,
        "machine": machine,
        "data": str(root),
        "calibration_set": "pose=straight, sunglasses=0",
        "cmu_pixel_aspect_used": args.cmu_pixel_aspect,
        "pitch_offset_deg": offset_r,
        "pitch_offset_unrounded": offset,
        "per_pixel_aspect": per_aspect,
        "helen_reference_face_proportion": (
            float(np.nanmedian(ref_props)) if ref_props is not None else None
        ),
        "sign_check": sanity,
        "sign_check_ok": {
            "yaw_left_gt_right": bool(yaw_ok),
            "pitch_up_gt_straight": bool(pitch_ok),
        },
        "src_value": in_src,
    }
    out = args.out or OUT_CAL
    C.write_json(out, report)
    print(f"Wrote {out}")
    return 0


def helen_proportions(an: mien.FaceAnalyzer, data: Path, n: int) -> np.ndarray | None:
    """Face proportion of the mesh on the first ``n`` HELEN photos (square pixels)."""
    folder = data / HELEN / "helen_testset"
    if n <= 0 or not folder.is_dir():
        return None
    props = []
    for path in sorted(folder.glob("*.jpg"))[:n]:
        props.append(analyse(an, C.read_rgb(path)).proportion)
    return np.array(props)


# --------------------------------------------------------------------------------------------
# Evaluation on GENKI-4K
# --------------------------------------------------------------------------------------------


def errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, Any]:
    """MAE, median AE and mean signed error per axis of (N, 3) arrays (degrees)."""
    if len(pred) == 0:
        return {a: None for a in AXES}
    d = pred - gt
    return {
        a: {
            "mae": float(np.abs(d[:, k]).mean()),
            "median_ae": float(np.median(np.abs(d[:, k]))),
            "mean_signed": float(d[:, k].mean()),
        }
        for k, a in enumerate(AXES)
    }


def evaluate(args: argparse.Namespace, data: Path, command: str) -> int:
    root = data / GENKI
    if not (root / "labels.csv").is_file():
        raise SystemExit(f"{root} not found: pass --data DIR (the shared data folder)")
    all_rows = read_csv(root / "labels.csv")
    rows = [r for r in all_rows if r["crop_status"] == "ok"]
    n_broken = len(all_rows) - len(rows)
    if args.limit:
        rows = rows[: args.limit]
    gt = np.degrees(np.array([[float(r[f"{a}_rad"]) for a in AXES] for r in rows]))
    machine = C.machine_info()
    an = make_analyzer(args)
    images = [C.read_rgb(root / "images" / r["file"]) for r in rows]
    configs: list[tuple[str, int]] = [("64x64 crop as is", 0)]
    if args.pad > 0:
        configs.append((f"padded {args.pad} px each side (BORDER_REPLICATE)", args.pad))
    runs: dict[str, list[Pose]] = {}
    an.analyze(images[0])
    for label, pad in configs:
        runs[label] = []
        for k, rgb in enumerate(images):
            img = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else rgb
            runs[label].append(analyse(an, img))
            progress(label, k, len(images))
    machine["load_average_after"] = C.machine_info()["load_average"]

    # Sign relation per axis from the unpadded run.
    first = runs[configs[0][0]]
    pred0 = np.array([p.pose for p in first])
    ok0 = np.isfinite(pred0).all(1)
    corr = np.corrcoef(np.c_[gt[ok0], pred0[ok0]].T)[:3, 3:] if ok0.sum() > 2 else np.eye(3)
    signs = np.where(np.diag(corr) >= 0, 1.0, -1.0)
    slope = [
        float(np.polyfit(gt[ok0, k], signs[k] * pred0[ok0, k], 1)[0]) if ok0.sum() > 2 else None
        for k in range(3)
    ]
    mapping = {a: f"GENKI {a} = {'+' if signs[k] > 0 else '-'}mien {a}" for k, a in enumerate(AXES)}

    results: dict[str, Any] = {}
    for label, _ in configs:
        ps = runs[label]
        pred = np.array([p.pose for p in ps]) * signs
        found = np.array([p.found for p in ps])
        ok = np.isfinite(pred).all(1)
        sub = ok & (np.abs(gt[:, 0]) <= SUBSET_YAW)
        secs = np.array([p.seconds for p in ps])
        results[label] = {
            "crops": len(ps),
            "misses": int((~found).sum()),
            "miss_rate": float((~found).mean()) if len(ps) else None,
            "missed_files": [rows[i]["file"] for i in np.nonzero(~found)[0]],
            "found_without_pose": int((found & ~ok).sum()),
            "evaluated": int(ok.sum()),
            "all": errors(pred[ok], gt[ok]),
            "abs_yaw_le_30": {"n": int(sub.sum()), **errors(pred[sub], gt[sub])},
            "ms_per_face": 1000 * float(secs.mean()) if len(secs) else None,
        }

    print(C.machine_line(machine, args.threads) + "\n")
    print(
        f"{GENKI}: {len(rows)} crops with crop_status=ok ({n_broken} broken rows left out of "
        f"{len(all_rows)}); labels in radians converted to degrees. mien threshold "
        f"{args.threshold}, PITCH_OFFSET_DEG = {hp.PITCH_OFFSET_DEG}.\n"
    )
    print("Sign relation (Pearson r between GENKI label and mien, unpadded run):\n")
    srows = [[a, f"{corr[k, k]:+.3f}", mapping[a], C.fmt(slope[k], 2)] for k, a in enumerate(AXES)]
    print(C.markdown_table(["axis", "r", "mapping used", "slope (mien vs GENKI)"], srows) + "\n")

    hdr = ["input", "crops", "misses", "miss %", "no pose", "n", "yaw MAE", "pitch MAE"]
    hdr += ["roll MAE", "n (yaw within ±30)", "yaw MAE", "pitch MAE", "roll MAE", "ms/face"]
    trows = []
    for label, r in results.items():
        e, s = r["all"], r["abs_yaw_le_30"]

        def mae(x: dict[str, Any], a: str) -> str:
            return C.fmt(x[a]["mae"], 2) if x.get(a) else "-"

        trows.append(
            [label, r["crops"], r["misses"], f"{100 * (r['miss_rate'] or 0):.1f}"]
            + [r["found_without_pose"], r["evaluated"]]
            + [mae(e, a) for a in AXES]
            + [s["n"]]
            + [mae(s, a) for a in AXES]
            + [C.fmt(r["ms_per_face"], 1)]
        )
    print("MAE in degrees after the sign mapping (misses are not in the errors):\n")
    print(C.markdown_table(hdr, trows) + "\n")

    brows = []
    for label, r in results.items():
        e = r["all"]
        if e.get("yaw"):
            brows.append(
                [label]
                + [C.fmt(e[a]["median_ae"], 2) for a in AXES]
                + [f"{e[a]['mean_signed']:+.2f}" for a in AXES]
            )
    bh = ["input", "yaw median AE", "pitch median AE", "roll median AE"]
    bh += ["yaw bias", "pitch bias", "roll bias"]
    print("Median absolute error and mean signed error (mapped mien - GENKI), all evaluated:\n")
    print(C.markdown_table(bh, brows) + "\n")
    main_res = results[configs[0][0]]["all"]
    if main_res.get("yaw"):
        verdict = "meets" if main_res["yaw"]["mae"] <= TARGET_YAW_MAE else "MISSES"
        print(f"Target yaw MAE <= {TARGET_YAW_MAE:g} deg: {verdict} it (64x64 crops as is).")
    print("Mapping: " + "; ".join(mapping.values()) + "\n")

    report = {
        "command": command,
        "machine": machine,
        "data": str(root),
        "pitch_offset_deg": hp.PITCH_OFFSET_DEG,
        "crops_ok": len(rows),
        "broken_rows_excluded": n_broken,
        "sign_mapping": mapping,
        "correlation_genki_rows_mien_cols": corr,
        "slope_mien_vs_genki": dict(zip(AXES, slope, strict=True)),
        "results": results,
        "protocol": {
            "face": "highest score per crop",
            "threshold": args.threshold,
            "num_threads": args.threads,
            "subset": f"|GENKI yaw| <= {SUBSET_YAW:g} deg",
            "target": f"yaw MAE <= {TARGET_YAW_MAE:g} deg",
        },
    }
    out = args.out or OUT_EVAL
    C.write_json(out, report)
    print(f"Wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the calibration or the evaluation; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibrate", action="store_true", help="measure PITCH_OFFSET_DEG on CMU")
    ap.add_argument("--data", type=Path, default=C.DEFAULT_DATA, help="shared data folder")
    ap.add_argument("--limit", type=int, help="first N rows of the labels only")
    ap.add_argument("--threshold", type=float, default=0.3, help="detector score threshold")
    ap.add_argument("--threads", type=int, default=C.NUM_THREADS, help="mien num_threads")
    ap.add_argument("--pad", type=int, default=32, help="GENKI: also run padded crops (0: no)")
    ap.add_argument(
        "--cmu-pixel-aspect",
        type=float,
        default=1.25,
        help="calibration: CMU pixel height/width to undo (1: use images as stored)",
    )
    ap.add_argument(
        "--aspect-reference",
        type=int,
        default=60,
        help="calibration: HELEN photos for the face-proportion reference (0: skip)",
    )
    ap.add_argument("--out", type=Path, help="JSON results file")
    args = ap.parse_args(argv)
    command = C.command_line()
    print(f"Command: `{command}`\n", flush=True)
    data = args.data.resolve()
    if args.calibrate:
        return calibrate(args, data, command)
    return evaluate(args, data, command)


if __name__ == "__main__":
    raise SystemExit(main())
