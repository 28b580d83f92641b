"""Fuzz target: the command-line argument layer (:func:`mien.cli.build_parser`).

The bytes are split on NUL into an argument list. A piece that starts with byte 0x01 stands for
a real token of mien's command line (a command, an option name, a choice, a feature name, an
edge value), chosen by its second byte, followed by the rest of the piece (so ``--threshold=``
plus ``nan`` is one mutation away); any other piece is decoded as the OS decodes ``argv``
(UTF-8 with surrogate escapes). The list is parsed by mien's real parser, and a parsed command
then goes through the option checks its ``run`` makes before it reads anything
(``AnalyzerOptions`` from the detector options (for ``check`` with a profile's features),
``VideoOptions`` for ``analyze``,
``RedactOptions`` and the fill colour for ``redact`` and ``batch --task redact``, ``BatchOptions``
for ``batch``, ``LiveOptions`` for ``analyze``/``redact``). No command is run: nothing is
analysed, read or written.

Expected: ``SystemExit`` with code 0 (``--help``, ``--version``) or 2 (usage error), a parsed
namespace, and from the option checks ``ValueError`` or a :class:`mien.errors.MienError`
(``mien.cli.main`` turns both into exit code 2 or 3 with a message). Anything else is a finding.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
from typing import Any, Final

from mien.errors import MienError
from mien.features import AVAILABLE_FEATURES

MAX_LEN: Final = 4096
PER_INPUT_SECONDS: Final = 10.0

_VALUES: Final = (
    "-",
    "--",
    "=",
    "",
    "0",
    "1",
    "-1",
    "2",
    "0.5",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "1e999",
    "1e-999",
    "9" * 40,
    "0x10",
    "1_000",
    "all",
    "detection,landmarks",
    "detection,,",
    "age",
    "gender",
    "emotion",
    "#ff0000",
    "#fff",
    "255,0,0",
    "256,-1,0",
    "id-photo",
    "publish-safe",
    "photo.jpg",
    "clip.mp4",
    "out.mp4",
    "out/",
    "rtsp://camera.local/stream1",
    "https://cdn.example/live/index.m3u8",
    "rtmp://0.0.0.0:1935/live/in",
    "/dev/video0",
    "\u00e9\u00e8",
    "-x",
    "-q-o",
)


def _walk(parser: argparse.ArgumentParser, out: list[str]) -> None:
    from mien.cli.common import Parser

    if isinstance(parser, Parser):
        parser.complete()  # a command's options added on first use (Parser.later)
    for action in parser._actions:
        out.extend(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(name)
                _walk(sub, out)
        elif action.choices is not None:
            out.extend(str(c) for c in action.choices)


@functools.cache
def _parser() -> argparse.ArgumentParser:
    from mien.cli import build_parser

    return build_parser()


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """Every command, option name and choice of mien's parser, then feature names and values."""
    words: list[str] = []
    _walk(_parser(), words)
    words += AVAILABLE_FEATURES
    words += _VALUES
    return tuple(dict.fromkeys(words))  # unique, in a stable order


def argv_of(data: bytes) -> list[str]:
    """The argument list ``data`` stands for (see the module docstring)."""
    vocab = vocabulary()
    argv: list[str] = []
    for piece in data.split(b"\x00"):
        if piece[:1] == b"\x01":
            word = vocab[piece[1] % len(vocab)] if len(piece) > 1 else vocab[0]
            argv.append(word + piece[2:].decode("utf-8", "surrogateescape"))
        else:
            argv.append(piece.decode("utf-8", "surrogateescape"))
    return argv


def _encode(argv: list[str]) -> bytes:
    vocab = vocabulary()
    index = {w: k for k, w in enumerate(vocab) if k < 256}
    parts = [
        b"\x01" + bytes([index[a]]) if a in index else a.encode("utf-8", "surrogateescape")
        for a in argv
    ]
    return b"\x00".join(parts)


_SEED_LINES: Final = (
    "analyze photo.jpg -o out.jsonl --features detection,landmarks --pretty -q",
    "analyze clip.mp4 --every-n 5 --detect-side 640 --threshold 0.4 --max-faces 3",
    "analyze clip.mp4 --sample-fps 2.5 --upscale 1 --no-tiling --rotation-search",
    "analyze rtsp://camera.local/stream1 --features detection,quality -o events.jsonl",
    "annotate photo.jpg -o out.jpg --features all --min-face 20",
    "redact photo.jpg -o out.jpg --method pixelate --shape box --scale 1.5",
    "redact clip.mp4 -o out.mp4 --method fill --color #ff0000 --report audit.json",
    "redact rtsp://camera/s -o rtmp://media.local/live/public --on-suspect fail --hold 2",
    "check --profile id-photo photo.jpg --analysis --pretty",
    "check --rules rules.yaml --show-rules",
    "check --list-fields",
    "batch in/ --output out/ --task redact --engine local --workers 2 --method blur",
    "batch in/ --output out/ --format jsonl --threads 1",
    "serve --host 127.0.0.1 --port 8000 --workers 1 --max-upload-mb 8",
    "keys create --name ci",
    "models",
    "--version",
    "analyze --help",
)


def seeds() -> list[bytes]:
    """Real command lines of docs/cli.md, NUL-separated, known tokens as 0x01 + index."""
    return [_encode(line.split(" ")) for line in _SEED_LINES]


DICTIONARY: Final = tuple(
    b"\x00\x01" + bytes([k]) for k in range(min(256, len(vocabulary())))
) + tuple(w.encode("utf-8") for w in vocabulary()[:200] if w.startswith("--"))


def _check_options(args: argparse.Namespace) -> None:
    """The option checks each command's ``run`` makes before it reads or writes anything."""
    from mien.cli.common import options_from_args

    cmd = args.command
    if cmd in ("analyze", "annotate", "redact"):
        options_from_args(args)
    if cmd == "check" and not (args.list_fields or args.show_rules):
        # mien check takes the features from the rules; a built-in profile needs no file
        from mien.rules import PROFILES, load_profile

        profile = args.profile if args.profile in PROFILES else "id-photo"
        options_from_args(args, features=load_profile(profile).required_features)
    if cmd == "analyze":
        from mien.cli.analyze import _video_options

        _video_options(args)
    if cmd == "batch":  # the checks mien batch makes, shard_seconds included
        from mien.cli.batch import batch_options

        batch_options(args)
    if cmd == "redact":
        from mien.redact.options import RedactOptions, parse_color

        RedactOptions(
            method=args.method, shape=args.shape, scale=args.scale, color=parse_color(args.color)
        )
    if cmd in ("analyze", "redact"):
        from mien.cli.live import _live_options

        _live_options(args, redact=cmd == "redact")


def fuzz_one(data: bytes) -> bool:
    """Parse ``data`` as mien's argv (output swallowed): True when parsed and the options passed
    their checks, False on exit 0/2, ValueError or MienError; anything else is a finding."""
    argv = argv_of(data)
    sink = io.StringIO()
    args: Any
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code in (0, 2):
                return False
            raise AssertionError(f"parser exited with code {exc.code!r} for {argv!r}") from None
    if not callable(getattr(args, "func", None)):
        raise AssertionError(f"parsed {argv!r} without a command to run")
    try:
        _check_options(args)
    except (ValueError, MienError):
        return False
    return True
