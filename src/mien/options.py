"""Options of the face analyzer (validated on construction)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mien.errors import DeviceUnavailableError
from mien.features import CORE_FEATURES, DEFAULT_FEATURES, parse_features


@dataclass(frozen=True)
class AnalyzerOptions:
    """What a :class:`mien.FaceAnalyzer` computes and how it searches for faces.

    * ``features``: names from :data:`mien.features.AVAILABLE_FEATURES` (or a comma-separated
      string); refused names raise :class:`mien.errors.RefusedAttributeError` right here.
    * ``threshold``: minimum detector score in [0, 1] for a face to be reported.
    * ``min_face``: drop faces whose box is smaller than this many pixels (longer side).
    * ``max_faces``: keep at most this many faces, highest score first (None: all).
    * ``upscale``: the most a small picture is enlarged for a second detection pass (1 = off).
    * ``tiling``: search large pictures tile by tile at full resolution too.
    * ``rotation_search``: also search the picture turned by 90°, 180° and 270°.
    * ``mesh_min_face``: faces smaller than this (px, longer box side) get no mesh: their
      landmarks come from the detector and their head pose is unknown (null).
    * ``num_threads``: threads for the detector (0: onnxruntime's default).
    * ``device``: where the onnxruntime networks (the detector) run: ``"cpu"`` or ``"cuda"``
      (onnxruntime's CUDA provider; needs onnxruntime-gpu, ``pip install 'mien[cuda]'``).
      ``"cuda"`` without a usable CUDA provider raises
      :class:`mien.errors.DeviceUnavailableError` right here, never a silent fall-back to the
      CPU. The face mesh and iris (LiteRT) and the attribute heads stay on the CPU.
    """

    features: tuple[str, ...] = DEFAULT_FEATURES
    threshold: float = 0.5
    min_face: float = 0.0
    max_faces: int | None = None
    upscale: float = 2.0
    tiling: bool = True
    rotation_search: bool = False
    mesh_min_face: float = 16.0
    num_threads: int = 0
    max_pixels: int = 100_000_000
    device: Literal["cpu", "cuda"] = "cpu"

    def __post_init__(self) -> None:
        requested: str | Iterable[str] = self.features
        object.__setattr__(self, "features", parse_features(requested))
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if not (0 <= self.min_face < math.inf and 0 <= self.mesh_min_face < math.inf):
            # NaN and inf included: --min-face inf would make redaction cover no face
            raise ValueError("min_face and mesh_min_face must be finite numbers >= 0")
        if self.max_faces is not None and self.max_faces < 0:
            raise ValueError("max_faces must be >= 0")
        if not 1.0 <= float(self.upscale) <= 4.0:
            raise ValueError(f"upscale must lie in [1, 4], got {self.upscale}")
        if self.num_threads < 0:
            raise ValueError("num_threads must be >= 0")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be >= 1")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda":
            require_cuda()

    @property
    def attributes(self) -> tuple[str, ...]:
        """The observable attributes requested, in output order."""
        return tuple(f for f in self.features if f not in CORE_FEATURES)

    @property
    def needs_mesh(self) -> bool:
        return bool({"landmarks", "head_pose", "mesh"} & set(self.features)) or bool(
            self.attributes
        )


def require_cuda() -> None:
    """Raise :class:`DeviceUnavailableError` unless the installed onnxruntime has its CUDA
    provider (whether the GPU then starts is checked on the session:
    :func:`mien.models.runtime.session`)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise DeviceUnavailableError(
            "cuda",
            f"the installed onnxruntime {ort.__version__} has no CUDAExecutionProvider "
            f"(it has {', '.join(available)})",
        )
