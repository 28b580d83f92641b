"""Speed toward the limit (issue 19): mien against deface and against the decode limit, one table.

Usage (from the repository root, after ``bash bench/setup_deface.sh``)::

    .venv/bin/python bench/speed.py                  # every row
    .venv/bin/python bench/speed.py --photos 80 --repeat 3

Each row is ``work | mien | peer / limit | ratio``; ratio = mien's rate / the peer's (above 1:
mien is faster). Whole processes are timed (start-up, model loading, reading, writing), as a
user runs them, on the same inputs; the tools are interleaved and each run ``--repeat`` times,
the fastest kept, so that other processes' load on a shared machine touches them alike.

Photo rows (:func:`photo_rows`): the first ``--photos`` face-mask photos (``facemask_kaggle_voc``,
sorted by name, ~400 px) copied to a scratch folder;

* ``mien redact DIR -o OUT`` (worker processes, the default) against ``deface DIR`` (deface
  1.5.0 from bench/.cache/deface-venv, its CLI defaults, which write ``*_anonymized.jpg`` next
  to the inputs), and against ``mien redact DIR --workers 1`` (one process);
* ``mien analyze DIR --features detection`` against the same deface run;
* ``mien analyze DIR`` (worker processes, the default) against ``mien batch DIR`` (same
  features), and against ``mien analyze DIR --workers 1`` (one process);
* the decode limit: Pillow decoding the same photos in this process, nothing else.

Video rows (``bench/speed_video.py``): 720p and 1080p clips and crowd clips
(``bench/crowd_clips.py``), ``mien redact`` against deface and the FFmpeg decode limit, with the
share of covered face-frames and a per-stage profile. ``--no-photos`` / ``--no-video`` run one
half. Results: ``bench/results/speed.md|json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = REPO.parent / "shared" / "data"
DEFACE = BENCH / ".cache" / "deface-venv" / "bin" / "deface"


@dataclass(frozen=True)
class Row:
    """One line of the table: rates in units per second (higher is better)."""

    work: str
    mien: float
    peer_name: str
    peer: float
    unit: str

    @property
    def ratio(self) -> float:
        return self.mien / self.peer if self.peer else float("nan")


def _timed(cmd: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one process; stops the benchmark if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env)
    took = time.perf_counter() - t0
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]!r}")
    return took


def _mien(*args: str) -> list[str]:
    return [sys.executable, "-m", "mien", *args]


def _decode(photos: Sequence[Path]) -> float:
    t0 = time.perf_counter()
    for p in photos:
        with Image.open(p) as im:
            im.convert("RGB").load()
    return time.perf_counter() - t0


def photo_rows(n: int = 80, repeat: int = 3) -> list[Row]:
    """The photo rows, measured in one run (see the module's docstring)."""
    if not DEFACE.exists():
        raise SystemExit(f"{DEFACE} is missing: run bash bench/setup_deface.sh first")
    source = sorted((DATA / "facemask_kaggle_voc" / "images").glob("*.jpg"))[:n]
    if len(source) < n:
        raise SystemExit(f"needs {n} face-mask photos under {DATA}; found {len(source)}")
    with tempfile.TemporaryDirectory(prefix="mien-speed-") as tmp:
        root = Path(tmp)
        photos = root / "photos"
        photos.mkdir()
        for p in source:
            shutil.copy(p, photos / p.name)

        def deface() -> float:
            work = root / "deface"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(photos, work)  # deface writes next to its inputs
            return _timed([str(DEFACE), str(work)])

        def fresh(name: str) -> Path:
            out = root / name
            shutil.rmtree(out, ignore_errors=True)
            return out

        def analyze(out: str, *extra: str) -> float:
            args = ("analyze", str(photos), "--features", "detection", "-q", *extra)
            return _timed(_mien(*args, "-o", str(root / out)))

        runs: dict[str, Callable[[], float]] = {
            "deface": deface,
            "redact": lambda: _timed(_mien("redact", str(photos), "-q", "-o", str(fresh("r")))),
            "redact1": lambda: _timed(
                _mien("redact", str(photos), "-q", "--workers", "1", "-o", str(fresh("r1")))
            ),
            "analyze": lambda: analyze("a.jsonl"),
            "analyze1": lambda: analyze("a1.jsonl", "--workers", "1"),
            "batch": lambda: _timed(
                _mien("batch", str(photos), "--features", "detection", "-q", "-o", str(fresh("b")))
            ),
            "decode": lambda: _decode(sorted(photos.iterdir())),
        }
        best = {k: float("inf") for k in runs}
        for i in range(repeat):
            for name, fn in runs.items():
                best[name] = min(best[name], fn())
                print(f"  run {i + 1}/{repeat} {name}: {best[name]:.2f} s", file=sys.stderr)
    rate = {k: n / v for k, v in best.items()}
    what = f"{n} face-mask photos (~400 px)"
    return [
        Row(
            f"`mien redact DIR -o OUT`, {what}",
            rate["redact"],
            "deface 1.5.0",
            rate["deface"],
            "photos/s",
        ),
        Row(
            f"`mien redact DIR` (worker processes) vs `--workers 1`, {what}",
            rate["redact"],
            "one process",
            rate["redact1"],
            "photos/s",
        ),
        Row(
            f"`mien analyze DIR --features detection`, {what}",
            rate["analyze"],
            "deface 1.5.0",
            rate["deface"],
            "photos/s",
        ),
        Row(
            f"`mien analyze DIR` (worker processes) vs `mien batch DIR`, {what}",
            rate["analyze"],
            "mien batch",
            rate["batch"],
            "photos/s",
        ),
        Row(
            f"`mien analyze DIR` (worker processes) vs `--workers 1`, {what}",
            rate["analyze"],
            "one process",
            rate["analyze1"],
            "photos/s",
        ),
        Row(
            f"`mien analyze DIR --features detection` vs decoding alone, {what}",
            rate["analyze"],
            "Pillow decode, 1 process",
            rate["decode"],
            "photos/s",
        ),
    ]


def table(rows: Sequence[Row]) -> str:
    """The Markdown table: work | mien | peer / limit | ratio."""
    lines = ["| work | mien | peer / limit | ratio |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.work} | {r.mien:.1f} {r.unit} | {r.peer_name}: {r.peer:.1f} {r.unit} "
            f"| ×{r.ratio:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=80, help="face-mask photos (default 80)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool, fastest kept")
    ap.add_argument("--no-photos", action="store_true", help="skip the photo rows")
    ap.add_argument("--no-video", action="store_true", help="skip the video rows")
    ap.add_argument("--crowd", type=int, default=4, help="crowd clips (default 4)")
    ap.add_argument("--only", default="", help="video clip labels to keep (substring match)")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "speed.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("PYTHONPATH", str(REPO / "src"))
    sys.path.insert(0, str(BENCH))
    import common_pose
    import speed_video

    os.environ.setdefault("OMP_NUM_THREADS", str(speed_video.THREADS))
    info = common_pose.machine_info()
    parts = [
        "# Speed: mien, deface and the decode limit on the same inputs",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'bench/speed.py', *sys.argv[1:]])}`",
        "",
    ]
    out: dict[str, object] = {"machine": info}
    if not args.no_photos:
        rows = photo_rows(args.photos, args.repeat)
        out["photos"] = [{**r.__dict__, "ratio": r.ratio} for r in rows]
        parts += ["## Photos", "", table(rows), ""]
    if not args.no_video:
        video = speed_video.video_rows(DATA, args.crowd, only=args.only)
        out["video"] = video
        parts += ["## Video", "", speed_video.video_markdown(video), ""]
    info["load_average_after"] = list(os.getloadavg())
    parts.append(common_pose.machine_line(info, speed_video.THREADS))
    md = "\n".join(parts) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
