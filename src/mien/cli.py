"""The ``mien`` command line: a thin layer over :class:`mien.FaceAnalyzer`.

Exit codes (also in ``mien --help`` and docs/cli.md):

* 0 — every input was analysed;
* 1 — at least one input could not be read; its JSON line carries an ``error``, the rest of
  the batch was analysed;
* 2 — usage error, including a refused or unknown feature name (nothing was read);
* 3 — mien could not run: a model file failed verification, or the output cannot be written;
* 130 — interrupted (Ctrl-C); complete lines written so far are kept in the ``.part`` file only
  when ``--output`` was given, nothing is renamed into place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from mien import __version__
from mien.errors import MediaError, MienError, RefusedAttributeError, UnknownFeatureError
from mien.features import AVAILABLE_FEATURES, DEFAULT_FEATURES, parse_features

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_CANNOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """exit codes:
  0    every input was analysed
  1    some inputs could not be read (their JSON line has "error"); the others were analysed
  2    usage error, or a refused/unknown feature (nothing was read)
  3    mien could not run (model verification failed, output not writable)
  130  interrupted

mien describes what a face shows. It never infers who a person is or what group they belong
to: no ethnicity, race, gender, age, emotion, identity, recognition or embeddings."""

log = logging.getLogger("mien")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit code 2 with the usage line, like argparse
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"mien: error: {message}\n")


def _detector_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("detection")
    g.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="minimum detector score in [0, 1] (default 0.5)",
    )
    g.add_argument(
        "--min-face",
        type=float,
        default=0.0,
        metavar="PX",
        help="ignore faces smaller than PX pixels (default 0)",
    )
    g.add_argument(
        "--max-faces",
        type=int,
        default=None,
        metavar="N",
        help="keep the N highest-scoring faces per image",
    )
    g.add_argument(
        "--upscale",
        type=float,
        default=2.0,
        metavar="F",
        help="enlarge small pictures up to F times for a second pass (1 = off; default 2)",
    )
    g.add_argument(
        "--no-tiling",
        action="store_true",
        help="do not search large pictures tile by tile at full resolution",
    )
    g.add_argument(
        "--rotation-search",
        action="store_true",
        help="also search pictures turned by 90, 180 and 270 degrees (4x slower)",
    )
    g.add_argument(
        "--threads", type=int, default=0, metavar="N", help="detector threads (default: all cores)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mien",
        description="Privacy-first face analysis: where faces are, landmarks, head pose, quality.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mien {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    an.add_argument(
        "--features",
        default=",".join(DEFAULT_FEATURES),
        help=f"comma-separated: {', '.join(AVAILABLE_FEATURES)} or all "
        f"(default: {','.join(DEFAULT_FEATURES)})",
    )
    an.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    an.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-file log")
    an.add_argument("--pretty", action="store_true", help="indent the JSON (one object per image)")
    _detector_args(an)

    at = sub.add_parser("annotate", help="draw boxes, landmarks, pose and labels on a picture")
    at.add_argument("photo", metavar="PHOTO")
    at.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output picture (.jpg, .png, .webp, ...); written without metadata",
    )
    at.add_argument(
        "--features",
        default=",".join(DEFAULT_FEATURES),
        help="features to compute and draw (default: %(default)s)",
    )
    _detector_args(at)

    sub.add_parser(
        "models", help="list the vendored models, verify their sha256 and show their cards"
    )
    return parser


def _options(args: argparse.Namespace) -> Any:
    from mien.options import AnalyzerOptions

    return AnalyzerOptions(
        features=parse_features(args.features),
        threshold=args.threshold,
        min_face=args.min_face,
        max_faces=args.max_faces,
        upscale=args.upscale,
        tiling=not args.no_tiling,
        rotation_search=args.rotation_search,
        num_threads=args.threads,
    )


@contextlib.contextmanager
def _sink(path: str | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    from mien.media.write import atomic_output

    with atomic_output(path, "w") as fh:
        yield fh  # type: ignore[misc]


def _inputs(paths: Sequence[str], recursive: bool) -> list[Any]:
    from mien.media.discover import iter_inputs

    out: list[Any] = []
    for p in iter_inputs(paths, recursive=recursive):
        # stdin is read by the image loader, which stops at its byte limit.
        out.append(("<stdin>", sys.stdin.buffer) if p == "-" else p)
    return out


def cmd_analyze(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mien.analyzer import FaceAnalyzer

    options = _options(args)  # refusal/unknown features fail here, before any image is read
    inputs = _inputs(args.paths, recursive=not args.no_recursive)
    analyzer = FaceAnalyzer(options)
    include_mesh = "mesh" in options.features
    failed = 0
    show = not args.quiet and len(inputs) > 1
    with (
        _sink(args.output) as out,
        tqdm(
            total=len(inputs),
            unit="img",
            disable=not show or None,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar,
    ):
        for item in inputs:
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
        log.info("analysed %d image(s), %d could not be read", len(inputs), failed)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def cmd_annotate(args: argparse.Namespace) -> int:
    from mien.analyzer import FaceAnalyzer
    from mien.media.image import load_image
    from mien.media.write import write_image
    from mien.render.annotate import annotate

    options = _options(args)
    analyzer = FaceAnalyzer(options)
    try:
        decoded = load_image(args.photo)
    except MediaError as exc:
        print(f"mien: {args.photo}: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_SOME_FAILED
    faces = analyzer.analyze_array(decoded.rgb)
    write_image(args.output, annotate(decoded.rgb, faces))
    print(f"mien: {len(faces)} face(s) drawn to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from mien.models.registry import list_cards, verified_model_bytes

    for card in list_cards():
        verified_model_bytes(card)
        print(
            json.dumps(
                {
                    "name": card.name,
                    "version": card.version,
                    "file": card.file,
                    "sha256": card.sha256,
                    "verified": True,
                    "licence": card.licence,
                    "runtime": card.runtime,
                    "task": card.task,
                    "input": card.input,
                    "training_data": card.training_data,
                    "origin": card.origin,
                }
            )
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="mien: %(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"analyze": cmd_analyze, "annotate": cmd_annotate, "models": cmd_models}
    try:
        return handlers[args.command](args)
    except RefusedAttributeError as exc:
        print(f"mien: refused: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except (UnknownFeatureError, ValueError) as exc:
        print(f"mien: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mien: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MienError as exc:
        print(f"mien: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_CANNOT_RUN


if __name__ == "__main__":
    raise SystemExit(main())
