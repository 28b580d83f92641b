"""Video detection ahead of the tracker (mien.video.lanes): one-thread sessions on alternate
frames, and batched network runs, give the records of one session working frame by frame."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mien.detect.centerface import CenterFace
from mien.detect.detector import DetectionPlan, FaceDetector, one_pass
from mien.detect.frame import FrameDetector
from mien.detect.search import FrameSearch
from mien.errors import InvalidVideoError
from mien.media.video import VideoFrame, VideoReader
from mien.options import AnalyzerOptions
from mien.video.analyzer import VideoAnalyzer, VideoOptions
from mien.video.lanes import DetectionLanes, lane_count
from mien.video.records import FrameResult

from .conftest import shared

CLIP = "single_face.mp4"


def clip() -> Path:
    path = shared("pyfeat_media", CLIP)
    if not path.exists():
        pytest.skip(f"{path} is missing (see /work/shared/data/README.md)")
    return path


def frames(n: int = 24) -> list[VideoFrame]:
    with VideoReader(clip(), full=False, scaled_side=512) as reader:
        out = []
        for f in reader:
            out.append(f)
            if len(out) == n:
                break
    return out


def same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.scores, y.scores)
        np.testing.assert_array_equal(x.points, y.points)


def test_lane_count_is_the_detector_cores_on_the_cpu() -> None:
    assert lane_count(AnalyzerOptions(num_threads=1)) == 1
    assert lane_count(AnalyzerOptions(num_threads=2)) == 2
    assert lane_count(AnalyzerOptions(num_threads=64)) == 8
    assert lane_count(AnalyzerOptions()) >= 1


def test_two_lanes_give_the_records_of_one_session() -> None:
    video = VideoOptions()
    one = list(
        VideoAnalyzer(AnalyzerOptions(features="detection", num_threads=1), video).analyze_video(
            clip()
        )
    )
    two_analyzer = VideoAnalyzer(AnalyzerOptions(features="detection", num_threads=2), video)
    two = list(two_analyzer.analyze_video(clip()))
    assert two_analyzer._lanes is not None and len(two_analyzer._lanes.lanes) == 2
    assert [type(r) for r in one] == [type(r) for r in two]
    a = [r for r in one if isinstance(r, FrameResult)]
    assert len(a) > 20 and sum(len(r.faces.boxes) for r in a) > 0
    assert [r.to_dict() for r in one] == [r.to_dict() for r in two]


def test_a_batched_run_gives_each_frame_its_own_detections() -> None:
    got = frames()
    plan = DetectionPlan.for_options(AnalyzerOptions())
    fd = FrameDetector(FaceDetector(CenterFace(num_threads=1)), plan, FrameSearch(512, False))
    same(fd.detect_many(got), [fd.detect(f) for f in got])
    assert sum(len(d) for d in fd.detect_many(got)) > 0


def test_batched_lanes_keep_order_and_results() -> None:
    got = frames(11)
    plan = DetectionPlan.for_options(AnalyzerOptions())
    fd = FrameDetector(FaceDetector(CenterFace(num_threads=1)), plan, FrameSearch(512, False))
    lanes = DetectionLanes(fd, AnalyzerOptions(num_threads=1), plan, FrameSearch(512, False))
    lanes.batch = 4  # what device="cuda" does with 8, here on the CPU
    out = list(lanes.detected(got))
    assert [f.index for f, _ in out] == [f.index for f in got]
    same([d for _, d in out], [fd.detect(f) for f in got])


def test_a_plan_of_several_passes_is_not_batched() -> None:
    got = frames(3)
    plan = replace(DetectionPlan(), rotation_search=True)
    fd = FaceDetector(CenterFace(num_threads=1))
    rgbs = [f.scaled for f in got if f.scaled is not None]
    assert not one_pass(plan, rgbs[0].shape[1], rgbs[0].shape[0])
    assert one_pass(DetectionPlan(upscale=1.0), rgbs[0].shape[1], rgbs[0].shape[0])
    same(fd.detect_many(rgbs, plan), [fd.detect(r, plan) for r in rgbs])


def test_a_reader_error_comes_after_the_frames_before_it() -> None:
    got = frames(5)

    def broken():
        yield from got
        raise InvalidVideoError("cut")

    plan = DetectionPlan.for_options(AnalyzerOptions())
    fd = FrameDetector(FaceDetector(CenterFace(num_threads=1)), plan, FrameSearch(512, False))
    lanes = DetectionLanes(fd, AnalyzerOptions(num_threads=2), plan, FrameSearch(512, False))
    seen = []
    with pytest.raises(InvalidVideoError, match="cut"):
        for frame, _ in lanes.detected(broken()):
            seen.append(frame.index)
    assert seen == [f.index for f in got]
