"""Shared fixtures: the labelled photos in ../shared/data and one analyzer per session."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import mien

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "src" / "mien" / "samples" / "astronaut.jpg"


def shared(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a clear message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the labelled data at {path} (../shared/data); it is not present here")
    return path


@pytest.fixture(scope="session")
def analyzer() -> mien.FaceAnalyzer:
    return mien.FaceAnalyzer(features="detection,landmarks,head_pose,quality,mesh", num_threads=2)


@pytest.fixture(scope="session")
def dlib_boxes() -> dict[str, np.ndarray]:
    """Hand-drawn ground-truth boxes of the dlib example photos, by file name."""
    rows = defaultdict(list)
    with open(shared("dlib_examples_faces", "boxes.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["image"]].append([float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
    return {k: np.array(v, np.float32) for k, v in rows.items()}
