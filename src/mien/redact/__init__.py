"""Redaction: covering faces in pictures and videos before they are shared.

* :class:`RedactOptions` — how faces are covered (blur, pixelate, fill; ellipse or box; scale).
* :func:`redact_regions` — the pixel primitive: cover given boxes of an RGB array.
* :func:`redact_image` / :func:`redact_array` — detect and cover faces in one picture.
* :class:`RedactionReport` / :class:`CoveredRegion` — the audit record of what was covered.
* ``mien.redact.video.redact_video`` — the same for a video (tracked, so faces stay covered
  in frames where detection alone misses them).
"""

from __future__ import annotations

from mien.redact.draw import redact_regions, region_mask
from mien.redact.options import REDACT_THRESHOLD, RedactOptions
from mien.redact.report import CoveredRegion, RedactionReport

__all__ = [
    "REDACT_THRESHOLD",
    "CoveredRegion",
    "RedactOptions",
    "RedactionReport",
    "detect_for_redaction",
    "redact_array",
    "redact_image",
    "redact_regions",
    "region_mask",
]


def __getattr__(name: str) -> object:  # lazy: image.py pulls in the analyzer
    if name in ("redact_image", "redact_array", "detect_for_redaction"):
        from mien.redact import image

        return getattr(image, name)
    raise AttributeError(name)
