"""Image quality of each face, in the spirit of ISO/IEC 29794-5 (face image quality).

Every measure is computed on the face region only (the face box, clipped to the image), on
the luma channel (ITU-R BT.601 weights) in [0, 1]. docs/output.md documents each one:

* ``sharpness`` in [0, 1]: variance of the Laplacian of the face resampled to 96x96 px,
  mapped by v / (v + 0.002), so 0.5 is a mildly soft face and > 0.8 is crisp. Resampling
  first makes it comparable across face sizes.
* ``brightness``: mean luma; ``contrast``: standard deviation of luma.
* ``under_exposure`` / ``over_exposure``: share of face pixels with luma <= 0.05 / >= 0.95.
* ``exposure`` in [0, 1]: 1 for a well-exposed face (mean luma in [0.25, 0.75] and no clipped
  pixels), falling linearly with the distance of the mean from that range and with the share of
  clipped pixels.
* ``illumination_uniformity`` in [0, 1]: 1 - |mean luma of the face's left half - right half|
  / (sum of both); 1 means evenly lit.
* ``face_width`` / ``face_height``: box size in pixels. ``inter_eye_distance``: distance in
  pixels between the two eye centres (NaN when landmarks were not computed).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

QUALITY_NAMES: tuple[str, ...] = (
    "sharpness",
    "exposure",
    "brightness",
    "contrast",
    "under_exposure",
    "over_exposure",
    "illumination_uniformity",
    "face_width",
    "face_height",
    "inter_eye_distance",
)

_SHARP_SIZE = 96
_SHARP_K = 0.002


def _luma(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    w = np.array([0.299, 0.587, 0.114], np.float32)
    return (rgb.astype(np.float32) @ w) / 255.0


def face_quality(
    rgb: npt.NDArray[np.uint8],
    boxes: npt.NDArray[np.float32],
    landmarks: npt.NDArray[np.float32] | None,
) -> dict[str, npt.NDArray[np.float32]]:
    """Quality columns (see module doc) for every face box of ``rgb``."""
    n = len(boxes)
    cols = {k: np.full(n, np.nan, np.float32) for k in QUALITY_NAMES}
    h, w = rgb.shape[:2]
    for i, b in enumerate(boxes):
        x1, y1 = max(0, int(np.floor(b[0]))), max(0, int(np.floor(b[1])))
        x2, y2 = min(w, int(np.ceil(b[2]))), min(h, int(np.ceil(b[3])))
        cols["face_width"][i] = b[2] - b[0]
        cols["face_height"][i] = b[3] - b[1]
        if landmarks is not None:
            cols["inter_eye_distance"][i] = float(np.hypot(*(landmarks[i, 1] - landmarks[i, 0])))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        y = _luma(rgb[y1:y2, x1:x2])
        mean = float(y.mean())
        cols["brightness"][i] = mean
        cols["contrast"][i] = float(y.std())
        under = float((y <= 0.05).mean())
        over = float((y >= 0.95).mean())
        cols["under_exposure"][i] = under
        cols["over_exposure"][i] = over
        off = max(0.0, 0.25 - mean, mean - 0.75)
        cols["exposure"][i] = float(np.clip(1.0 - off / 0.25 - (under + over), 0.0, 1.0))
        half = y.shape[1] // 2
        if half >= 1:
            a, c = float(y[:, :half].mean()), float(y[:, half:].mean())
            cols["illumination_uniformity"][i] = 1.0 - abs(a - c) / max(a + c, 1e-6)
        cols["sharpness"][i] = _sharpness(y)
    return cols


def _sharpness(luma: npt.NDArray[np.float32]) -> float:
    small = cv2.resize(luma, (_SHARP_SIZE, _SHARP_SIZE), interpolation=cv2.INTER_AREA)
    v = float(cv2.Laplacian(small, cv2.CV_32F).var())
    return v / (v + _SHARP_K)


def face_sharpness(rgb: npt.NDArray[np.uint8], box: npt.NDArray[np.float32]) -> float:
    """``sharpness`` (see module doc) of one face box; NaN when the box holds < 2x2 pixels."""
    h, w = rgb.shape[:2]
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return float("nan")
    return _sharpness(_luma(rgb[y1:y2, x1:x2]))
