"""The columnar result type validates its columns and converts to the documented JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mien.types import AttributeColumn, ErrorInfo, Faces, ImageResult, ModelInfo


def _faces(n: int = 2) -> Faces:
    boxes = np.array([[10, 20, 50, 70], [100, 100, 130, 140]], np.float32)[:n]
    return Faces(
        boxes=boxes,
        scores=np.array([0.9, 0.6], np.float32)[:n],
        landmarks=np.tile(np.arange(10, dtype=np.float32).reshape(1, 5, 2), (n, 1, 1)),
        head_pose=np.array([[1, 2, 3], [np.nan, np.nan, np.nan]], np.float32)[:n],
        quality={"sharpness": np.array([0.5, np.nan], np.float32)[:n]},
        attributes={
            "demo": AttributeColumn(
                values=(True, None)[:n],
                confidence=np.array([0.8, np.nan], np.float32)[:n],
                reasons=(None, "face too small")[:n],
            )
        },
    )


def test_columns_and_records() -> None:
    f = _faces()
    assert len(f) == 2
    np.testing.assert_allclose(f.widths, [40, 30])
    recs = f.to_records()
    assert recs[0]["box"] == [10.0, 20.0, 50.0, 70.0]
    assert recs[0]["landmarks"]["right_eye"] == [0.0, 1.0]
    assert recs[0]["landmarks"]["mouth_left"] == [8.0, 9.0]
    assert recs[0]["head_pose"] == {"yaw": 1.0, "pitch": 2.0, "roll": 3.0}
    assert recs[1]["head_pose"] == {"yaw": None, "pitch": None, "roll": None}
    assert recs[1]["quality"]["sharpness"] is None
    assert recs[0]["attributes"]["demo"] == {"value": True, "confidence": 0.8}
    assert recs[1]["attributes"]["demo"] == {
        "value": None,
        "confidence": None,
        "reason": "face too small",
    }
    json.dumps(recs, allow_nan=False)  # no NaN may reach JSON


def test_selection_keeps_rows_together() -> None:
    f = _faces()
    g = f[np.array([False, True])]
    assert len(g) == 1
    np.testing.assert_allclose(g.boxes[0], [100, 100, 130, 140])
    assert g.attributes["demo"].reasons == ("face too small",)
    assert len(f[1:]) == 1 and len(f[0]) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"boxes": np.zeros((2, 4)), "scores": np.zeros(3)}, "shape"),
        ({"boxes": [[10, 10, 5, 20]], "scores": [0.5]}, "x1 <= x2"),
        ({"boxes": [[0, 0, 5, 5]], "scores": [1.5]}, "[0, 1]"),
        ({"boxes": [[0, 0, np.nan, 5]], "scores": [0.5]}, "finite"),
        ({"boxes": [[0, 0, 5, 5]], "scores": [0.5], "landmarks": np.zeros((1, 4, 2))}, "landmarks"),
        ({"boxes": [[0, 0, 5, 5]], "scores": [0.5], "track_ids": [1, 2]}, "track_ids"),
    ],
)
def test_invalid_columns_are_rejected(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message if message != "[0, 1]" else r"\[0, 1\]"):
        Faces(**kwargs)


def test_empty_faces() -> None:
    f = Faces.empty()
    assert len(f) == 0 and f.to_records() == []


def test_image_result_has_faces_or_error() -> None:
    m = (ModelInfo("m", "1", "0" * 64),)
    ok = ImageResult("a.jpg", 10, 20, Faces.empty(), m)
    assert ok.ok and ok.to_dict()["faces"] == [] and "error" not in ok.to_dict()
    bad = ImageResult("b.jpg", 0, 0, None, m, ErrorInfo("InvalidImage", "broken"))
    assert not bad.ok and "faces" not in bad.to_dict()
    assert bad.to_dict()["error"] == {"code": "InvalidImage", "message": "broken"}
    with pytest.raises(ValueError):
        ImageResult("c.jpg", 1, 1, None, m)
    with pytest.raises(ValueError):
        ImageResult("c.jpg", 1, 1, Faces.empty(), m, ErrorInfo("x", "y"))
