"""Search around the followed faces between whole-frame searches (``global_every``): windows,
a face that enters is found within the documented number of frames and covered from its entry,
every face of a crowd clip covered as with whole-frame searches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mien.detect.detections import Detections
from mien.detect.frame import ROI_MIN_PX, FrameDetector, roi_windows
from mien.redact.video import VideoRedactOptions, redact_video
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
