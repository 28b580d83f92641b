"""``mien analyze``: one JSON object per image, and per-frame/per-track records for videos
(JSON Lines; docs/output.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from mien.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    analyze_item,
    check_output,
    command,
    default_of,
    detector_args,
    features_arg,
    listing_args,
    log,
    note_unreadable,
    options_from_args,
    progress,
    sink,
    worker_count,
)

if TYPE_CHECKING:
    from mien.video.analyzer import VideoAnalyzer, VideoOptions


def register(sub: Any) -> None:
    command(
        sub,
        "analyze",
        help="analyse images and videos; one JSON object per image or video frame (JSON Lines)",
        later=_add_options,
    )


def _add_options(an: argparse.ArgumentParser) -> None:
    """``mien analyze``'s options: added on first use, as their defaults are read from the
    video and live option classes, whose modules load OpenCV and PyAV."""
    an.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image or video files, or folders (searched recursively); '-' reads one image "
        "from stdin",
    )
    an.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write JSON Lines to FILE (atomically) instead of stdout",
    )
    features_arg(an)
    listing_args(an, pretty_help="indent the JSON (one object per image)")
    detector_args(an)
    an.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for two or more pictures (default: cores; 1: this process); "
        "with videos or stdin among the inputs everything runs in this process",
    )
    vg = an.add_argument_group("video")
    pick = vg.add_mutually_exclusive_group()
    pick.add_argument(
        "--every-n",
        type=int,
        default=1,
        metavar="N",
        help="analyse every N-th frame (frames 0, N, 2N...; default 1 = every frame)",
    )
    pick.add_argument(
        "--sample-fps",
        type=float,
        default=None,
        metavar="F",
        help="analyse F frames per second of video time (the first frame at or after each 1/F s)",
    )
    from mien.live.options import LiveOptions
    from mien.track.tracker import TrackerOptions
    from mien.video.analyzer import VideoOptions

    vg.add_argument(
        "--detect-side",
        type=int,
        default=None,
        metavar="PX",
        help="run the detector on frames shrunk to a longer side of PX (0 = full size; "
        f"default {default_of(VideoOptions, 'detect_side')} for video files, "
        f"{default_of(LiveOptions, 'detect_max_side')} for live streams)",
    )
    vg.add_argument(
        "--all-passes",
        action="store_true",
        help="search video frames like pictures (upscaled, mirrored and tiled passes; slow)",
    )
    vg.add_argument(
        "--max-missed",
        type=int,
        default=None,
        metavar="N",
        help="keep a face's track through N analysed frames without a detection (default "
        f"{default_of(TrackerOptions, 'max_missed')} for video files, "
        f"{default_of(LiveOptions, 'track_max_missed')} for live streams)",
    )
    # --- live streams (mien.live; docs/live.md) ---
    from mien.cli.live import stream_args

    stream_args(an, redact=False)
    an.set_defaults(func=run)


def _video_options(args: argparse.Namespace) -> VideoOptions:
    from mien.track.tracker import TrackerOptions
    from mien.video.analyzer import VideoOptions

    # options not given keep the video defaults (VideoOptions, TrackerOptions); live streams
    # resolve theirs from LiveOptions (mien.cli.live)
    given = {"detect_side": args.detect_side}
    tracker = {"max_missed": args.max_missed}
    return VideoOptions(
        every_n=args.every_n,
        sample_fps=args.sample_fps,
        all_passes=args.all_passes,
        tracker=TrackerOptions(**{k: v for k, v in tracker.items() if v is not None}),
        **{k: v for k, v in given.items() if v is not None},
    )


def _items(args: argparse.Namespace) -> list[Any]:
    from mien.media.discover import iter_inputs

    out: list[Any] = []
    for p in iter_inputs(args.paths, recursive=not args.no_recursive, videos=True):
        # stdin is read by the image loader, which stops at its byte limit.
        out.append(("<stdin>", sys.stdin.buffer) if p == "-" else p)
    return out


def _is_video(item: Any) -> bool:
    """A video file (:func:`mien.media.sniff.media_kind`); stdin is always a picture."""
    from mien.media.sniff import media_kind

    return isinstance(item, str) and media_kind(item) == "video"


def _write(out: IO[str], record: dict[str, Any], pretty: bool) -> None:
    out.write(json.dumps(record, indent=2 if pretty else None, allow_nan=False) + "\n")
    out.flush()


def _run_video(
    video: VideoAnalyzer, path: str, out: IO[str], args: argparse.Namespace, include_mesh: bool
) -> bool:
    """Analyse one video; returns whether it was read without error."""
    from tqdm import tqdm

    from mien.video.records import FrameResult, VideoResult

    bar = tqdm(
        unit="frame",
        desc=os.path.basename(path),
        disable=args.quiet or None,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )

    def opened(reader: Any) -> None:
        frames = reader.info.frames
        if frames:
            sel = reader.selection
            if sel.sample_fps and reader.info.fps:
                frames = int(frames * min(1.0, sel.sample_fps / reader.info.fps)) + 1
            else:
                frames = -(-frames // sel.every_n)
            bar.reset(total=frames)

    ok = True
    with bar:
        for record in video.analyze_video(path, on_error="record", on_open=opened):
            if isinstance(record, FrameResult):
                _write(out, record.to_dict(include_mesh=include_mesh), args.pretty)
                bar.update(1)
                continue
            if isinstance(record, VideoResult) and record.error is not None:
                ok = False
                if not args.quiet:
                    bar.write(
                        f"mien: {path}: {record.error.code}: {record.error.message}",
                        file=sys.stderr,
                    )
            _write(out, record.to_dict(), args.pretty)
    return ok


def _run_pool(
    paths: list[str], options: Any, workers: int, out: IO[str], bar: Any, args: argparse.Namespace
) -> int:
    """Analyse pictures in ``workers`` processes (mien.batch.pool), records written in input
    order as one process writes them; returns how many could not be read."""
    from mien.batch.pool import pool_records

    failed = 0
    for record in pool_records(paths, options, workers):
        error = record.get("error")
        if error is not None:
            failed += 1
            if not args.quiet:
                bar.write(
                    f"mien: {record.get('source')}: {error['code']}: {error['message']}",
                    file=sys.stderr,
                )
        _write(out, record, args.pretty)
        bar.update(1)
    return failed


def run(args: argparse.Namespace) -> int:
    from mien.cli.live import is_live, run_analyze  # live streams: docs/live.md

    if is_live(args, args.paths):
        return run_analyze(args)

    from mien.analyzer import FaceAnalyzer

    options = options_from_args(
        args
    )  # refusal/unknown features fail here, before any image is read
    video_options = _video_options(args)  # bad --every-n/--sample-fps fail here too
    workers = None if args.workers is None else worker_count(args.workers)  # validates
    items = _items(args)
    sources = [item for item in items if isinstance(item, str)]
    check_output(args.output, sources)  # exit 3 before any work when -o may not be written
    include_mesh = "mesh" in options.features
    show = not args.quiet and len(items) > 1
    pictures = all(isinstance(i, str) and not _is_video(i) for i in items)
    if len(items) > 1 and pictures and (workers or worker_count(None)) > 1:
        # pictures only: with videos or stdin among the inputs all is read in this process
        with sink(args.output, sources) as out, progress(len(items), "file", show) as bar:
            failed = _run_pool(sources, options, workers or worker_count(None), out, bar, args)
        if show:
            log.info("analysed %d file(s), %d could not be read", len(items), failed)
        return EXIT_SOME_FAILED if failed else EXIT_OK
    analyzer = FaceAnalyzer(options)
    video: VideoAnalyzer | None = None
    failed = 0
    with (
        sink(args.output, sources) as out,
        progress(len(items), "file", show) as bar,
    ):
        for item in items:
            if _is_video(item):
                if video is None:
                    from mien.video.analyzer import VideoAnalyzer

                    video = VideoAnalyzer(analyzer=analyzer, video=video_options)
                if not _run_video(video, item, out, args, include_mesh):
                    failed += 1
                bar.update(1)
                continue
            result = analyze_item(analyzer, item)
            if note_unreadable(result, bar, args.quiet):
                failed += 1
            _write(out, result.to_dict(include_mesh=include_mesh), args.pretty)
            bar.update(1)
    if show:
        log.info("analysed %d file(s), %d could not be read", len(items), failed)
    return EXIT_SOME_FAILED if failed else EXIT_OK
