"""``mien analyze``: one JSON object per image (JSON Lines)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mien.cli.common import (
    EPILOG,
    EXIT_OK,
    EXIT_SOME_FAILED,
    detector_args,
    features_arg,
    inputs,
    log,
    options_from_args,
    sink,
)


def register(sub: Any) -> None:
    an = sub.add_parser(
        "analyze",
        help="analyse images; one JSON object per image (JSON Lines)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    an.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files or folders (searched recursively); '-' reads one image from stdin",
    )
    an.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write JSON Lines to FILE (atomically) instead of stdout",
    )
    features_arg(an)
    an.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    an.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-file log")
    an.add_argument("--pretty", action="store_true", help="indent the JSON (one object per image)")
    detector_args(an)
    an.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mien.analyzer import FaceAnalyzer

    options = options_from_args(
        args
    )  # refusal/unknown features fail here, before any image is read
    items = inputs(args.paths, recursive=not args.no_recursive)
    analyzer = FaceAnalyzer(options)
    include_mesh = "mesh" in options.features
    failed = 0
    show = not args.quiet and len(items) > 1
    with (
        sink(args.output) as out,
        tqdm(
            total=len(items),
            unit="img",
            disable=not show or None,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar,
    ):
        for item in items:
            if isinstance(item, tuple):
                name, data = item
                result = analyzer.analyze(data, name=name, on_error="record")
            else:
                result = next(analyzer.analyze_many([item]))
            if result.error is not None:
                failed += 1
                if not args.quiet:
                    bar.write(
                        f"mien: {result.source}: {result.error.code}: {result.error.message}",
                        file=sys.stderr,
                    )
            record = result.to_dict(include_mesh=include_mesh)
            out.write(json.dumps(record, indent=2 if args.pretty else None, allow_nan=False) + "\n")
            out.flush()
            bar.update(1)
    if show:
        log.info("analysed %d image(s), %d could not be read", len(items), failed)
    return EXIT_SOME_FAILED if failed else EXIT_OK
