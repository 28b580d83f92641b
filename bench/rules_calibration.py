"""What mien's quality, pose and attribute measures output on real photos: the basis of the
thresholds of the built-in ``id-photo`` profile (docs/rules.md).

    .venv/bin/python bench/rules_calibration.py            # all sets, JSON + Markdown summary
    .venv/bin/python bench/rules_calibration.py --limit 50  # quick look

Sets (from ../shared/data): HELEN test photos (the 640-px photos of helen_afw_300w), GENKI-4K
crops whose labelled |yaw| and |pitch| are under 5 degrees (``crop_status == ok``), the CMU
"straight" faces with and without sunglasses, and the CEW closed-eye crops. For each face it
records every measure a rule can name; the summary gives percentiles per set and how many faces
each id-photo rule flags (``--profile``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def sets(limit: int | None) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    helen = DATA / "helen_afw_300w"
    seen: list[Path] = []
    with open(helen / "faces.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            p = helen / r["image"]
            if p not in seen:
                seen.append(p)
    out["helen"] = seen
    genki = DATA / "genki4k_crops"
    rows = []
    with open(genki / "labels.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["crop_status"] != "ok":
                continue
            if max(abs(float(r["yaw_rad"])), abs(float(r["pitch_rad"]))) < math.radians(5):
                rows.append(genki / "images" / r["file"])
    out["genki_frontal"] = rows
    cmu = DATA / "cmu_faces_sunglasses_pose"
    with open(cmu / "labels.csv", newline="") as fh:
        cm = [r for r in csv.DictReader(fh) if r["pose"] == "straight"]
    out["cmu_straight"] = [cmu / "images" / r["file"] for r in cm if r["sunglasses"] == "0"]
    out["cmu_straight_sunglasses"] = [
        cmu / "images" / r["file"] for r in cm if r["sunglasses"] == "1"
    ]
    cew = DATA / "cew_closed_faces"
    with open(cew / "labels.csv", newline="") as fh:
        out["cew_closed"] = [cew / "images" / r["file"] for r in csv.DictReader(fh)][:300]
    if limit:
        out = {k: v[:limit] for k, v in out.items()}
    return out


def _read(path: Path) -> Any:
    """A path, or an RGB array for the CMU .pgm files (mien's loader reads no Netpbm)."""
    if path.suffix.lower() != ".pgm":
        return path
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--profile", default="id-photo", help="'' for none")
    ap.add_argument("--no-cache", action="store_true", help="re-run the analysis")
    ap.add_argument(
        "--out",
        default=str(REPO / "bench" / ".cache" / "rules_calibration.json"),
        help="per-face records (JSON); the summary goes to bench/results/rules_calibration.md",
    )
    args = ap.parse_args(argv)

    import hashlib
    import pickle

    import mien
    from mien.models.registry import list_cards

    # the cache is only reused with the same model files and the same mien code (a retrained
    # head or a changed unknown rule changes the results)
    key = hashlib.sha256("".join(c.sha256 for c in list_cards()).encode())
    src = Path(mien.__file__).resolve().parent
    for py in sorted(src.rglob("*.py")):
        key.update(py.relative_to(src).as_posix().encode() + py.read_bytes())
    cache = REPO / "bench" / ".cache" / f"rules_calibration_{args.limit}_{key.hexdigest()[:12]}.pkl"
    results: dict[str, list[tuple[Path, Any]]] = {}
    if cache.exists() and not args.no_cache:
        results = pickle.loads(cache.read_bytes())
    else:
        analyzer = mien.FaceAnalyzer(features="all", num_threads=1)
        for name, paths in sets(args.limit).items():
            results[name] = [
                (p, analyzer.analyze(_read(p), name=str(p), on_error="record")) for p in paths
            ]
            print(f"{name}: {len(paths)} pictures", file=sys.stderr)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(results))
    rules = None
    if args.profile:
        from mien.rules import load_rules

        rules = load_rules(args.profile)
    records: list[dict[str, Any]] = []
    for name, pairs in results.items():
        for p, r in pairs:
            if r.faces is None:
                continue
            flags = rules.evaluate(r) if rules is not None else []
            big = _largest_index(r.faces)
            rec = {
                "set": name,
                "file": p.name,
                "width": r.width,
                "height": r.height,
                "faces": r.faces.to_records(include_mesh=False),
                "flags": sorted({f.rule for f in flags}),
                "largest": big,
                "largest_flags": sorted(
                    {(f.rule, f.unknown, f.severity) for f in flags if f.face in (None, big)}
                ),
            }
            records.append(rec)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(records) + "\n")
    text = summary(records)
    if args.limit is None and args.profile == "id-photo":
        md = REPO / "bench" / "results" / "rules_calibration.md"
        md.write_text(
            "# What mien measures on real photos, and what id-photo flags\n\n"
            "`.venv/bin/python bench/rules_calibration.py` (docs/rules.md)\n" + text + "\n"
        )
    print(text)
    return 0


