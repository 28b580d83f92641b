"""Reading media safely: still images into 8-bit RGB arrays, and input discovery.

See :func:`mien.media.image.load_image` and :func:`mien.media.discover.iter_inputs`.
"""

from __future__ import annotations

from mien.media.discover import IMAGE_SUFFIXES, iter_inputs
from mien.media.image import (
    DEFAULT_LIMITS,
    DecodedImage,
    ImageLimits,
    avif_supported,
    heif_supported,
    load_image,
)

__all__ = [
    "DEFAULT_LIMITS",
    "IMAGE_SUFFIXES",
    "DecodedImage",
    "ImageLimits",
    "avif_supported",
    "heif_supported",
    "iter_inputs",
    "load_image",
]
