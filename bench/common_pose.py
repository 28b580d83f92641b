"""Helpers shared by bench/landmarks.py and bench/head_pose.py (no mien code here).

* :data:`DEFAULT_DATA`: ``<repo>/../shared/data`` (override with ``--data``);
* :func:`command_line`: the exact command that started the script, for the report header;
* :func:`machine_info`: CPU, cores, load, OS, Python and package versions;
* :func:`read_rgb`: an image file as an (H, W, 3) uint8 RGB array (Pillow, no EXIF rotation);
* :func:`markdown_table`: rows of cells -> a Markdown table;
* :func:`write_json`: a report dict -> pretty JSON (NaN written as null).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parent.parent / "shared" / "data"
RESULTS = BENCH / "results"
NUM_THREADS = 2
PACKAGES = ("mien", "numpy", "onnxruntime", "ai-edge-litert", "opencv-python-headless", "pillow")


def command_line() -> str:
    """The command line that started this process, shell-quoted."""
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    """CPU model, core counts, load, OS, Python and package versions."""
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in packages},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def machine_line(info: dict[str, Any], threads: int) -> str:
    """One human-readable line about the machine."""
    load, after = info.get("load_average"), info.get("load_average_after")
    load_s = f"{load[0]:.1f}" if load else "n/a"
    if load and after:
        load_s = f"{load[0]:.1f} before, {after[0]:.1f} after"
    pk = info["packages"]
    return (
        f"Machine: {info['cpu_model']}, {info['cpus_available']} cores available, "
        f"mien num_threads={threads}; {info['platform']}; Python {info['python']}; "
        f"mien {pk['mien']}, onnxruntime {pk['onnxruntime']}, ai-edge-litert "
        f"{pk['ai-edge-litert']}, numpy {pk['numpy']}; 1-min load average {load_s}"
    )


def read_rgb(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array (grey images are repeated to 3 channels)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def fmt(x: float | None, nd: int = 3) -> str:
    """A number for a table cell ("-" for None / NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{nd}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; the first column is left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON (numpy values converted, NaN/inf as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(report), indent=2) + "\n")
