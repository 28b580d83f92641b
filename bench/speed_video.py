"""The video rows of bench/speed.py: mien, deface and the FFmpeg decode limit on the same clips.

Inputs (built once under bench/.cache, never committed):

* the three ``pyfeat_media`` clips scaled to 1280x720 and 1920x1080, first 120 frames (as
  bench/video.py makes them: libx264 CRF 16, constant frame rate);
* crowd clips (bench/crowd_clips.py): a 1280x720 window panning over a 3x2 mosaic of face-mask
  photos, 75 frames, every labelled face known in every frame.

Per clip, one after the other (order alternating from clip to clip), each a whole process:

* **decode limit**: ``ffmpeg -threads 2 -i IN -f null -`` (decoding alone);
* **mien redact**: ``redact_video(IN, OUT)`` with its defaults, 2 detector threads; the per-stage
  profile (decode / detect / track / draw / encode, ms per frame, each stage's own thread time)
  comes from its report;
* **deface** 1.5.0 CLI with its defaults (``deface IN -o OUT``), its ``anonymize_frame``
  wrapped to record the boxes it covers;
* **mien analyze** (720p clips only): ``mien analyze IN --features detection -o OUT.jsonl``
  (detection on every frame) against the decode limit.

frames/s = frames / wall time of the process. **Covered face-frames** (crowd clips): each tool's
own covering code is re-run with the boxes it covered in each frame on a picture of random noise
(a pixel is covered when it changed); a labelled face of a frame is covered when >= 90% of its box
is (bench/redaction.py's rule).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crowd_clips
import video as video_bench
from redaction import COVER, DEFACE_PY, coverage, noise_mask

THREADS = 2
ROI_GLOBAL_EVERY = 2
"""The ``mien-roi`` tool: ``VideoRedactOptions(global_every=2)`` (whole-frame search on every
other searched frame, search around the followed faces between)."""
PYFEAT_FRAMES = 120

MIEN_REDACT = """
import json, sys
from dataclasses import replace
from mien.redact.image import redaction_analyzer_options
from mien.redact.video import redact_video
opts = replace(redaction_analyzer_options(None), num_threads=THREADS)
kw = {}
if len(sys.argv) > 4:
    from mien.redact.video import VideoRedactOptions
    kw["video"] = VideoRedactOptions(global_every=int(sys.argv[4]))
r = redact_video(sys.argv[1], sys.argv[2], analyzer_options=opts, **kw)
json.dump({"stage_ms": r.extra.get("stage_ms_per_frame"), "frames": r.frames,
           "regions": [[g.frame_index, list(g.box)] for g in r.regions]}, open(sys.argv[3], "w"))
""".replace("THREADS", str(THREADS))

# Runs in deface's own virtualenv: its CLI, with anonymize_frame wrapped to record the boxes.
DEFACE_RUN = """
import json, sys
import numpy as np
import deface.deface as dd
orig, seen = dd.anonymize_frame, []
def recording(dets, frame, **kw):
    seen.append(np.asarray(dets, np.float64).reshape(-1, 5)[:, :4].tolist())
    return orig(dets, frame, **kw)
dd.anonymize_frame = recording
out = sys.argv.pop()
sys.argv = ["deface", *sys.argv[1:]]
dd.main()
json.dump(seen, open(out, "w"))
"""

# deface's covering (CLI defaults) re-run on noise with the recorded boxes: the covered masks.
DEFACE_MASKS = """
import json, sys
import numpy as np
import deface.deface as dd
boxes, h, w, out = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
masks = []
for b in boxes:
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame = noise.copy()
    dets = np.array([[*x, 1.0] for x in b], np.float64).reshape(-1, 5)
    dd.anonymize_frame(dets, frame, mask_scale=1.3, replacewith="blur", ellipse=True,
                       draw_scores=False, replaceimg=None, mosaicsize=20)
    masks.append(np.packbits((frame != noise).any(axis=2)))
