"""Redacting the faces of one picture: detect (tuned for recall), cover, write atomically.

* :func:`redact_array` covers the faces of an RGB array and returns the new array and its
  :class:`~mien.redact.report.RedactionReport`.
* :func:`redact_image` reads a picture (EXIF orientation applied), covers its faces and writes
  the result to ``output`` in the format of its suffix, through a temporary file renamed into
  place, so a failure never leaves a partial output.

Metadata: by default the output holds pixels only (no EXIF, GPS, XMP, ICC profile, comments or
thumbnails). With ``keep_metadata=True`` the input's EXIF tags (camera, date, GPS...) and ICC
profile are copied, with the orientation tag reset to 1 (the pixels are already upright) and
without the EXIF thumbnail, maker notes or XMP, which can hold an unredacted preview of the
picture or the names of the people in it.

Detection: unless ``analyzer_options`` are given, faces are searched with
:data:`~mien.redact.options.REDACT_THRESHOLD` (0.25, lower than analysis) and the
detector's upscaled (not mirrored) and tiled passes, because a missed face leaks while an
extra covered patch costs little (docs/redaction.md has the measured recall).
"""

from __future__ import annotations

import io
import os
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from mien.detect.detector import DetectionPlan, FaceDetector
from mien.media.image import DEFAULT_LIMITS, DecodedImage, ImageLimits, load_image
from mien.media.regular import read_regular
from mien.media.write import (
    OUTPUT_FORMATS,
    check_output_file,
    save_picture,
)
from mien.options import AnalyzerOptions
from mien.redact.draw import redact_regions
from mien.redact.options import REDACT_THRESHOLD, RedactOptions
from mien.redact.report import CoveredRegion, RedactionReport
from mien.types import ModelInfo

#: Whether the upscaled detector pass also runs on the mirrored picture. Analysis runs it;
#: for redaction it was measured on the tuning set (bench/redaction.py --sweep, WIDER FACE
#: photos): about +1 point of recall for 1.8x the detection time, so it is off by default.
UPSCALE_FLIP = False

__all__ = [
    "OUTPUT_FORMATS",
    "check_output_path",
    "detect_for_redaction",
    "redact_array",
    "redact_image",
    "redaction_analyzer_options",
    "redaction_plan",
]

_EXIF_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF"})
_ICC_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF"})

# EXIF tags never copied, even with keep_metadata: they can carry an unredacted picture.
_ORIENTATION = 0x0112
_DROPPED_TAGS = (
    0x0201,  # JPEGInterchangeFormat (thumbnail offset)
    0x0202,  # JPEGInterchangeFormatLength
    0x02BC,  # XMP packet stored in EXIF/TIFF
    0x927C,  # MakerNote (vendor data; Nikon/Canon store preview images there)
    0x8773,  # ICC profile in TIFF tags (copied separately)
)


def redaction_analyzer_options(options: AnalyzerOptions | None = None) -> AnalyzerOptions:
    """The analyzer options redaction runs with: detection only, at the redaction threshold
    unless ``options`` are given (their detector settings are kept, features dropped)."""
    if options is None:
        return AnalyzerOptions(features=("detection",), threshold=REDACT_THRESHOLD)
    return replace(options, features=("detection",))


def redaction_plan(options: AnalyzerOptions, *, upscale_flip: bool = UPSCALE_FLIP) -> DetectionPlan:
    """The detector passes redaction runs for ``options`` (the analyzer's, plus the flip
    setting of the upscaled pass, see :data:`UPSCALE_FLIP`)."""
    return DetectionPlan.for_options(options, upscale_flip=upscale_flip)


@lru_cache(maxsize=4)
def _detector(num_threads: int, device: str) -> FaceDetector:
    return FaceDetector(num_threads=num_threads, device=device)


def _detect(
    rgb: npt.NDArray[np.uint8], options: AnalyzerOptions
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], FaceDetector]:
    detector = _detector(options.num_threads, options.device)
    det = detector.detect(rgb, redaction_plan(options))
    return det.boxes, np.clip(det.scores, 0.0, 1.0), detector


def redaction_models(analyzer_options: AnalyzerOptions | None = None) -> tuple[ModelInfo, ...]:
    """The models redaction runs with for ``analyzer_options`` (loading the detector, once per
    thread count and device, as :func:`redact_image` shares it)."""
    an_opts = redaction_analyzer_options(analyzer_options)
    return (_detector(an_opts.num_threads, an_opts.device).model.card.info,)