def _largest_index(faces: Any) -> int | None:
    if not len(faces):
        return None
    return int(np.argmax(faces.widths * faces.heights))


def _largest(rec: dict[str, Any]) -> dict[str, Any] | None:
    faces = rec["faces"]
    if not faces:
        return None
    return max(faces, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))


def summary(records: list[dict[str, Any]]) -> str:
    lines = []
    names = sorted({r["set"] for r in records}, key=[r["set"] for r in records].index)
    measures = {
        "|yaw|": lambda f, r: (
            abs(f["head_pose"]["yaw"]) if f["head_pose"]["yaw"] is not None else None
        ),
        "|pitch|": lambda f, r: (
            abs(f["head_pose"]["pitch"]) if f["head_pose"]["pitch"] is not None else None
        ),
        "|roll|": lambda f, r: (
            abs(f["head_pose"]["roll"]) if f["head_pose"]["roll"] is not None else None
        ),
        "sharpness": lambda f, r: f["quality"]["sharpness"],
        "exposure": lambda f, r: f["quality"]["exposure"],
        "illumination_uniformity": lambda f, r: f["quality"]["illumination_uniformity"],
        "inter_eye_distance": lambda f, r: f["quality"]["inter_eye_distance"],
        "box width / image width": lambda f, r: (f["box"][2] - f["box"][0]) / r["width"],
        "p(headwear)": lambda f, r: _p(f["attributes"]["headwear"]),
        "p(sunglasses)": lambda f, r: _p(f["attributes"]["sunglasses"]),
        "p(mouth_open)": lambda f, r: _p(f["attributes"]["mouth_open"]),
    }
    for name in names:
        recs = [r for r in records if r["set"] == name]
        lines.append(f"\n### {name}: {len(recs)} pictures\n")
        lines.append("| measure (largest face) | n | p5 | p25 | p50 | p75 | p95 |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for m, fn in measures.items():
            vals = []
            for r in recs:
                f = _largest(r)
                if f is None:
                    continue
                v = fn(f, r)
                if v is not None:
                    vals.append(float(v))
            if not vals:
                continue
            q = np.percentile(vals, [5, 25, 50, 75, 95])
            lines.append(f"| {m} | {len(vals)} | " + " | ".join(f"{x:.3g}" for x in q) + " |")
        lines.append("")
        counts: dict[str, list[int]] = {}
        for r in recs:
            for rule, unk, _sev in r["largest_flags"]:
                counts.setdefault(rule, [0, 0])[int(unk)] += 1
        passed = sum(1 for r in recs if not any(s == "error" for _, _, s in r["largest_flags"]))
        lines.append(
            f"largest face (and the image rules) passed: {passed} of {len(recs)}; flagged by "
            "rule, measured + unknown: "
            + ", ".join(
                f"{k} {v[0]}+{v[1]}" for k, v in sorted(counts.items(), key=lambda kv: -sum(kv[1]))
            )
        )
    return "\n".join(lines)


def _p(attr: dict[str, Any]) -> float | None:
    v, c = attr["value"], attr["confidence"]
    if v is None or c is None:
        return None
    return float(c) if v else 1.0 - float(c)


if __name__ == "__main__":
    raise SystemExit(main())
