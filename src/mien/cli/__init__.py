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
import importlib
import logging
import sys
from collections.abc import Sequence

from mien import __version__
from mien.cli.common import (
    EPILOG,
    EXIT_CANNOT_RUN,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Parser,
)
from mien.errors import MienError, RefusedAttributeError, UnknownFeatureError

#: One module per command under ``mien.cli``; each has ``register(subparsers)``, which adds its
#: parser and sets ``func`` (a callable taking the parsed arguments, returning the exit code).
COMMANDS = (
    "analyze",
    "annotate",
    "redact",
    "check",
    "batch",
    "models",
    "serve",
    "keys",
    "reviewers",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``mien`` parser; ``only``: register that command alone (when it is one of
    :data:`COMMANDS`): a command's module imports what its defaults and help need, so a run of
    one command skips the start-up cost of the others (docs/benchmarks.md)."""
    parser = Parser(
        prog="mien",
        description="Privacy-first face analysis: where faces are, landmarks, head pose, quality.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mien {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in (only,) if only in COMMANDS else COMMANDS:
        importlib.import_module(f"mien.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="mien: %(message)s", stream=sys.stderr)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
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
