"""The face tracker on synthetic boxes (a real clip is tracked in tests/test_video.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mien.track import Tracker, TrackerOptions, greedy_assign
from mien.track.assign import affinity, iou_matrix


def _box(cx: float, cy: float, size: float = 40.0) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def test_iou_matrix_known_values() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_greedy_assign_takes_best_pairs_once() -> None:
    score = np.array([[0.9, 0.8], [0.85, 0.0], [0.0, 0.0]])
    # Row 0 takes column 0 (0.9); row 1 then has nothing left above 0; column 1 goes nowhere
    # else, so row 0 cannot take it twice.
    assert greedy_assign(score) == [(0, 0)]
    assert greedy_assign(np.array([[0.1, 0.9], [0.8, 0.2]])) == [(0, 1), (1, 0)]
    assert greedy_assign(np.zeros((0, 3))) == []


def test_affinity_allows_fast_motion_but_not_far_or_resized_boxes() -> None:
    pred = np.array([_box(100, 100)])
    near_no_overlap = np.array([_box(135, 100)])  # 35 px away, 40 px boxes: IoU ~ 0.06
    far = np.array([_box(300, 100)])
    resized = np.array([_box(100, 100, 200)])
    assert affinity(pred, near_no_overlap, 0.2, 1.0)[0, 0] > 0
    assert affinity(pred, far, 0.2, 1.0)[0, 0] == 0
    assert affinity(pred, resized, 0.2, 1.0)[0, 0] == 0


def test_two_faces_keep_their_ids_while_moving() -> None:
    tracker = Tracker()
    seen: dict[int, list[float]] = {}
    for k in range(30):
        a = _box(100 + 8 * k, 100)  # moves right 8 px per frame
        b = _box(500 - 8 * k, 300)  # moves left, on another row
        order = [b, a] if k % 2 else [a, b]  # detector order changes from frame to frame
        ids = tracker.update(np.array(order), np.array([0.9, 0.8]), k * 40.0)
        for box, tid in zip(order, ids, strict=True):
            seen.setdefault(int(tid), []).append(box[1])
    assert set(seen) == {1, 2}
    for ys in seen.values():
        assert len(set(ys)) == 1  # each id stayed on its own row: never swapped


def test_prediction_bridges_missed_frames_and_track_ends_after_max_missed() -> None:
    tracker = Tracker(TrackerOptions(max_missed=3))
    for k in range(5):
        tracker.update(np.array([_box(100 + 10 * k, 100)]), np.array([0.9]), k * 40.0)
    # Three frames without detections: the track coasts along its velocity.
    for k in range(5, 8):
        assert len(tracker.update(np.zeros((0, 4)), np.zeros(0), k * 40.0)) == 0
        ((track, predicted),) = tracker.coasting()
        assert track.track_id == 1
        centre = (predicted[0] + predicted[2]) / 2
        assert abs(centre - (100 + 10 * k)) < 3.0
    # Found again where the motion predicted it: same id.
    ids = tracker.update(np.array([_box(180, 100)]), np.array([0.9]), 8 * 40.0)
    assert ids.tolist() == [1]
    # Four missed frames: the track ends; a detection afterwards starts a new track.
    for k in range(9, 13):
        tracker.update(np.zeros((0, 4)), np.zeros(0), k * 40.0)
    assert [t.track_id for t in tracker.ended] == [1]
    assert tracker.update(np.array([_box(220, 100)]), np.array([0.9]), 13 * 40.0).tolist() == [2]


def test_variable_frame_rate_prediction_uses_timestamps() -> None:
    tracker = Tracker()
    tracker.update(np.array([_box(100, 100)]), np.array([0.9]), 0.0)
    tracker.update(np.array([_box(110, 100)]), np.array([0.9]), 10.0)  # 1 px per ms
    tracker.update(np.zeros((0, 4)), np.zeros(0), 30.0)
    ((_, predicted),) = tracker.coasting()
    assert (predicted[0] + predicted[2]) / 2 == pytest.approx(130.0, abs=0.5)


def test_prediction_moves_at_most_one_box_size() -> None:
    tracker = Tracker()
    tracker.update(np.array([_box(100, 100)]), np.array([0.9]), 0.0)
    tracker.update(np.array([_box(130, 100)]), np.array([0.9]), 1.0)  # 30 px per ms
    tracker.update(np.zeros((0, 4)), np.zeros(0), 1000.0)
    ((_, predicted),) = tracker.coasting()
    assert (predicted[0] + predicted[2]) / 2 <= 130 + 40 + 1e-6


def test_timestamps_must_increase() -> None:
    tracker = Tracker()
    tracker.update(np.array([_box(100, 100)]), np.array([0.9]), 100.0)
    with pytest.raises(ValueError, match="timestamps must increase"):
        tracker.update(np.array([_box(100, 100)]), np.array([0.9]), 100.0)
    with pytest.raises(ValueError, match="finite"):
        tracker.update(np.zeros((0, 4)), np.zeros(0), float("nan"))


def test_bad_options_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        TrackerOptions(max_missed=-1)
    with pytest.raises(ValueError):
        TrackerOptions(min_iou=0.0)
    with pytest.raises(ValueError, match="scores"):
        Tracker().update(np.array([_box(1, 1)]), np.array([0.9, 0.8]), 0.0)


def test_a_new_face_in_a_camera_pan_starts_with_the_common_motion() -> None:
    """Four 30 px faces pan left 17 px between searched frames; a 14 px face appears at the
    edge (17 px is more than its size, so, seen once, it cannot be matched by overlap or
    distance alone). Started with the pan's motion, it keeps its id at its next detection;
    started still, as before, it got a second track."""
    from mien.track.tracker import COMMON_MOTION_TRACKS

    def faces(k: int, n: int) -> np.ndarray:
        x = np.array([200.0, 300.0, 400.0, 500.0, 600.0][:n]) - 17.0 * k
        size = np.array([30.0, 30.0, 30.0, 30.0, 14.0][:n])
        return np.stack([x, np.full(n, 100.0), x + size, 100.0 + size], axis=1)

    tr = Tracker(TrackerOptions(max_missed=4))
    for k in range(4):
        ids = tr.update(faces(k, 4), np.full(4, 0.9), 80.0 * k)
    first = tr.update(faces(4, 5), np.full(5, 0.9), 320.0)
    assert list(first[:4]) == list(ids) and first[4] not in ids
    again = tr.update(faces(5, 5), np.full(5, 0.9), 400.0)
    assert list(again) == list(first)  # the new face kept its id
    assert COMMON_MOTION_TRACKS == 3
    # A still scene gives new tracks no motion.
    still = Tracker()
    for k in range(3):
        still.update(faces(0, 4), np.full(4, 0.9), 80.0 * k)
    still.update(faces(0, 5), np.full(5, 0.9), 240.0)
    assert np.array_equal(still.tracks[-1].velocity, np.zeros(4))
