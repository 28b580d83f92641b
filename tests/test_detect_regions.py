"""The upscaled passes run only around small-face evidence of the global pass
(``DetectionPlan.upscale_regions``): the regions, and that they find the faces the passes over
the whole picture find."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mien.detect.detections import Detections
from mien.detect.detector import DetectionPlan, FaceDetector, evidence_regions
from mien.detect.nms import iou_matrix

from .conftest import shared


def _found(boxes: list[list[float]], scores: list[float] | None = None) -> Detections:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    s = np.asarray(scores if scores is not None else [0.3] * len(b), np.float32)
    return Detections(b, s, np.zeros((len(b), 5, 2), np.float32))


def test_no_small_candidate_means_no_upscaled_pass() -> None:
    plan = DetectionPlan()
    assert evidence_regions(Detections.empty(), (400, 300), plan) == []
    # a large face only: the global pass already sees it
    assert evidence_regions(_found([[10, 10, 210, 250]]), (400, 300), plan) == []


def test_a_small_candidate_gets_a_region_around_it_on_the_grid() -> None:
    plan = DetectionPlan()
    (rect,) = evidence_regions(_found([[200, 100, 212, 114]]), (640, 480), plan)
    x0, y0, x1, y1 = rect
    m = plan.region_margin
    assert x0 <= 200 - m and y0 <= 100 - m and x1 >= 212 + m and y1 >= 114 + m
    assert all(v % plan.region_cell == 0 for v in rect)
    assert (x1 - x0) * (y1 - y0) < 0.1 * 640 * 480


def test_regions_join_and_fall_back_to_the_whole_picture() -> None:
    plan = DetectionPlan()
    two = evidence_regions(_found([[20, 20, 30, 30], [300, 200, 310, 212]]), (640, 480), plan)
    assert len(two) == 2
    near = evidence_regions(_found([[20, 20, 30, 30], [40, 20, 50, 30]]), (640, 480), plan)
    assert len(near) == 1
    grid = [[x, y, x + 10, y + 10] for x in range(0, 400, 60) for y in range(0, 300, 60)]
    assert evidence_regions(_found(grid), (400, 300), plan) == [(0, 0, 400, 300)]


def _photos() -> list[Path]:
    dlib = sorted(shared("dlib_examples_faces", "images").glob("*.jpg"))
    mask = sorted(shared("facemask_kaggle_voc", "images").glob("*.jpg"))[:12]
    return dlib + mask


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(num_threads=2)


def test_regions_find_the_faces_the_whole_picture_passes_find(detector: FaceDetector) -> None:
    """On the dlib examples and 12 face-mask photos, the faces (≥ 10 px) found by the upscaled
    passes over the whole picture are found with the regions too (IoU ≥ 0.5), all but 3%."""
    whole = DetectionPlan(upscale_regions=False)
    regions = replace(whole, upscale_regions=True)
    total = missed = 0
    for path in _photos():
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        ref = detector.detect(rgb, whole).larger_than(10)
        got = detector.detect(rgb, regions)
        total += len(ref)
        if len(ref) and len(got):
            missed += int((iou_matrix(ref.boxes, got.boxes).max(axis=1) < 0.5).sum())
        else:
            missed += len(ref)
    assert total >= 100
    assert missed <= 0.03 * total, (missed, total)
