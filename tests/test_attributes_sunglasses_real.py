"""Sunglasses and mask on the real faces named in issue 17 (evaluation only: nothing here was
used to fit or choose the heads; train/refit_sunglasses.py fits on the training part and chooses
on the validation part of train/train_glasses.py's splits)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import mien
from mien.analyzers.attributes.mask import GREY_MIN_CONFIDENCE

from .conftest import shared

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def eyewear_analyzer() -> mien.FaceAnalyzer:
    return mien.FaceAnalyzer(features="eyeglasses,sunglasses,mask", threshold=0.3, num_threads=2)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = np.maximum(a[:2], b[:2])
    x1, y1 = np.minimum(a[2:], b[2:])
    inter = max(0.0, float(x1 - x0)) * max(0.0, float(y1 - y0))
    area = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]))
    return inter / (area - inter)


def test_multi_face_sunglasses_wearer_is_never_confidently_without(eyewear_analyzer) -> None:
    """The young man in dark sunglasses of multi_face.jpg (train/labels/pyfeat_multi_face.csv:
    sunglasses 1): sunglasses true, or unknown - never false with confidence >= 0.8 (at 808baa0:
    eyeglasses true 0.98, sunglasses false 0.75)."""
    labels = [
        r for r in _rows(REPO / "train/labels/pyfeat_multi_face.csv") if r["sunglasses"] == "1"
    ]
    assert len(labels) == 1
    box = np.array([float(labels[0][k]) for k in ("xmin", "ymin", "xmax", "ymax")])
    res = eyewear_analyzer.analyze(shared("pyfeat_media", "multi_face.jpg"))
    assert res.faces is not None
    ious = [_iou(box, b) for b in res.faces.boxes]
    i = int(np.argmax(ious))
    assert ious[i] >= 0.5
    col = res.faces.attributes["sunglasses"]
    value, conf = col.values[i], float(col.confidence[i])
    assert value is not False or conf < 0.8, (value, conf)
    # measured: the head says true (0.86), below the band of 0.90, so the answer is withheld
    assert value is True or (col.reasons[i] or "").startswith("uncertain"), (value, conf)
    # the other four faces there wear no glasses: not called sunglasses
    others = [col.values[k] for k in range(len(col.values)) if k != i and ious[k] < 0.1]
    assert others and not any(v is True for v in others)


def test_sunglasses_selfies_answers(eyewear_analyzer) -> None:
    """Weak labels (every selfie is filed as 'with sunglasses'): what the first 60 selfies' main
    faces get, as a user sees it (answers below the band of 0.90 withheld as "uncertain").
    Floors a margin from what was measured on those 60: most are withheld; the answers given
    are half right - a known weakness (docs/attributes.md, sunglasses: maturity experimental)."""
    rows = _rows(shared("sunglasses_selfies_scraped", "labels.csv"))[:60]
    found, wrong, withheld = 0, 0, 0
    for r in rows:
        res = eyewear_analyzer.analyze(shared("sunglasses_selfies_scraped", "images", r["file"]))
        if res.faces is None or not len(res.faces):
            continue
        i = int(np.argmax(res.faces.widths * res.faces.heights))
        col = res.faces.attributes["sunglasses"]
        if col.values[i] is True:
            found += 1
        elif col.values[i] is False:
            wrong += 1
        elif (col.reasons[i] or "").startswith("uncertain"):
            withheld += 1
    judged = found + wrong + withheld
    assert judged >= 45
    assert found / judged >= SELFIE_FOUND_FLOOR, (found, judged)
    assert wrong / judged <= SELFIE_WRONG_CEILING, (wrong, judged)


#: measured on the first 60 selfies (50 judged main faces): 8 found, 8 called "no" (all at
#: >= 0.9 confidence), 34 withheld; at 808baa0 (no band, head version 2) 0.40 of all 511
#: judged selfies were found and the rest were answered "no"
SELFIE_FOUND_FLOOR = 0.12
SELFIE_WRONG_CEILING = 0.25


def test_grey_bare_faces_are_not_called_masked() -> None:
    """CMU faces (grey pictures, no one wears a mask; many in sunglasses): without colour the
    mask head withholds answers below GREY_MIN_CONFIDENCE, so the bare faces it used to call
    masked (243 of 410 at 808baa0, e.g. 'worn 0.578' in sunglasses) are unknown or 'none'."""
    from PIL import Image

    analyzer = mien.FaceAnalyzer(features="mask", threshold=0.3, num_threads=2)
    rows = [r for r in _rows(shared("cmu_faces_sunglasses_pose", "labels.csv"))][::8]
    values = []
    for r in rows:
        with Image.open(shared("cmu_faces_sunglasses_pose", "images", r["file"])) as im:
            rgb = np.asarray(im.convert("RGB"))
        res = analyzer.analyze(rgb)
        if res.faces is None or not len(res.faces):
            continue
        i = int(np.argmax(res.faces.widths * res.faces.heights))
        col = res.faces.attributes["mask"]
        value, conf = col.values[i], float(col.confidence[i])
        if value is None:
            assert (col.reasons[i] or "").startswith(("uncertain", "head turned", "face too"))
        else:
            assert value == "none" or conf >= GREY_MIN_CONFIDENCE
        values.append(value)
    assert len(values) >= 40
    assert np.mean([v not in (None, "none") for v in values]) <= 0.08


def test_bare_face_under_dark_hair_is_not_called_sunglasses(eyewear_analyzer) -> None:
    """The masked face of the face-mask TEST photo maksssksksss831.jpg (CC0; labelled without
    eyewear in train/labels/facemask_headwear_eyewear.csv), whose dark fringe hides its forehead
    (the lens measurements' skin reference): sunglasses v3 answered "yes" at 0.90 while its
    network saw no glasses. A "yes" now needs glasses seen (glasses.MIN_GLASSES_LOGIT, chosen on
    the head's validation part): withheld as uncertain, or "no"."""
    rows = [
        r
        for r in _rows(REPO / "train/labels/facemask_headwear_eyewear.csv")
        if r["image"] == "maksssksksss831.jpg" and float(r["xmin"]) == 74.0
    ]
    assert len(rows) == 1 and rows[0]["sunglasses"] == "0"
    box = np.array([float(rows[0][k]) for k in ("xmin", "ymin", "xmax", "ymax")])
    res = eyewear_analyzer.analyze(shared("facemask_kaggle_voc", "images", "maksssksksss831.jpg"))
    assert res.faces is not None
    ious = [_iou(box, b) for b in res.faces.boxes]
    i = int(np.argmax(ious))
    assert ious[i] >= 0.4
    col = res.faces.attributes["sunglasses"]
    assert col.values[i] is not True, float(col.confidence[i])
    if col.values[i] is None:
        assert (col.reasons[i] or "").startswith("uncertain ("), col.reasons[i]
