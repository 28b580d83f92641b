"""``mien annotate``: draw boxes, landmarks, pose and labels on a picture."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mien.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    detector_args,
    features_arg,
    options_from_args,
)
from mien.errors import MediaError


def register(sub: Any) -> None:
    at = sub.add_parser("annotate", help="draw boxes, landmarks, pose and labels on a picture")
    at.add_argument("photo", metavar="PHOTO")
    at.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output picture (.jpg, .png, .webp, ...); written without metadata",
    )
    features_arg(at)
    detector_args(at)
    at.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mien.analyzer import FaceAnalyzer
    from mien.media.image import load_image
    from mien.media.write import OUTPUT_FORMATS, check_output_file, write_image
    from mien.render.annotate import annotate

    options = options_from_args(args)
    # the output rule (exit 3), before the models load or the photo is read
    check_output_file(args.output, OUTPUT_FORMATS, "picture", args.photo)
    analyzer = FaceAnalyzer(options)
    try:
        decoded = load_image(args.photo)
    except MediaError as exc:
        print(f"mien: {args.photo}: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_SOME_FAILED
    faces = analyzer.analyze_array(decoded.rgb)
    write_image(args.output, annotate(decoded.rgb, faces), sources=(args.photo,))
    print(f"mien: {len(faces)} face(s) drawn to {args.output}", file=sys.stderr)
    return EXIT_OK
