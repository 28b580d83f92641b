"""Search around the followed faces between whole-frame searches (``global_every``): windows,
a face that enters is found within the documented number of frames and covered from its entry,
every face of a crowd clip covered as with whole-frame searches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mien.detect.detections import Detections
from mien.detect.detector import DetectionPlan
from mien.detect.frame import ROI_MIN_PX, ROI_WHOLE_SHARE, FrameDetector, roi_windows
from mien.detect.search import FrameSearch
from mien.media.video import VideoFrame
from mien.redact.options import RedactOptions
from mien.redact.video import VideoRedactOptions, _Redactor, redact_video
from tests.test_redact_failclosed import REDACT, faces_by_frame, uncovered
from tests.test_video import clip_head, media


def test_windows_grow_join_and_stay_inside() -> None:
    boxes = np.array([[100, 100, 120, 120], [150, 100, 170, 120], [600, 300, 700, 400]], float)
    wins = roi_windows(boxes, 1.0, 640, 360)
    # the first two grow by 32 px (the minimum) and overlap: joined; the third is cut
    assert sorted(wins) == [(68, 68, 202, 152), (500, 200, 640, 360)]
    assert roi_windows(np.zeros((0, 4)), 1.0, 640, 360) == []
    assert roi_windows(np.array([[np.nan, 0, 1, 1]]), 1.0, 640, 360) == []
    assert ROI_MIN_PX == 32


def test_options_need_backfill_that_reaches_a_late_face() -> None:
    assert VideoRedactOptions(global_every=2).late_frames == 3  # detect_every 2
    with pytest.raises(ValueError, match="backfill"):
        VideoRedactOptions(global_every=2, backfill=2)
    with pytest.raises(ValueError, match="global_every"):
        VideoRedactOptions(global_every=5)
    assert VideoRedactOptions().late_frames == 0


def test_a_face_entering_is_found_in_time_and_covered_from_its_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The face 'enters' at frame 7 (the detector sees nothing before): a whole-frame search
    finds it by frame 7 + late_frames, the frames from 7 on are all covered, and the frames
    between whole-frame searches were searched only around it."""
    src = clip_head(media("single_face.mp4"), tmp_path / "in.mkv", 1.0)
    truth = faces_by_frame(src)
    enter = 7
    real_detect, real_around = FrameDetector.detect, FrameDetector.detect_around
    calls = {"whole": 0, "around": 0}

    def detect(self: FrameDetector, frame: Any) -> Detections:
        calls["whole"] += 1
        return Detections.empty() if frame.index < enter else real_detect(self, frame)

    def around(self: FrameDetector, frame: Any, boxes: Any, margin: float = 1.0) -> Detections:
        calls["around"] += 1
        if frame.index < enter:
            return Detections.empty()
        return real_around(self, frame, boxes, margin)

    monkeypatch.setattr(FrameDetector, "detect", detect)
    monkeypatch.setattr(FrameDetector, "detect_around", around)
    vopts = VideoRedactOptions(global_every=2)
    report = redact_video(src, tmp_path / "out.mkv", analyzer_options=REDACT, video=vopts)
    detected = sorted({int(r.frame_index or 0) for r in report.regions if r.source == "detected"})
    assert enter <= detected[0] <= enter + vopts.late_frames
    assert calls["around"] >= 3 and calls["whole"] >= 3
    seen = {k: v for k, v in truth.items() if k >= enter}
    assert uncovered(seen, report, (360, 640)) == []
    assert report.extra["global_every"] == 2


def test_crowd_clip_every_face_covered_with_search_around_faces(tmp_path: Path) -> None:
    """A street scene (small faces, 2 s): with global_every=2 every face the whole-frame
    search finds in a frame is covered there, as with whole-frame searches only."""
    clip = clip_head(media("WolfgangLanger_Pexels.mp4"), tmp_path / "crowd.mp4", 2.0)
    truth = faces_by_frame(clip)
    assert sum(len(b) for b in truth.values()) > 40  # 48 face-frames, several faces a frame
    vopts = VideoRedactOptions(global_every=2)
    report = redact_video(clip, tmp_path / "out.mp4", analyzer_options=REDACT, video=vopts)
    shape = (report.height, report.width)
    assert uncovered(truth, report, shape) == []


def _frame(k: int) -> VideoFrame:
    return VideoFrame(k, 40.0 * k, None, None, 1.0, 640, 360)


def test_backfilled_boxes_reach_back_along_the_motion_once_it_is_known() -> None:
    """A face moving right 10 px a frame is first detected at frame 4 (x 40): frames 1-3 are
    backfilled with that box. At its second detection (frame 6, x 60) the motion is known, and
    those boxes reach back along it (frame 1: x 10) while keeping the first box."""
    red = _Redactor(RedactOptions(), VideoRedactOptions(), "clip")
    jobs: list[Any] = []
    red.sink = jobs.append
    face = np.array([[0.0, 100.0, 20.0, 120.0]], np.float32)
    for k in range(9):
        if k % 2:
            red.skip(_frame(k))
        elif k >= 4:
            red.add(_frame(k), face + np.array([10.0 * k, 0, 10.0 * k, 0]), np.array([0.9]))
        else:
            red.add(_frame(k), np.zeros((0, 4), np.float32), np.zeros(0))
    red.flush()
    by_frame = {r.frame_index: r.box for r in red.regions}
    assert 0 not in by_frame
    for k in (1, 2, 3):
        x1, _, x2, _ = by_frame[k]
        assert x1 == pytest.approx(10.0 * k) and x2 == pytest.approx(60.0), (k, by_frame[k])
    assert by_frame[5] == pytest.approx((50.0, 100.0, 70.0, 120.0))  # interpolated as before


def test_windows_that_take_half_the_picture_search_the_whole_frame() -> None:
    calls: list[tuple[int, int]] = []

    class Counting:
        def detect(self, img: np.ndarray, plan: Any) -> Detections:
            calls.append(img.shape[:2])
            return Detections.empty()

    fd = FrameDetector(Counting(), DetectionPlan(), FrameSearch(640))  # type: ignore[arg-type]
    frame = VideoFrame(0, 0.0, None, np.zeros((360, 640, 3), np.uint8), 1.0, 640, 360)
    fd.detect_around(frame, np.array([[300.0, 150.0, 330.0, 180.0]]))
    assert calls == [(94, 94)]  # a 30 px face: a 94 px window
    calls.clear()
    big = np.array([[100.0, 100.0, 250.0, 250.0]])  # windows of >= half the picture
    fd.detect_around(frame, big)
    assert calls == [(360, 640)] and ROI_WHOLE_SHARE == 0.5
