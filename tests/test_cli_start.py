"""A run of one command imports that command's modules only (process start, issue 19)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import SAMPLE

PROBE = """
import contextlib, io, sys
from mien.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["analyze", sys.argv[1], "--features", "detection", "-q"])
print(code, *sorted(m for m in sys.modules if m.startswith(("mien.batch", "mien.service",
      "mien.rules", "mien.cli."))))
"""


def test_mien_analyze_of_one_file_skips_the_other_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(SAMPLE)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    code, *loaded = proc.stdout.split()
    assert code == "0"
    assert "mien.cli.analyze" in loaded
    assert not [m for m in loaded if m.startswith(("mien.batch", "mien.service"))], loaded
    assert not {"mien.cli.serve", "mien.cli.batch", "mien.cli.keys"} & set(loaded)


def test_mien_help_still_lists_every_command() -> None:
    from mien.cli import COMMANDS, build_parser

    text = build_parser().format_help()
    assert all(name in text for name in COMMANDS)
    assert "analyze" in build_parser("analyze").format_help()
