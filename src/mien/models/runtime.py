"""onnxruntime sessions on the device the caller chose (``"cpu"`` or ``"cuda"``).

``"cuda"`` asks for onnxruntime's CUDA execution provider, with the CPU provider behind it for
the operators CUDA lacks. A session that did not get the CUDA provider (a CPU-only onnxruntime,
no GPU, missing CUDA libraries) raises :class:`mien.errors.DeviceUnavailableError`: mien never
falls back to the CPU silently. The face mesh and iris models run on LiteRT, which has no CUDA
delegate here: they stay on the CPU whatever the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mien.errors import DeviceUnavailableError

if TYPE_CHECKING:
    import onnxruntime as ort

Device = Literal["cpu", "cuda"]
DEVICES: tuple[Device, ...] = ("cpu", "cuda")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def providers(device: str) -> list[str]:
    """The onnxruntime providers asked for on ``device``, in order of preference."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    return [CUDA_PROVIDER, CPU_PROVIDER] if device == "cuda" else [CPU_PROVIDER]


def session(model: bytes, options: ort.SessionOptions, device: str = "cpu") -> ort.InferenceSession:
    """An onnxruntime session of ``model`` on ``device``; for ``"cuda"``, checked to have got
    the CUDA provider: onnxruntime drops a provider it lacks or cannot start with a warning
    only. (:class:`mien.options.AnalyzerOptions` checks the installed providers earlier, before
    any media is read.)"""
    import onnxruntime as ort

    wanted = providers(device)
    made = ort.InferenceSession(model, sess_options=options, providers=wanted)
    if device == "cuda" and CUDA_PROVIDER not in made.get_providers():
        raise DeviceUnavailableError(
            device,
            f"onnxruntime could not start its {CUDA_PROVIDER} (no GPU, or the CUDA/cuDNN "
            f"libraries are missing); the session got {', '.join(made.get_providers())}",
        )
    return made
