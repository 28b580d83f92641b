"""What the ``mien`` commands share: exit codes, the parser class, the options several commands
take (detection, features, listing, redaction), and the defaults they read from the library's
option dataclasses (:func:`default_of`) instead of repeating them."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from mien.features import AVAILABLE_FEATURES, DEFAULT_FEATURES, parse_features

if TYPE_CHECKING:
    from mien.analyzer import FaceAnalyzer
    from mien.options import AnalyzerOptions
    from mien.redact.options import RedactOptions
    from mien.types import ImageResult

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_CANNOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """exit codes:
  0    every input was analysed
  1    some inputs could not be read (their JSON line has "error"); the others were analysed
  2    usage error, or a refused/unknown feature (nothing was read)
  3    mien could not run (model verification failed, output not writable or refused:
       the input, a link, a device, a FIFO... are never written over)
  130  interrupted

mien describes what a face shows. It never infers who a person is or what group they belong
to: no ethnicity, race, gender, age, emotion, identity, recognition or embeddings."""

log = logging.getLogger("mien")


class Parser(argparse.ArgumentParser):
    """mien's parser: usage errors exit 2, and a command's options may be added on first use.

    A command whose options need heavy modules (their defaults are read from option dataclasses
    that live beside OpenCV, PyAV or the models) adds them in :meth:`later`, so ``mien --help``
    and the other commands load none of it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[Callable[[], None]] = []

    def later(self, add_options: Callable[[], None]) -> None:
        """Run ``add_options`` (which adds this parser's options) before it is first used."""
        self._pending.append(add_options)

    def complete(self) -> None:
        """Add the options deferred by :meth:`later` (done before parsing or printing help)."""
        while self._pending:
            self._pending.pop(0)()

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self.complete()
        return super().parse_known_args(*args, **kwargs)

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()

    def error(self, message: str) -> Any:  # exit code 2 with the usage line, like argparse
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"mien: error: {message}\n")


def command(
    sub: Any,
    name: str,
    help: str,
    epilog: str = EPILOG,
    later: Callable[[Parser], None] | None = None,
    **kw: Any,
) -> Parser:
    """Add the sub-command ``name``: its ``epilog`` (exit codes...) printed as written; the
    options ``later`` adds are added on first use (:meth:`Parser.later`)."""
    parser: Parser = sub.add_parser(
        name,
        help=help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kw,
    )
    if later is not None:
        parser.later(lambda: later(parser))
    return parser


def default_of(cls: Any, name: str) -> Any:
    """The default of dataclass ``cls``'s field ``name`` (its factory's value if it has one):
    the CLI's defaults and help read the library's option classes, never a copy."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            break
    raise KeyError(f"{cls.__name__} has no default for {name!r}")


def detector_args(p: argparse.ArgumentParser) -> None:
    """The detection options; their defaults are :class:`mien.options.AnalyzerOptions`'s."""
    from mien.options import AnalyzerOptions

    d = AnalyzerOptions()
    g = p.add_argument_group("detection")
    score = f"minimum detector score in [0, 1] (default {d.threshold:g})"
    g.add_argument("--threshold", type=float, default=d.threshold, help=score)
    smallest = f"ignore faces smaller than PX pixels (default {d.min_face:g})"
    g.add_argument("--min-face", type=float, default=d.min_face, metavar="PX", help=smallest)
    most = "keep the N highest-scoring faces per image"
    g.add_argument("--max-faces", type=int, default=d.max_faces, metavar="N", help=most)
    g.add_argument(
        "--upscale",
        type=float,
        default=d.upscale,
        metavar="F",
        help=f"enlarge small pictures up to F times for a second pass (1 = off; default "
        f"{d.upscale:g})",
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
    threads = "detector threads (default: all cores)"
    g.add_argument("--threads", type=int, default=d.num_threads, metavar="N", help=threads)
    device_arg(g)


def device_arg(p: Any) -> None:
    """``--device cpu|cuda`` (default :class:`mien.options.AnalyzerOptions`'s)."""
    from mien.options import AnalyzerOptions

    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=default_of(AnalyzerOptions, "device"),
        help="where the detector network runs: cpu, or cuda (an NVIDIA GPU through "
        "onnxruntime-gpu: pip install 'mien[cuda]'; mien stops with DeviceUnavailable, exit 3, "
        "when it cannot start, never falls back to the CPU); the face mesh stays on the CPU",
    )


def features_arg(p: argparse.ArgumentParser, default: Sequence[str] = DEFAULT_FEATURES) -> None:
    p.add_argument(
        "--features",
        default=",".join(default),
        help=f"comma-separated: {', '.join(_with_maturity(AVAILABLE_FEATURES))} or all "
        f"(default: {','.join(default)}); an attribute answers null with the reason "
        "'uncertain (...)' when its confidence is below its abstention band (mien models)",
    )


def _with_maturity(features: Sequence[str]) -> list[str]:
    """Feature names, each observable attribute followed by its maturity from its model card
    (``"sunglasses [experimental: recall ...]"``, ``"smile [stable]"``). A card's text is data:
    its ``%`` signs are doubled so that argparse's help formatting shows them as they are."""
    from mien.models.registry import ATTRIBUTE_CARDS, attribute_trust

    def trust(f: str) -> str:
        return attribute_trust(f)[0].replace("%", "%%")

    return [f"{f} [{trust(f)}]" if f in ATTRIBUTE_CARDS else f for f in features]