np.save(out, np.stack(masks) if masks else np.zeros((0, 0), np.uint8))
"""


CPU_SECONDS: list[float] = []
"""CPU time (user + system) of each process :func:`_timed` ran, in order (for a busy machine,
where wall time depends on the other jobs)."""


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``cmd`` (its CPU seconds are appended to :data:`CPU_SECONDS`)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if r.returncode:
        raise SystemExit(f"{cmd[:3]} failed: {r.stderr[-2000:]}")
    return wall


def _frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def decode_limit(clip: Path, runs: int = 3) -> float:
    """Seconds FFmpeg takes to decode ``clip`` with 2 threads (whole process), the fastest of
    ``runs`` (the first run of a session pays for loading FFmpeg's libraries and the file from
    disk: 1.5 s against 0.2 s for a 72-frame 720p clip); its CPU seconds stay the last entry of
    :data:`CPU_SECONDS`."""
    cmd = ["ffmpeg", "-v", "error", "-threads", str(THREADS), "-i", str(clip), "-f", "null", "-"]
    times: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        times.append(_timed(cmd))
        cpus.append(CPU_SECONDS[-1])
    best = min(range(runs), key=times.__getitem__)
    CPU_SECONDS.append(cpus[best])
    return times[best]


def _covered_share(masks: list[np.ndarray], faces: list[np.ndarray]) -> tuple[int, int]:
    hit = total = 0
    for mask, gt in zip(masks, faces, strict=True):
        if len(gt):
            hit += int((coverage(mask, gt) >= COVER).sum())
            total += len(gt)
    return hit, total


def run_mien(
    clip: Path,
    tmp: Path,
    faces: list[np.ndarray] | None,
    src: Path | None = None,
    global_every: int | None = None,
) -> dict[str, Any]:
    """mien's redaction of ``clip``; ``src``: another checkout's ``src`` folder (a baseline);
    ``global_every``: that option of VideoRedactOptions (default: mien's)."""
    out, report = tmp / "mien.mp4", tmp / "mien.json"
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    cmd = [sys.executable, "-c", MIEN_REDACT, str(clip), str(out), str(report)]
    cmd += [str(global_every)] if global_every else []
    secs = _timed(cmd, env)
    rep = json.loads(report.read_text())
    row: dict[str, Any] = {
        "seconds": secs,
        "cpu_s": CPU_SECONDS[-1],
        "stage_ms": rep["stage_ms"],
        "frames": rep["frames"],
    }
    if faces is not None:
        from mien.redact import RedactOptions

        by_frame: dict[int, list[list[float]]] = {}
        for k, box in rep["regions"]:
            by_frame.setdefault(int(k), []).append(box)
        rng = np.random.default_rng(0)
        h, w = crowd_clips.WINDOW[1], crowd_clips.WINDOW[0]
        masks = [
            noise_mask(
                (h, w),
                np.asarray(by_frame.get(i, []), np.float64).reshape(-1, 4),
                RedactOptions(),
                rng,
            )
            for i in range(len(faces))
        ]
        row["covered"], row["face_frames"] = _covered_share(masks, faces)
    return row


def run_deface(clip: Path, tmp: Path, faces: list[np.ndarray] | None) -> dict[str, Any]:
    out, boxes = tmp / "deface.mp4", tmp / "deface.json"
    secs = _timed([str(DEFACE_PY), "-c", DEFACE_RUN, str(clip), "-o", str(out), str(boxes)])
    row: dict[str, Any] = {"seconds": secs, "cpu_s": CPU_SECONDS[-1]}
    if faces is not None:
        h, w = crowd_clips.WINDOW[1], crowd_clips.WINDOW[0]
        packed = tmp / "deface_masks.npy"
        _timed([str(DEFACE_PY), "-c", DEFACE_MASKS, str(boxes), str(h), str(w), str(packed)])
        bits = np.load(packed)
        masks = [np.unpackbits(b)[: h * w].reshape(h, w).astype(bool) for b in bits]
        row["covered"], row["face_frames"] = _covered_share(masks, faces)
    return row


def run_analyze(clip: Path, tmp: Path, src: Path | None = None) -> float:
    """Wall seconds of ``mien analyze clip --features detection``; ``src``: another
    checkout's ``src`` folder (a baseline)."""
    out = tmp / "analyze.jsonl"
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    cmd = [
        sys.executable,
        "-m",
        "mien",
        "analyze",
        str(clip),
        "--features",
        "detection",
        "--threads",
        str(THREADS),
        "-q",
        "-o",
        str(out),
    ]
    return _timed(cmd, env)


def inputs(data: Path, crowd: int) -> list[tuple[str, Path, list[np.ndarray] | None]]:
    """(label, clip, per-frame faces or None) for every input."""
    out: list[tuple[str, Path, list[np.ndarray] | None]] = []
    media = data / "pyfeat_media"
    for size in (720, 1080):
        for name in video_bench.CLIPS:
            clip = video_bench.scaled_clip(media / name, size, PYFEAT_FRAMES)
            out.append((f"{size}p {name}", clip, None))
    for k in range(crowd):
        c = crowd_clips.build(data, k)
        out.append((f"720p crowd_{k}", c.path, c.faces))
    return out


def video_rows(
    data: Path,
    crowd: int = 4,
    tools: tuple[str, ...] = ("mien", "deface"),
    only: str = "",
    baseline: Path | None = None,
) -> list[dict[str, Any]]:
    """One row per clip: frames, decode limit, mien and deface (and mien analyze at 720p);
    ``only``: comma-separated parts of the clip labels to keep (all when empty); ``baseline``:
    a checkout's ``src`` folder whose mien is timed too (tool ``"baseline"``)."""
    if "deface" in tools and not DEFACE_PY.exists():
        raise SystemExit(f"{DEFACE_PY} is missing: run bash bench/setup_deface.sh first")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="speed_video_") as t:
        tmp = Path(t)
        keep = [w for w in only.split(",") if w]
        chosen = [c for c in inputs(data, crowd) if not keep or any(w in c[0] for w in keep)]
        for i, (label, clip, faces) in enumerate(chosen):
            row: dict[str, Any] = {"clip": label, "frames": _frames(clip)}
            row["decode_s"] = decode_limit(clip)
            row["decode_cpu_s"] = CPU_SECONDS[-1]
            order = list(tools) if i % 2 == 0 else list(reversed(tools))
            for tool in order:
                if tool == "deface":
                    row[tool] = run_deface(clip, tmp, faces)
                elif tool == "mien-roi":
                    row[tool] = run_mien(clip, tmp, faces, global_every=ROI_GLOBAL_EVERY)
                else:
                    row[tool] = run_mien(clip, tmp, faces, baseline if tool == "baseline" else None)
            if label.startswith("720p") and faces is None:
                first = baseline is not None and i % 2 == 1  # the order alternates
                if first:
                    row["baseline_analyze_s"] = run_analyze(clip, tmp, baseline)
                    row["baseline_analyze_cpu_s"] = CPU_SECONDS[-1]
                row["analyze_s"] = run_analyze(clip, tmp)
                row["analyze_cpu_s"] = CPU_SECONDS[-1]
                if baseline is not None and not first:
                    row["baseline_analyze_s"] = run_analyze(clip, tmp, baseline)
                    row["baseline_analyze_cpu_s"] = CPU_SECONDS[-1]
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def _fps(row: dict[str, Any], seconds: float | None) -> float | None:
    return row["frames"] / seconds if seconds else None


