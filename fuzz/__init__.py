"""Fuzz targets for mien's input layers (docs/fuzzing.md).

One module per target; each has ``fuzz_one(data: bytes) -> bool`` (calls mien's real code and
returns True when mien accepted the input, False when mien refused it with one of its documented
errors; anything else it raises is a finding), ``seeds() -> list[bytes]`` (small valid inputs made
at run time), ``DICTIONARY`` (tokens that help the mutator), ``MAX_LEN`` (longest input to make)
and ``PER_INPUT_SECONDS`` (the time bound of one input). ``python -m fuzz.run TARGET --seconds N``
runs one with Atheris.
"""

from __future__ import annotations

#: Target name -> module under ``fuzz``.
TARGETS: dict[str, str] = {
    "image": "fuzz.image_decode",
    "video": "fuzz.video_decode",
    "rules": "fuzz.rules_parse",
    "cli": "fuzz.cli_args",
}

#: Target name -> the packages Atheris instruments for coverage feedback (Pillow's format
#: parsers and PyYAML's scanner are Python code; FFmpeg is native and not instrumented). A package
#: that is already imported when the worker starts (argparse) is imported afresh to instrument it.
INSTRUMENT: dict[str, tuple[str, ...]] = {
    "image": ("mien", "PIL"),
    "video": ("mien", "av"),
    "rules": ("mien", "yaml"),
    "cli": ("mien", "argparse"),
}