def detect_for_redaction(
    rgb: npt.NDArray[np.uint8], analyzer_options: AnalyzerOptions | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Face boxes ``(N, 4)`` and scores ``(N,)`` of ``rgb`` found as redaction searches for them
    (:func:`redaction_analyzer_options`, :func:`redaction_plan`); the detector is loaded once
    per thread count and shared (it is thread-safe). For video redaction and other callers that
    cover boxes themselves with :func:`mien.redact.draw.redact_regions`."""
    boxes, scores, _ = _detect(rgb, redaction_analyzer_options(analyzer_options))
    return boxes, scores


def redact_array(
    rgb: npt.NDArray[np.uint8],
    *,
    analyzer_options: AnalyzerOptions | None = None,
    options: RedactOptions | None = None,
    name: str = "<array>",
) -> tuple[npt.NDArray[np.uint8], RedactionReport]:
    """Cover every face found in ``rgb`` (H, W, 3 uint8, upright).

    Returns the redacted copy and its report (``output`` is empty: nothing was written).
    """
    opts = options if options is not None else RedactOptions()
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
    an_opts = redaction_analyzer_options(analyzer_options)
    boxes, scores, detector = _detect(image, an_opts)
    out = redact_regions(image, boxes, opts)
    report = RedactionReport(
        source=name,
        output="",
        kind="image",
        regions=tuple(
            CoveredRegion(tuple(float(v) for v in b), float(s))  # type: ignore[arg-type]
            for b, s in zip(boxes, scores, strict=True)
        ),
        frames=1,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        options=opts,
        threshold=an_opts.threshold,
        models=(detector.model.card.info,),
    )
    return out, report


def check_output_path(
    output: str | os.PathLike[str], source: str | os.PathLike[str] | None = None
) -> str:
    """The Pillow format for ``output``'s suffix; :class:`OutputError` when it has none, its
    folder does not exist or cannot be written, or it is ``source`` (checked before any work)."""
    path = check_output_file(output, OUTPUT_FORMATS, "picture", source)
    return OUTPUT_FORMATS[path.suffix.lower()]


def _metadata(source: Any) -> tuple[bytes | None, bytes | None]:
    """EXIF (cleaned, orientation 1) and ICC profile of an encoded picture, or None."""
    try:
        if isinstance(source, (str, os.PathLike)):
            # a regular file only, read without blocking (mien.media.regular)
            opener: Any = io.BytesIO(read_regular(source, DEFAULT_LIMITS.max_bytes))
        elif isinstance(source, (bytes, bytearray, memoryview)):
            opener = io.BytesIO(bytes(source))
        else:
            return None, None
        with Image.open(opener) as im:
            exif = im.getexif()
            icc = im.info.get("icc_profile")
            if not exif:
                exif_bytes = None
            else:
                for tag in _DROPPED_TAGS:
                    exif.pop(tag, None)
                if _ORIENTATION in exif:
                    exif[_ORIENTATION] = 1
                exif_bytes = exif.tobytes()
    except Exception:  # the pixels decoded; unreadable metadata is simply not kept
        return None, None
    return exif_bytes, icc if isinstance(icc, bytes) and icc else None


def _save(
    output: str | os.PathLike[str],
    rgb: npt.NDArray[np.uint8],
    fmt: str,
    exif: bytes | None,
    icc: bytes | None,
    quality: int,
    source: Any = None,
) -> None:
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    params: dict[str, Any] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if exif and fmt in _EXIF_FORMATS:
        params["exif"] = exif
    if icc and fmt in _ICC_FORMATS:
        params["icc_profile"] = icc
    save_picture(output, img, fmt, params, sources=(source,))


def redact_image(
    source: Any,
    output: str | os.PathLike[str],
    *,
    analyzer_options: AnalyzerOptions | None = None,
    options: RedactOptions | None = None,
    keep_metadata: bool = False,
    quality: int = 92,
) -> RedactionReport:
    """Read ``source`` (a path, bytes, an array or a PIL image), cover its faces and write the
    result to ``output`` (format from its suffix: .jpg .jpeg .png .webp .bmp .tif .tiff).

    Raises :class:`mien.errors.MediaError` subclasses when the input cannot be read and
    :class:`mien.media.write.OutputError` when the output cannot be written (unknown suffix,
    missing folder, the input itself, disk errors); in every failure case nothing is left at
    ``output`` (an existing file there is left as it was).
    """
    fmt = check_output_path(output, source if isinstance(source, (str, os.PathLike)) else None)
    opts = options if options is not None else RedactOptions()
    an_opts = redaction_analyzer_options(analyzer_options)
    decoded: DecodedImage = (
        source
        if isinstance(source, DecodedImage)
        else load_image(source, limits=ImageLimits(max_pixels=an_opts.max_pixels))
    )
    redacted, report = redact_array(
        decoded.rgb, analyzer_options=an_opts, options=opts, name=decoded.source
    )
    exif, icc = _metadata(source) if keep_metadata else (None, None)
    _save(output, redacted, fmt, exif, icc, quality, source)
    kept = bool(
        keep_metadata and ((exif and fmt in _EXIF_FORMATS) or (icc and fmt in _ICC_FORMATS))
    )
    return replace(report, output=os.fspath(output), metadata_kept=kept)
