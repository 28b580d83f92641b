"""mien: privacy-first face analysis that describes what a face shows, never who it is.

Quick start::

    import mien
    result = mien.analyze("photo.jpg")            # one-off
    analyzer = mien.FaceAnalyzer(features="detection,landmarks,head_pose,quality")
    for r in analyzer.analyze_many(paths):        # reuse the loaded models
        print(r.to_dict())
"""

from mien.analyzer import FaceAnalyzer, analyze
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

__version__ = "0.1.0"

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
