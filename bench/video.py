"""Video benchmark: analysis and redaction frames/s at 720p and 1080p, and face frames covered,
mien and deface side by side in one run.

Usage (from the repository root, after ``bash bench/setup_deface.sh``)::

    .venv/bin/python bench/video.py                                  # everything
    .venv/bin/python bench/video.py --clips single_face.mp4 --sizes 720 --max-frames 30  # smoke

Data (read-only): ``../shared/data/pyfeat_media`` (``--data DIR``): the clips with per-frame
face labels in labels.json — single_face.mp4 (72 frames, a face in all), face_noface.mov (169,
a face in 0..71) and noface_face.mov (169, a face in 96..167). Each is re-encoded once with
PyAV into bench/.cache/video/ at 1280x720 and 1920x1080 (upscaled, libx264 CRF 16, audio
copied): these are the clips both tools get. No tuning was done on them.

Per clip and size, the tools run one after the other (order alternating between clips):

* **deface** 1.5.0 (``pip install deface onnx onnxruntime``, bench/.cache/deface-venv) as its
  CLI runs by default: ``deface IN -o OUT`` (threshold 0.2, native size, mask-scale 1.3, blur,
  ellipse, libx264, backend auto = onnxruntime).
* **mien redact**: ``mien.redact.video.redact_video(IN, OUT)`` with its defaults (detector at
  most 1280 px on the longer side, threshold of mien.redact, tracking + interpolation, blur,
  input codec, audio copied), 2 detector threads, in a subprocess like deface.
* **mien analyze**: ``VideoAnalyzer(features="detection", num_threads=2)`` over every frame
  (``--every-n 1``, detector on a 512 px copy, the default), in-process, model loading excluded.

frames/s = frames / wall time of the whole run (subprocess start, model loading, decoding,
detection, covering and encoding for the redaction tools). The machine has 2 cores; both tools
use both.

**Face frames covered**: for each labelled face frame, a reference face box comes from mien's
still-image detector (all passes, threshold 0.5) on the clip's frame (or from the nearest frame
of the same labelled span where it found one). In the redacted output, a pixel of the
reference box, resampled to 64x64 px (inner ellipse), that had detail in the input (3x3 mean
|Laplacian| >= 3 grey levels; resampling removes the encoders' noise) counts as covered when
that detail fell below 35% of the input's; the frame is covered when >= 90% of those pixels
are (a box half covered scores ~0.8; an untouched one 0). The same rule is applied to both
tools' outputs.

Profile (mien analyze): decode + colour conversion alone (the reader thread), the detector alone
on the 512 px copies, and the whole pipeline.

Results: Markdown on stdout and in bench/results/video.md, everything in
bench/results/video.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common_pose

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CACHE = BENCH / ".cache" / "video"
DEFACE = BENCH / ".cache" / "deface-venv" / "bin" / "deface"
DEFACE_PY = BENCH / ".cache" / "deface-venv" / "bin" / "python"
RESULTS = BENCH / "results"
CLIPS = ("single_face.mp4", "face_noface.mov", "noface_face.mov")
SIZES = {720: (1280, 720), 1080: (1920, 1080)}
COVER = 0.90
THREADS = 2

MIEN_REDACT = """
import sys, time
from mien.redact.video import redact_video
from mien.options import AnalyzerOptions
from mien.redact.image import redaction_analyzer_options
opts = redaction_analyzer_options(None)
from dataclasses import replace
opts = replace(opts, num_threads=THREADS)
r = redact_video(sys.argv[1], sys.argv[2], analyzer_options=opts)
print(r.counts)
""".replace("THREADS", str(THREADS))


def scaled_clip(src: Path, size: int, max_frames: int | None) -> Path:
    """``src`` re-encoded at ``SIZES[size]`` (upscaled; libx264 CRF 16; audio copied), at a
    constant frame rate (the source's average rounded to whole frames/s; one output frame per
    decoded frame), because deface reads videos through imageio-ffmpeg at a constant rate and
    would otherwise drop or repeat frames of a variable-rate clip."""
    w, h = SIZES[size]
    tag = f"_{max_frames}f" if max_frames else ""
    dst = CACHE / f"{src.stem}_{size}p{tag}_cfr.mp4"
    if dst.exists():
        return dst
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".part.mp4")
    with av.open(str(src)) as i, av.open(str(tmp), "w") as o:
        vin = i.streams.video[0]
        fps = max(1, round(float(vin.average_rate or 25)))
        vout: Any = o.add_stream("libx264", rate=fps)
        vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
        vout.time_base = Fraction(1, fps)
        vout.codec_context.time_base = Fraction(1, fps)
        vout.codec_context.options = {"crf": "16", "preset": "medium"}
        ain = i.streams.audio[0] if i.streams.audio else None
        aout = o.add_stream_from_template(ain) if ain is not None else None
        n = 0
        end_pts: float | None = None
        for p in i.demux(*[s for s in (vin, ain) if s is not None]):
            if p.stream.type == "audio":
                if (
                    aout is not None
                    and p.dts is not None
                    and (end_pts is None or float(p.pts * p.time_base) < end_pts)
                ):
                    p.stream = aout
                    o.mux(p)
                continue
            for f in p.decode():
                if max_frames and n >= max_frames:
                    end_pts = end_pts or float(f.pts * f.time_base)
                    continue
                g = f.reformat(width=w, height=h, format="yuv420p", interpolation="BICUBIC")
                g.pts, g.time_base = n, Fraction(1, fps)
                for q in vout.encode(g):
                    o.mux(q)
                n += 1
        for q in vout.encode():
            o.mux(q)
    tmp.rename(dst)
    return dst


def frames_rgb(path: Path) -> list[np.ndarray]:
    from mien.media.video import VideoReader

    with VideoReader(path) as r:
        return [f.rgb for f in r if f.rgb is not None]


def reference_boxes(clip: Path, spans: list[list[int]]) -> dict[int, np.ndarray]:
    """One reference face box per labelled face frame (see the module doc), cached."""
    cache = clip.with_suffix(".ref.json")
    if cache.exists():
        return {int(k): np.array(v) for k, v in json.loads(cache.read_text()).items()}
    from mien.analyzer import FaceAnalyzer

    fa = FaceAnalyzer(features="detection", num_threads=THREADS)
    found: dict[int, np.ndarray] = {}
    frames = frames_rgb(clip)
    face_frames = [k for a, b in spans for k in range(a, min(b, len(frames) - 1) + 1)]
    for k in face_frames:
        faces = fa.analyze_array(frames[k])
        if len(faces):
            found[k] = faces.boxes[0]
    out: dict[int, np.ndarray] = {}
    for a, b in spans:
        have = [k for k in found if a <= k <= b]
        for k in range(a, min(b, len(frames) - 1) + 1):
            if have:
                out[k] = found[min(have, key=lambda j: abs(j - k))]
    cache.write_text(json.dumps({k: v.tolist() for k, v in out.items()}))
    return out


def covered(before: np.ndarray, after: np.ndarray, box: np.ndarray, side: int = 64) -> bool:
    """Whether the face in ``box`` lost its detail (see the module doc)."""
    h, w = before.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return False

    def detail(rgb: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(np.ascontiguousarray(rgb[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY)
        g = cv2.resize(g.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
        return cv2.blur(np.abs(cv2.Laplacian(g, cv2.CV_32F)), (3, 3))

    db, da = detail(before), detail(after)
    yy, xx = np.mgrid[0:side, 0:side]
    c = side / 2
    ellipse = ((yy + 0.5 - c) / c) ** 2 + ((xx + 0.5 - c) / c) ** 2 <= 1.0
    eligible = ellipse & (db >= 3.0)
    if eligible.sum() < 20:
        return True  # nothing left to hide
    gone = da[eligible] < 0.35 * db[eligible]
    return float(gone.mean()) >= COVER


def coverage(clip: Path, out: Path, refs: dict[int, np.ndarray]) -> dict[str, Any]:
    before, after = frames_rgb(clip), frames_rgb(out)
    n = min(len(before), len(after))
    hits = [k for k in refs if k < n and covered(before[k], after[k], refs[k])]
    return {
        "face_frames": len(refs),
        "covered": len(hits),
        "share": len(hits) / max(1, len(refs)),
        "frames_in": len(before),
        "frames_out": len(after),  # must equal frames_in: frames are compared by index
        "missed_frames": sorted(set(refs) - set(hits))[:50],
    }


def run_timed(cmd: list[str]) -> float:
    env = dict(os.environ)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def bench_analyze(clip: Path) -> dict[str, Any]:
    from mien.media.video import VideoReader
    from mien.options import AnalyzerOptions
    from mien.video import FrameResult, VideoAnalyzer

    va = VideoAnalyzer(AnalyzerOptions(features=("detection",), num_threads=THREADS))
    t = time.perf_counter()
    n = sum(1 for r in va.analyze_video(clip) if isinstance(r, FrameResult))
    total = time.perf_counter() - t
    # profile: the reader alone (decode + the detector-size RGB copies) ...
    t = time.perf_counter()
    with VideoReader(clip, full=False, scaled_side=va.video.detect_side) as r:
        scaled = [f.scaled for f in r]
    read_s = time.perf_counter() - t
    # ... and the detector alone on those copies
    det = va.frames.detector
    t = time.perf_counter()
    for img in scaled:
        det.detect(img, va.frames.copy_plan)
    det_s = time.perf_counter() - t
    return {
        "frames": n,
        "fps": n / total,
        "ms_per_frame": 1000 * total / n,
        "read_ms_per_frame": 1000 * read_s / n,
        "detect_ms_per_frame": 1000 * det_s / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--max-frames", type=int, default=None, help="first N frames of each clip")
    ap.add_argument("--only", default="mien-analyze,mien-redact,deface")
    ap.add_argument("--out", type=Path, default=RESULTS / "video.json")
    args = ap.parse_args()
    if "deface" in args.only and not DEFACE.exists():
        raise SystemExit(f"{DEFACE} is missing: run bash bench/setup_deface.sh first")
    media = args.data / "pyfeat_media"
    labels = json.loads((media / "labels.json").read_text())
    info = common_pose.machine_info()
    deface_version = (
        subprocess.run(
            [
                str(DEFACE_PY),
                "-c",
                "import importlib.metadata as m; print(m.version('deface'), "
                "m.version('onnxruntime'))",
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
        if DEFACE_PY.exists()
        else []
    )
    rows: list[dict[str, Any]] = []
    md = ""
    only = set(args.only.split(","))
    for size in (int(s) for s in args.sizes.split(",")):
        for ci, name in enumerate(args.clips.split(",")):
            clip = scaled_clip(media / name, size, args.max_frames)
            spans = labels[name]["face_frames"]
            refs = reference_boxes(clip, spans)
            row: dict[str, Any] = {"clip": name, "size": size, "path": str(clip)}
            n_frames = len(frames_rgb(clip))
            row["frames"] = n_frames
            tools = [t for t in ("deface", "mien-redact") if t in only]
            if ci % 2:
                tools.reverse()
            for tool in tools:
                out = CACHE / f"out_{tool}_{clip.stem}.mp4"
                out.unlink(missing_ok=True)
                if tool == "deface":
                    cmd = [str(DEFACE), str(clip), "-o", str(out)]
                else:
                    cmd = [sys.executable, "-c", MIEN_REDACT, str(clip), str(out)]
                secs = run_timed(cmd)
                row[tool] = {"seconds": secs, "fps": n_frames / secs, **coverage(clip, out, refs)}
                print(
                    f"{size}p {name} {tool}: {n_frames / secs:.2f} frames/s, covered "
                    f"{row[tool]['covered']}/{row[tool]['face_frames']}",
                    flush=True,
                )
            if "mien-analyze" in only:
                row["mien-analyze"] = bench_analyze(clip)
                print(
                    f"{size}p {name} mien-analyze: {row['mien-analyze']['fps']:.1f} frames/s",
                    flush=True,
                )
            rows.append(row)
            md = save(args.out, info, deface_version, args.max_frames, rows)
    print(md)


def save(
    out: Path,
    info: dict[str, Any],
    deface: list[str],
    max_frames: int | None,
    rows: list[dict[str, Any]],
) -> str:
    """Write the results so far (after every clip, so a long run leaves its finished rows)."""
    info["load_average_after"] = list(os.getloadavg())
    result = {
        "machine": info,
        "deface": deface,
        "threads": THREADS,
        "max_frames": max_frames,
        "command": " ".join(sys.argv),
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    return md


def markdown(res: dict[str, Any]) -> str:
    rows = res["rows"]
    lines = [
        "| size | clip | frames | mien analyze f/s | mien redact f/s | deface f/s | "
        "redact / deface | face frames | covered mien | covered deface |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tot: dict[int, dict[str, float]] = {}
    for r in rows:
        m, d, a = r.get("mien-redact"), r.get("deface"), r.get("mien-analyze")
        t = tot.setdefault(
            r["size"], dict.fromkeys(("frames", "ms", "ds", "as", "face", "cm", "cd"), 0.0)
        )
        t["frames"] += r["frames"]
        if m:
            t["ms"] += m["seconds"]
            t["cm"] += m["covered"]
            t["face"] += m["face_frames"]
        if d:
            t["ds"] += d["seconds"]
            t["cd"] += d["covered"]
        if a:
            t["as"] += a["frames"] / a["fps"]
        lines.append(
            f"| {r['size']}p | {r['clip']} | {r['frames']} | {a['fps']:.1f} | "
            if a
            else f"| {r['size']}p | {r['clip']} | {r['frames']} | - | "
        )
        lines[-1] += (
            (f"{m['fps']:.2f} | " if m else "- | ")
            + (f"{d['fps']:.2f} | " if d else "- | ")
            + (f"{m['fps'] / d['fps']:.2f}x | " if m and d else "- | ")
            + (f"{m['face_frames']} | " if m else (f"{d['face_frames']} | " if d else "- | "))
            + (f"{m['share']:.3f} | " if m else "- | ")
            + (f"{d['share']:.3f} |" if d else "- |")
        )
    for size, t in tot.items():
        fr = t["frames"]
        mf = fr / t["ms"] if t["ms"] else None
        df = fr / t["ds"] if t["ds"] else None
        af = fr / t["as"] if t["as"] else None
        lines.append(
            f"| **{size}p all** | | {int(fr)} | {(af and f'{af:.1f}') or '-'} | "
            f"{(mf and f'{mf:.2f}') or '-'} | {(df and f'{df:.2f}') or '-'} | "
            f"{(mf / df) if mf and df else 0:.2f}x | {int(t['face'])} | "
            f"{t['cm'] / max(1, t['face']):.3f} | {t['cd'] / max(1, t['face']):.3f} |"
        )
    prof = [
        f"- {r['size']}p {r['clip']}: {r['mien-analyze']['ms_per_frame']:.1f} ms/frame in all; "
        f"reader alone (decode + 512 px RGB) {r['mien-analyze']['read_ms_per_frame']:.1f} ms, "
        f"detector alone {r['mien-analyze']['detect_ms_per_frame']:.1f} ms"
        for r in rows
        if r.get("mien-analyze")
    ]
    info = res["machine"]
    mismatch = [
        f"{r['size']}p {r['clip']} {tool}: {r[tool]['frames_out']} frames out of "
        f"{r[tool]['frames_in']}"
        for r in rows
        for tool in ("mien-redact", "deface")
        if r.get(tool) and r[tool]["frames_out"] != r[tool]["frames_in"]
    ]
    if mismatch:
        prof += [
            "",
            "Frame count changed (coverage compared by index is then not valid): "
            + "; ".join(mismatch),
        ]
    return "\n".join(
        [
            "# Video: frames/s and face frames covered (mien vs deface)",
            "",
            *lines,
            "",
            "Profile of mien analyze (detection only, every frame, 2 threads):",
            "",
            *prof,
            "",
            common_pose.machine_line(info, res["threads"]) + f"; deface {res['deface']}",
            "",
        ]
    )


if __name__ == "__main__":
    main()
