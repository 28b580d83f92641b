"""How many review items a video gives: flagged frames vs segments (by track, and by rule set).

    PYTHONPATH=src python bench/review_segments.py [--profile id-photo] [--fps 2] CLIP...

Clips are looked up in ``../shared/data/pyfeat_media`` when not a path. Prints one line per
clip; nothing is timed (see docs/review.md#video-segments for the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mien.service.analysis import AnalyzerCache, flag_record, parse_params
from mien.service.segments import Segmenter, frame_observations
from mien.video import FrameResult, VideoAnalyzer, VideoOptions

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pyfeat_media"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--profile", default="id-photo")
    ap.add_argument("--fps", type=float, default=2.0)
    args = ap.parse_args()
    params = dataclasses.replace(parse_params(None, args.profile), sample_fps=args.fps)
    cache = AnalyzerCache(num_threads=1, max_pixels=50_000_000)
    rules = cache.ruleset(args.profile)
    assert rules is not None
    for clip in args.clips:
        path = Path(clip) if Path(clip).exists() else DATA / clip
        by_track, by_rules = Segmenter(by_rules=False), Segmenter(by_rules=True)
        out: dict[str, list[object]] = {"track": [], "rules": []}
        frames = flagged = 0
        va = VideoAnalyzer(analyzer=cache.analyzer(params), video=VideoOptions(sample_fps=args.fps))
        for rec in va.analyze_video(path, on_error="record"):
            if not isinstance(rec, FrameResult):
                continue
            frames += 1
            flags = [flag_record(f) for f in rules.evaluate_faces(rec.faces, rec.width, rec.height)]
            flagged += bool(flags)
            obs = frame_observations(rec.to_dict(include_mesh=False), flags)
            out["track"] += by_track.add(obs, rec.timestamp_ms / 1000)
            out["rules"] += by_rules.add(obs, rec.timestamp_ms / 1000)
        out["track"] += by_track.close()
        out["rules"] += by_rules.close()
        print(
            f"{path.name}: {frames} frames analysed, {flagged} flagged -> "
            f"{len(out['track'])} segments by track, {len(out['rules'])} by rule set"
        )


if __name__ == "__main__":
    main()
