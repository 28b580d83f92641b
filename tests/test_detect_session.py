"""The CenterFace session's options (no spinning threads by default, intra-op threads) change
how fast the network runs, never what it finds: the same boxes, scores and points, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mien.detect.centerface import CenterFace, session_options
from mien.detect.detector import DetectionPlan, FaceDetector

from .conftest import shared


def test_the_default_session_does_not_spin() -> None:
    opts = session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    spinning = session_options(2, spin=True)
    assert spinning.intra_op_num_threads == 2 and spinning.inter_op_num_threads == 1


@pytest.mark.parametrize(("threads", "spin"), [(1, False), (2, False), (0, True), (2, True)])
def test_session_options_give_the_same_detections(threads: int, spin: bool) -> None:
    photos = sorted(shared("facemask_kaggle_voc", "images").glob("*.jpg"))[:4]
    plan = DetectionPlan(threshold=0.25)
    default = FaceDetector(CenterFace())
    other = FaceDetector(CenterFace(threads, spin=spin))
    faces = 0
    for path in photos:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        a, b = default.detect(rgb, plan), other.detect(rgb, plan)
        assert np.array_equal(a.boxes, b.boxes), path
        assert np.array_equal(a.scores, b.scores), path
        assert np.array_equal(a.points, b.points), path
        faces += len(a)
    assert faces >= 4  # the photos have faces: the comparison is not of empty results
