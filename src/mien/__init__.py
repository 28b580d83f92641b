"""mien: privacy-first face analysis that describes what a face shows, never who it is.

Quick start::

    import mien
    result = mien.analyze("photo.jpg")            # one-off
    analyzer = mien.FaceAnalyzer(features="detection,landmarks,head_pose,quality")
    for r in analyzer.analyze_many(paths):        # reuse the loaded models
        print(r.to_dict())

``import mien`` stays light: :class:`FaceAnalyzer` and :func:`analyze` (which load OpenCV,
onnxruntime and LiteRT) are imported on first use (PEP 562), so the CLI's ``--help`` and code
that only needs the types, errors or the feature gate pay nothing for the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mien.errors import (
    ImageTooLargeError,
    InvalidImageError,
    MediaError,
    MienError,
    ModelIntegrityError,
    RefusedAttributeError,
    SourceNotFoundError,
    UnknownFeatureError,
    UnsupportedMediaError,
)
from mien.features import AVAILABLE_FEATURES, DEFAULT_FEATURES, parse_features
from mien.options import AnalyzerOptions
from mien.types import (
    HEAD_POSE_NAMES,
    LANDMARK_NAMES,
    AttributeColumn,
    ErrorInfo,
    Faces,
    ImageResult,
    ModelInfo,
)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports them
    from mien.analyzer import FaceAnalyzer, analyze

__version__ = "0.1.0"

#: Names imported from ``mien.analyzer`` on first use, not by ``import mien``.
_LAZY = frozenset({"FaceAnalyzer", "analyze"})

__all__ = [
    "AVAILABLE_FEATURES",
    "DEFAULT_FEATURES",
    "HEAD_POSE_NAMES",
    "LANDMARK_NAMES",
    "AnalyzerOptions",
    "AttributeColumn",
    "ErrorInfo",
    "FaceAnalyzer",
    "Faces",
    "ImageResult",
    "ImageTooLargeError",
    "InvalidImageError",
    "MediaError",
    "MienError",
    "ModelInfo",
    "ModelIntegrityError",
    "RefusedAttributeError",
    "SourceNotFoundError",
    "UnknownFeatureError",
    "UnsupportedMediaError",
    "__version__",
    "analyze",
    "parse_features",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from mien import analyzer

        return getattr(analyzer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
