"""``device="cuda"``: onnxruntime's CUDA provider or mien's own DeviceUnavailable error, never a
silent fall-back to the CPU; ``device="cpu"`` (the default) is what mien always did."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from mien import FaceAnalyzer
from mien.detect.centerface import CenterFace
from mien.errors import DeviceUnavailableError, MienError
from mien.options import AnalyzerOptions

from .conftest import SAMPLE

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has a CUDA provider")


def mien(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mien", *args], capture_output=True, text=True, timeout=300
    )


def test_the_error_has_a_stable_code_status_and_title() -> None:
    assert issubclass(DeviceUnavailableError, MienError)
    assert DeviceUnavailableError.code == "DeviceUnavailable"
    assert DeviceUnavailableError.http_status == 503
    exc = DeviceUnavailableError("cuda", "no GPU")
    assert exc.device == "cuda"
    assert "no GPU" in exc.message and "mien[cuda]" in exc.message and "--device cpu" in exc.message


def test_an_unknown_device_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="device must be cpu or cuda"):
        AnalyzerOptions(device="gpu")  # type: ignore[arg-type]


@no_cuda
def test_cuda_options_fail_at_construction() -> None:
    with pytest.raises(DeviceUnavailableError, match="has no CUDAExecutionProvider") as info:
        AnalyzerOptions(device="cuda")
    assert "pip install 'mien[cuda]'" in info.value.message
    with pytest.raises(DeviceUnavailableError):
        FaceAnalyzer(device="cuda")


@no_cuda
def test_a_session_that_did_not_get_cuda_is_refused() -> None:
    # What the options check cannot see (a GPU build without a working GPU) is caught on the
    # session: onnxruntime drops the provider with a warning only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(DeviceUnavailableError, match="the session got CPUExecutionProvider"):
            CenterFace(num_threads=1, device="cuda")


@no_cuda
@pytest.mark.parametrize(
    ("command", "out"),
    [
        ("analyze", "out.jsonl"),
        ("redact", "out.jpg"),
        ("batch", "job"),
    ],
)
def test_cli_device_cuda_exits_3_and_writes_nothing(command: str, out: str, tmp_path: Path) -> None:
    target = tmp_path / out
    proc = mien(command, str(SAMPLE), "--device", "cuda", "-o", str(target))
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("mien: DeviceUnavailable: device 'cuda' is not available")
    assert "pip install 'mien[cuda]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@no_cuda
def test_service_device_cuda_is_refused_at_start(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the service extra is not installed")
    from mien.service.config import ServiceConfig

    with pytest.raises(DeviceUnavailableError):
        ServiceConfig(data_dir=tmp_path, device="cuda")
    with pytest.raises(ValueError, match="device must be cpu or cuda"):
        ServiceConfig(data_dir=tmp_path, device="tpu")
    data = tmp_path / "data"
    proc = mien("serve", "--device", "cuda", "--data-dir", str(data), "--port", "0")
    assert proc.returncode == 3, proc.stderr
    assert "DeviceUnavailable" in proc.stderr and "Traceback" not in proc.stderr
    assert not data.exists()


def test_cli_device_cpu_is_the_default(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert mien("analyze", str(SAMPLE), "-o", str(a)).returncode == 0
    assert mien("analyze", str(SAMPLE), "--device", "cpu", "-o", str(b)).returncode == 0
    (rec,) = [json.loads(line) for line in a.read_text().splitlines()]
    assert rec["faces"], "the sample shows a face"
    assert b.read_text() == a.read_text()


@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu with a CUDA provider and a GPU")
def test_cuda_detections_match_cpu() -> None:
    from mien.detect.detector import DetectionPlan, FaceDetector
    from mien.media.image import load_image

    rgb = load_image(SAMPLE).rgb
    plan = DetectionPlan()
    cpu = FaceDetector(num_threads=1).detect(rgb, plan)
    on_gpu = FaceDetector(device="cuda")
    assert on_gpu.model.providers[0] == "CUDAExecutionProvider"
    gpu = on_gpu.detect(rgb, plan)
    assert len(cpu) == len(gpu) >= 1
    np.testing.assert_allclose(gpu.boxes, cpu.boxes, atol=1.0)
    np.testing.assert_allclose(gpu.scores, cpu.scores, atol=0.01)


def test_mien_models_says_which_models_follow_the_device() -> None:
    proc = mien("models")
    assert proc.returncode == 0, proc.stderr
    devices = {rec["name"]: rec["devices"] for rec in map(json.loads, proc.stdout.splitlines())}
    assert devices["centerface"] == ["cpu", "cuda"]
    # LiteRT has no CUDA delegate here: the mesh and iris stay on the CPU
    assert devices["mediapipe-face-mesh"] == devices["mediapipe-iris"] == ["cpu"]
