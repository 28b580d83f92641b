"""Hand-computed checks of bench/metrics.py: ``.venv/bin/pytest bench/test_metrics.py``."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics import (
    FP,
    IGNORED,
    TP,
    average_precision,
    box_iou,
    match_image,
    point_at_threshold,
    pr_curve,
    recall_at_precision,
    recall_by_width,
)

GT = np.array([[0, 0, 10, 10], [20, 0, 40, 20], [50, 0, 100, 50]], dtype=float)


def test_iou_hand_values() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_perfect_detector_ap_is_one() -> None:
    m = match_image(GT, np.array([0.9, 0.8, 0.7]), GT)
    assert list(m.labels) == [TP, TP, TP]
    curve = pr_curve([m])
    assert average_precision(curve) == pytest.approx(1.0)
    op = recall_at_precision(curve, 0.9)
    assert op.recall == 1.0 and op.precision == 1.0 and op.threshold == pytest.approx(0.7)


def test_one_false_positive_at_the_top() -> None:
    dets = np.vstack([[200, 200, 210, 210], GT])
    m = match_image(dets, np.array([0.95, 0.9, 0.8, 0.7]), GT)
    assert list(m.labels) == [FP, TP, TP, TP]
    curve = pr_curve([m])
    # Points: (r, p) = (0, 0), (1/3, 1/2), (2/3, 2/3), (1, 3/4); envelope = 3/4 everywhere.
    np.testing.assert_allclose(curve.recall, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(curve.precision, [0, 1 / 2, 2 / 3, 3 / 4])
    assert average_precision(curve) == pytest.approx(0.75)
    # No threshold reaches 90% precision.
    op = recall_at_precision(curve, 0.9)
    assert op.recall == 0.0 and math.isnan(op.threshold)


def test_false_positive_in_the_middle_and_recall_at_p90() -> None:
    # 10 faces; TPs at ranks 1-9, an FP at rank 10, the last face found at rank 11.
    gt = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(10)], dtype=float)
    dets = np.vstack([gt[:9], [[500, 500, 510, 510]], gt[9:]])
    scores = np.linspace(1.0, 0.5, 11)
    curve = pr_curve([match_image(dets, scores, gt)])
    # AP: recall 0.9 at precision 1, then 0.1 more recall at precision 10/11.
    assert average_precision(curve) == pytest.approx(0.9 + 0.1 * 10 / 11)
    op = recall_at_precision(curve, 0.9)
    assert op.recall == pytest.approx(1.0)
    assert op.precision == pytest.approx(10 / 11)
    assert op.threshold == pytest.approx(0.5)
    op95 = recall_at_precision(curve, 0.95)
    assert op95.recall == pytest.approx(0.9) and op95.threshold == pytest.approx(scores[8])


def test_duplicate_detection_is_a_false_positive_and_best_iou_wins() -> None:
    gt = np.array([[0, 0, 10, 10], [4, 0, 14, 10]], dtype=float)
    # The first detection overlaps both boxes; it must take the one with the higher IoU.
    dets = np.array([[4, 0, 14, 10], [4, 0, 14, 10], [0, 0, 10, 10]], dtype=float)
    m = match_image(dets, np.array([0.9, 0.8, 0.7]), gt)
    assert list(m.labels) == [TP, FP, TP]
    np.testing.assert_allclose(m.gt_score, [0.7, 0.9])


def test_ignore_regions_are_neither_tp_nor_fp() -> None:
    gt = np.array([[0, 0, 5, 5], [20, 0, 40, 20]], dtype=float)
    ignore = np.array([True, False])
    dets = np.array([[0, 0, 5, 5], [0, 0, 5, 5], [20, 0, 40, 20], [60, 60, 70, 70]], dtype=float)
    m = match_image(dets, np.array([0.9, 0.85, 0.8, 0.1]), gt, ignore)
    assert list(m.labels) == [IGNORED, IGNORED, TP, FP]
    curve = pr_curve([m])
    assert curve.n_pos == 1
    assert average_precision(curve) == pytest.approx(1.0)
    # Without the ignore flag the small face counts: the duplicate is an FP at rank 2.
    m_all = match_image(dets, np.array([0.9, 0.85, 0.8, 0.1]), gt)
    assert list(m_all.labels) == [TP, FP, TP, FP]
    assert average_precision(pr_curve([m_all])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_regular_box_preferred_over_ignore_region() -> None:
    gt = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], dtype=float)
    ignore = np.array([True, False])
    m = match_image(np.array([[0, 0, 10, 10]], dtype=float), np.array([0.5]), gt, ignore)
    assert list(m.labels) == [TP]


def test_pooling_ties_and_empty_images() -> None:
    m1 = match_image(GT[:1], np.array([0.5]), GT[:1])
    m2 = match_image(np.array([[0, 0, 3, 3]], dtype=float), np.array([0.5]), np.zeros((0, 4)))
    curve = pr_curve([m1, m2])
    # Tied scores form a single operating point: 1 TP + 1 FP.
    assert len(curve.thresholds) == 1
    assert curve.precision[0] == pytest.approx(0.5) and curve.recall[0] == pytest.approx(1.0)
    assert average_precision(curve) == pytest.approx(0.5)


def test_recall_by_width_and_threshold_point() -> None:
    gt = np.array([[0, 0, 8, 8], [20, 0, 35, 15], [50, 0, 80, 30], [100, 0, 160, 60]], dtype=float)
    dets = gt[[1, 2, 3]]
    m = match_image(dets, np.array([0.9, 0.5, 0.2]), gt)
    bins = {b.label: (b.n, b.recalled) for b in recall_by_width([m], threshold=0.4)}
    assert bins == {"<10": (1, 0), "10-20": (1, 1), "20-40": (1, 1), ">=40": (1, 0)}
    op = point_at_threshold([m], 0.4)
    assert (op.tp, op.fp, op.recall, op.precision) == (2, 0, 0.5, 1.0)
    every = {b.label: b.recalled for b in recall_by_width([m])}  # default: any match counts
    assert every == {"<10": 0, "10-20": 1, "20-40": 1, ">=40": 1}
    nothing = recall_by_width([m], threshold=float("nan"))
    assert all(b.recalled == 0 for b in nothing)


def test_wilson_interval_hand_values() -> None:
    from metrics import wilson_interval

    # 3 of 15 (headwear recall): the exact-ish Wilson bounds 0.070 and 0.452
    lo, hi = wilson_interval(3, 15)
    assert lo == pytest.approx(0.0705, abs=5e-4) and hi == pytest.approx(0.4519, abs=5e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_balanced_accuracy_and_its_bootstrap_interval() -> None:
    from metrics import balanced_accuracy, bootstrap_interval

    y = np.array([0] * 10 + [1] * 30)
    pred = np.array([0] * 8 + [1] * 2 + [1] * 27 + [0] * 3)  # recalls 0.8 and 0.9
    assert balanced_accuracy(y, pred) == pytest.approx(0.85)
    lo, hi = bootstrap_interval(y, pred, n_boot=500, seed=1)
    assert lo < 0.85 < hi and lo > 0.6 and hi < 1.0
    assert bootstrap_interval(y, pred, n_boot=500, seed=1) == (lo, hi)  # seeded
    assert bootstrap_interval(y, y) == (1.0, 1.0)
