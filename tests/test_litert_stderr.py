"""LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." line (written by C++ to
fd 2 when the first interpreter is made) is not part of mien's output; other stderr text is."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import SAMPLE


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def test_analyze_with_landmarks_and_mesh_prints_nothing_on_stderr_with_q() -> None:
    for features in ("landmarks", "mesh"):
        proc = run("-m", "mien", "analyze", "--features", features, str(SAMPLE), "-q")
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # before: the XNNPACK INFO line, on every run
        (record,) = [json.loads(line) for line in proc.stdout.splitlines()]
        assert record["faces"] and record["faces"][0][features]
        assert any(m["name"] == "mediapipe-face-mesh" for m in record["models"])  # LiteRT ran


def test_an_error_still_reaches_stderr(tmp_path) -> None:
    proc = run("-m", "mien", "analyze", "--features", "mesh", str(SAMPLE), str(tmp_path / "x.jpg"))
    assert proc.returncode == 1
    assert "NotFound" in proc.stderr and "x.jpg" in proc.stderr
    assert "XNNPACK" not in proc.stderr


CAPTURE = r"""
import os, sys
from mien.landmarks.mesh import LITERT_INFO, quiet_litert_info
print("before", file=sys.stderr, flush=True)
with quiet_litert_info():
    os.write(2, LITERT_INFO + b"\nERROR: a real native error\n")
    print("python text in the block", file=sys.stderr)
try:
    with quiet_litert_info():
        os.write(2, b"E: written just before a failure\n" + LITERT_INFO + b"\n")
        from ai_edge_litert.interpreter import Interpreter
        Interpreter(model_content=b"not a model" * 4)
except ValueError as exc:
    print(f"raised: {exc}", file=sys.stderr)
os.write(2, b"after: fd 2 is stderr again\n")
"""


def test_the_capture_drops_only_the_info_line_and_restores_stderr() -> None:
    proc = run("-c", CAPTURE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "before",
        "ERROR: a real native error",
        "python text in the block",
        "E: written just before a failure",
        "raised: The model is not a valid Flatbuffer buffer",
        "after: fd 2 is stderr again",
    ]
