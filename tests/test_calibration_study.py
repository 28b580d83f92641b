"""train/calibration_study.py: its half-splits keep positives on both sides and its
cross-fitting calibrates each half on the other. Needs scikit-learn (the train extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="needs scikit-learn (the train extra)")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train import calibration_study as CS


def test_halves_keep_groups_whole_and_positives_on_both_sides() -> None:
    # 3 groups hold all the positives (as the sunglasses' 3 CMU subjects), 20 hold none
    groups = np.array([f"p{k % 3}" for k in range(30)] + [f"n{k % 20}" for k in range(100)])
    y = np.array([1] * 30 + [0] * 100, np.int64)
    for seed in range(10):
        half = CS.halves(groups, y, seed)
        for g in np.unique(groups):
            assert len(set(half[groups == g].tolist())) == 1  # a group is never split
        assert y[half].sum() > 0 and y[~half].sum() > 0


def test_crossfit_calibrates_each_half_on_the_other() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.4).astype(np.int64)
    s = rng.normal(0, 1, 600) + 3.0 * y
    half = CS.halves(np.arange(600), y, 0)
    for fit in (CS.isotonic(), CS.isotonic(weighted=True), CS.platt(), CS.platt(weighted=True)):
        p = CS.crossfit(fit, s, y, half)
        assert p.shape == (600,) and ((p >= 0) & (p <= 1)).all()
        assert ((p > 0.5) == (y == 1)).mean() > 0.9  # classes 3 standard deviations apart
    # a half's answers come from the other half's fit only
    p = CS.crossfit(CS.platt(), s, y, half)
    other = CS.platt()(s[~half], y[~half])
    np.testing.assert_allclose(p[half], other(s[half]))
    assert CS.ece(np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 0, 0, 1])) == pytest.approx(0.4)
