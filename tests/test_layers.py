"""The layer stack's promises that a fresh interpreter can check: ``import mien`` and
``mien --help`` load no OpenCV, onnxruntime, PyAV or LiteRT (the models load on first use),
and the feature gate's attribute names are the attributes mien implements."""

from __future__ import annotations

import json
import subprocess
import sys

import mien
from mien.analyzers.attributes import IMPLEMENTATIONS
from mien.features import ATTRIBUTE_FEATURES

HEAVY = ("cv2", "onnxruntime", "av", "ai_edge_litert")

_REPORT = (
    "import json, sys; "
    f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))"
)


def _heavy_after(code: str) -> list[str]:
    """The heavy top-level modules a fresh interpreter holds after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{_REPORT}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_import_mien_loads_no_heavy_library() -> None:
    assert _heavy_after("import mien") == []


def test_mien_help_loads_no_heavy_library() -> None:
    code = (
        "import contextlib, io\n"
        "from mien.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert _heavy_after(code) == []


def test_lazy_names_are_the_analyzers() -> None:
    from mien.analyzer import FaceAnalyzer, analyze

    assert mien.FaceAnalyzer is FaceAnalyzer and mien.analyze is analyze
    assert {"FaceAnalyzer", "analyze"} <= set(dir(mien)) and set(mien.__all__) <= set(dir(mien))


def test_every_attribute_feature_is_implemented() -> None:
    assert set(ATTRIBUTE_FEATURES) == set(IMPLEMENTATIONS)