def listing_args(p: argparse.ArgumentParser, pretty_help: str) -> None:
    """``--no-recursive``, ``-q`` and ``--pretty`` of the commands that list folders and print
    one JSON object per picture (analyze, check)."""
    p.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-file log")
    p.add_argument("--pretty", action="store_true", help=pretty_help)


def redaction_args(group: Any) -> None:
    """``--method``, ``--shape``, ``--scale`` and ``--color``, with :class:`RedactOptions`'
    defaults (``mien redact`` and ``mien batch --task redact``: one face is covered alike)."""
    from mien.redact.options import DEFAULT_SCALE, METHODS, SHAPES, RedactOptions

    group.add_argument(
        "--method",
        choices=METHODS,
        default=default_of(RedactOptions, "method"),
        help="how faces are covered",
    )
    group.add_argument(
        "--shape",
        choices=SHAPES,
        default=default_of(RedactOptions, "shape"),
        help="covered area's shape",
    )
    group.add_argument(
        "--scale",
        type=float,
        default=DEFAULT_SCALE,
        metavar="F",
        help="grow each face box F times around its centre before covering "
        f"(1-4; default {DEFAULT_SCALE})",
    )
    group.add_argument(
        "--color",
        default="#000000",
        metavar="COLOUR",
        help="fill colour for --method fill: #rrggbb or r,g,b (default black)",
    )


def redact_options_from_args(args: argparse.Namespace) -> RedactOptions:
    """RedactOptions from ``--method``, ``--shape``, ``--scale`` and ``--color``."""
    from mien.redact.options import RedactOptions, parse_color

    return RedactOptions(
        method=args.method, shape=args.shape, scale=args.scale, color=parse_color(args.color)
    )


def options_from_args(
    args: argparse.Namespace, features: Sequence[str] | None = None
) -> AnalyzerOptions:
    """AnalyzerOptions from the detector options (and ``--features``, unless ``features``)."""
    from mien.options import AnalyzerOptions

    return AnalyzerOptions(
        features=parse_features(args.features) if features is None else tuple(features),
        threshold=args.threshold,
        min_face=args.min_face,
        max_faces=args.max_faces,
        upscale=args.upscale,
        tiling=not args.no_tiling,
        rotation_search=args.rotation_search,
        num_threads=args.threads,
        device=args.device,
    )


def worker_count(given: int | None) -> int:
    """``--workers``: the worker processes asked for (>= 1), or one per core when not given."""
    from mien.batch import default_workers

    if given is not None and given < 1:
        raise ValueError(f"--workers must be at least 1, got {given}")
    return default_workers() if given is None else given


def check_output(path: str | None, sources: Sequence[Any] = (), kind: str = "file") -> None:
    """Apply mien's output rule (:func:`mien.media.write.check_output_path`) to ``path`` before
    any work: :class:`~mien.media.write.OutputError` (exit 3) names the path and why."""
    if path is None:
        return
    from mien.media.write import check_output_path

    check_output_path(path, sources=sources, kind=kind)


@contextlib.contextmanager
def sink(path: str | None, sources: Sequence[Any] = ()) -> Iterator[IO[str]]:
    """stdout, or the file ``path`` written atomically (the output rule checked again before
    it is renamed into place; ``sources`` are the inputs it must not replace)."""
    if path is None:
        yield sys.stdout
        return
    from mien.media.write import atomic_output

    with atomic_output(path, "w", sources=sources) as fh:
        yield fh


def inputs(paths: Sequence[str], recursive: bool) -> list[Any]:
    from mien.media.discover import iter_inputs

    out: list[Any] = []
    for p in iter_inputs(paths, recursive=recursive):
        # stdin is read by the image loader, which stops at its byte limit.
        out.append(("<stdin>", sys.stdin.buffer) if p == "-" else p)
    return out


def analyze_item(analyzer: FaceAnalyzer, item: Any) -> ImageResult:
    """Analyse one entry of :func:`inputs`: a path, or ``("<stdin>", stream)``; a picture that
    cannot be read gives a result with ``error``."""
    if isinstance(item, tuple):
        name, data = item
        return analyzer.analyze(data, name=name, on_error="record")
    return next(analyzer.analyze_many([item]))


def note_unreadable(result: ImageResult, bar: Any, quiet: bool) -> bool:
    """Whether ``result`` could not be read; unless ``quiet`` says why on stderr, above the
    progress ``bar``."""
    if result.error is None:
        return False
    if not quiet:
        bar.write(
            f"mien: {result.source}: {result.error.code}: {result.error.message}", file=sys.stderr
        )
    return True


def progress(total: int, unit: str, show: bool) -> Any:
    """The progress bar of a command (tqdm on stderr: rate and ETA); hidden when not ``show``."""
    from tqdm import tqdm

    return tqdm(
        total=total, unit=unit, disable=not show or None, file=sys.stderr, dynamic_ncols=True
    )
