"""Box geometry of the detector: IoU, NMS, and mapping boxes back from turned/mirrored pictures."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mien.detect.detections import Detections
from mien.detect.detector import _tiles, _unflip, _unturn
from mien.detect.nms import containment, iou_matrix, nms


def test_iou_and_containment() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [2, 2, 4, 4]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [50 / 150, 1.0, 0.0, 4 / 100], rtol=1e-6)
    np.testing.assert_allclose(containment(b, a)[:, 0], [0.5, 1.0, 0.0, 1.0], rtol=1e-6)


def test_nms_keeps_best_of_each_cluster() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 9, 10]], np.float32)
    scores = np.array([0.6, 0.9, 0.7, 0.5], np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.4).tolist() == []


@pytest.mark.parametrize("k", [1, 2, 3])
def test_unturn_maps_points_of_rot90_back(k: int) -> None:
    h, w = 7, 11
    img = np.zeros((h, w), np.int32)
    img[2, 3] = 1  # a marked pixel at x=3, y=2
    turned = np.rot90(img, k)
    ty, tx = np.argwhere(turned == 1)[0]
    # pixel centres: the point (tx + 0.5, ty + 0.5) in the turned picture
    back = _unturn(np.array([[tx + 0.5, ty + 0.5]], np.float32), k, w, h)
    np.testing.assert_allclose(back[0], [3.5, 2.5], atol=1e-5)


def test_unflip_mirrors_boxes_and_swaps_sides() -> None:
    d = Detections(
        np.array([[10, 5, 30, 35]], np.float32),
        np.array([0.9], np.float32),
        np.array([[[14, 12], [26, 12], [20, 20], [15, 28], [25, 28]]], np.float32),
    )
    back = _unflip(d, 100)
    np.testing.assert_allclose(back.boxes[0], [70, 5, 90, 35])
    # The image-left eye of the original is the mirror of the image-right eye of the flipped one.
    np.testing.assert_allclose(back.points[0, 0], [100 - 26, 12])
    np.testing.assert_allclose(back.points[0, 3], [100 - 25, 28])
    assert back.points[0, 0, 0] < back.points[0, 1, 0]


def test_tiles_cover_the_whole_length() -> None:
    for length in (500, 1024, 1025, 3000, 4001):
        starts = _tiles(length, 1024, 192)
        assert starts[0] == 0 and starts[-1] + min(1024, length) == length
        assert all(b - a <= 1024 - 192 for a, b in itertools.pairwise(starts))


def _three() -> Detections:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 45, 25], [90, 40, 130, 90]], np.float32)
    points = np.arange(30, dtype=np.float32).reshape(3, 5, 2)
    return Detections(boxes, np.array([0.9, 0.8, 0.7], np.float32), points)


def test_detections_index_like_arrays() -> None:
    d = _three()
    assert len(d[1]) == 1 and d[1].scores.tolist() == [np.float32(0.8)]
    assert d[-1].boxes.tolist() == [[90, 40, 130, 90]]
    assert d[1:].scores.shape == (2,) and len(d[np.array([True, False, True])]) == 2
    assert d[np.array([2, 0])].points.shape == (2, 5, 2)
    assert len(d.top(None)) == 3 and len(d.top(2)) == 2 and len(d.top(0)) == 0
    with pytest.raises(ValueError, match="points"):
        Detections(d.boxes, d.scores, d.points[:2])


def test_detections_merge_map_back_clip_and_size() -> None:
    d = _three()
    assert len(Detections.merge([])) == 0 and len(Detections.merge([d[:1], d[:0], d[2:]])) == 2
    back = d.map_back(0.5, 10, 20)
    np.testing.assert_allclose(back.boxes[0], [10, 20, 30, 40])
    np.testing.assert_allclose(back.points[0, 0], [10, 22])
    np.testing.assert_allclose(d.clip(100, 50).boxes[2], [90, 40, 100, 50])
    assert d.larger_than(0) is d and d.larger_than(40).scores.tolist() == d.scores[1:].tolist()
