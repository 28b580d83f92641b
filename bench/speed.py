"""Speed toward the limit (issue 19): one table with mien, deface and the decode limit on the same
inputs. This minimal version carries the video rows (bench/speed_video.py); the photo rows
(``photo_rows()``) come from the photo part of the work.

    .venv/bin/python bench/speed.py            # -> bench/results/speed.md|json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common_pose
import speed_video

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=speed_video.video_bench.DEFAULT_DATA)
    ap.add_argument("--crowd", type=int, default=4)
    ap.add_argument("--only", default="", help="video clip labels to keep (substring match)")
    ap.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(speed_video.THREADS))
    info = common_pose.machine_info()
    rows = speed_video.video_rows(args.data, args.crowd, only=args.only)
    info["load_average_after"] = list(os.getloadavg())
    md = "\n".join(
        [
            "# Speed: mien, deface and the decode limit on the same inputs",
            "",
            f"Command: `{' '.join(['.venv/bin/python', *sys.argv])}`",
            "",
            "## Video",
            "",
            speed_video.video_markdown(rows),
            common_pose.machine_line(info, speed_video.THREADS),
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "video": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