def _f(x: float | None, nd: int = 1, unit: str = "") -> str:
    return "–" if x is None else f"{x:.{nd}f}{unit}"


def video_markdown(rows: list[dict[str, Any]]) -> str:
    """The video table and the per-stage profile."""
    lines = [
        "| clip | frames | decode limit f/s | mien redact f/s | deface f/s | mien / deface "
        "| same, CPU time | covered mien | covered deface | mien analyze f/s | analyze / decode "
        "| same, CPU time | baseline redact f/s | covered baseline | baseline analyze f/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    prof = ["| clip | decode | detect | track | draw | encode |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        m, d, b = r.get("mien"), r.get("deface"), r.get("baseline")
        dec = _fps(r, r["decode_s"])
        mf = _fps(r, m["seconds"]) if m else None
        df = _fps(r, d["seconds"]) if d else None
        af = _fps(r, r.get("analyze_s"))

        def share(t: dict[str, Any] | None) -> str:
            if not t or "covered" not in t:
                return "–"
            return f"{t['covered'] / max(1, t['face_frames']):.3f} of {t['face_frames']}"

        lines.append(
            f"| {r['clip']} | {r['frames']} | {_f(dec)} | {_f(mf)} | {_f(df)} | "
            f"{_f(mf / df if mf and df else None, 2, 'x')} | "
            f"{_f(d['cpu_s'] / m['cpu_s'] if m and d else None, 2, 'x')} | {share(m)} | "
            f"{share(d)} | {_f(af)} | {_f(af / dec if af and dec else None, 2, 'x')} | "
            f"{_f(r['decode_cpu_s'] / r['analyze_cpu_s'] if af else None, 2, 'x')} | "
            f"{_f(_fps(r, b['seconds']) if b else None)} | {share(b)} | "
            f"{_f(_fps(r, r.get('baseline_analyze_s')))} |"
        )
        if m and m["stage_ms"]:
            s = m["stage_ms"]
            prof.append(
                f"| {r['clip']} | "
                + " | ".join(f"{s[k]:.1f}" for k in ("decode", "detect", "track", "draw", "encode"))
                + " |"
            )
    return "\n".join(
        [
            *lines,
            "",
            "mien redact per-stage profile, ms per frame (each stage's own time; decode, "
            "detect+track and draw+encode run on three threads):",
            "",
            *prof,
            "",
        ]
    )


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=video_bench.DEFAULT_DATA)
    ap.add_argument("--crowd", type=int, default=4)
    ap.add_argument("--tools", default="mien,deface")
    ap.add_argument("--only", default="", help="comma-separated clip labels (substring match)")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout's src/")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    tools = tuple(args.tools.split(",")) + (("baseline",) if args.baseline else ())
    rows = video_rows(args.data, args.crowd, tools, args.only, args.baseline)
    print(video_markdown(rows))


if __name__ == "__main__":
    main()
