#!/usr/bin/env bash
# A separate virtualenv with the full `deface` package (and all its dependencies) for the
# redaction benchmarks (bench/redaction.py, bench/video.py): deface is run there exactly as a
# user installs it (`pip install deface`), through its own CLI / anonymize_frame, with its defaults.
#
#   bash bench/setup_deface.sh            # creates bench/.cache/deface-venv (idempotent)
#   PYTHON=/path/to/python3 bash bench/setup_deface.sh
#
# Pinned: deface==1.5.0 (the version bench/setup_peers.sh uses for the detection benchmark).
# Its dependencies (imageio, imageio-ffmpeg, opencv-python, scikit-image, tqdm, numpy) are
# resolved by pip as for any user. onnx and onnxruntime are added as deface's README recommends
# for speed: with them deface's default backend ("auto") runs CenterFace on onnxruntime instead of
# OpenCV's slower dnn module, so the benchmarks compare against deface at its fastest.
# The resolved versions are printed at the end and recorded by the benchmarks in their JSON.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.cache/deface-venv"
version="1.5.0"

if [[ -z "${PYTHON:-}" ]]; then
    # The interpreter the project's venv was made from (same Python version as mien's).
    PYTHON="$("$root/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
fi

mkdir -p "$here/.cache"
if [[ ! -x "$venv/bin/python" ]]; then
    "$PYTHON" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; \
        sys.exit(m.version('deface') != '$version'); import onnxruntime, onnx" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip 2> >(grep -v "is ignored" >&2)
    "$venv/bin/python" -m pip install --quiet "deface==$version" onnx onnxruntime \
        2> >(grep -v "is ignored" >&2)
fi
"$venv/bin/python" -c "import deface.deface, deface.centerface, onnxruntime; print('deface ok')"
"$venv/bin/python" -m pip freeze | grep -iE '^(deface|onnx|onnxruntime|opencv-python|numpy|imageio|scikit-image)=' || true
