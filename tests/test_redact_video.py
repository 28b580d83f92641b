"""Video redaction on the real clips: covered faces, gaps filled, audio kept, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from mien.detect.detections import Detections
from mien.detect.frame import FrameDetector
from mien.errors import InvalidVideoError, NoVideoStreamError
from mien.media.video import VideoReader
from mien.media.write import OutputError
from mien.options import AnalyzerOptions
from mien.redact.draw import region_mask
from mien.redact.options import RedactOptions
from mien.redact.video import VideoRedactOptions, redact_video
from tests.test_video import clip_head, media

THREADS = AnalyzerOptions(features=("detection",), threshold=0.3, num_threads=2)


def decoded(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.rgb for f in reader if f.rgb is not None]


def test_faces_are_covered_audio_kept_and_format_matches(tmp_path: Path) -> None:
    src = clip_head(media("single_face.mp4"), tmp_path / "in.mp4", 1.0)  # h264 + mp3, 30 fps
    out = tmp_path / "out.mp4"
    report = redact_video(src, out, analyzer_options=THREADS, options=RedactOptions())
    with av.open(str(src)) as a, av.open(str(out)) as b:
        va, vb = a.streams.video[0], b.streams.video[0]
        assert vb.codec_context.name == va.codec_context.name == "h264"
        assert vb.time_base == va.time_base
        assert b.streams.audio, "audio was dropped"
        assert b.streams.audio[0].codec_context.name == a.streams.audio[0].codec_context.name
        audio_in = sum(1 for p in a.demux(a.streams.audio[0]) if p.size)
        audio_out = sum(1 for p in b.demux(b.streams.audio[0]) if p.size)
        assert audio_out == audio_in  # every audio packet copied
    before, after = decoded(src), decoded(out)
    assert len(before) == len(after) == report.frames == 30
    with VideoReader(src) as r1, VideoReader(out) as r2:  # same frame times (30 fps)
        assert [f.timestamp_ms for f in r1] == pytest.approx([f.timestamp_ms for f in r2])
    d = report.to_dict()
    assert d["kind"] == "video" and d["counts"]["frames_with_regions"] == 30
    assert d["extra"]["audio_kept"] is True
    regions_by_frame: dict[int, list[Any]] = {}
    for r in report.regions:
        assert r.frame_index is not None
        regions_by_frame.setdefault(r.frame_index, []).append(r.box)
    for k in (0, 15, 29):
        mask = region_mask(before[k].shape[:2], regions_by_frame[k], RedactOptions())
        diff = np.abs(before[k].astype(int) - after[k].astype(int)).mean(axis=2)
        inside = diff[mask].mean()
        grown = region_mask(before[k].shape[:2], regions_by_frame[k], RedactOptions(scale=2.2))
        outside = diff[~grown].mean()
        assert inside > 10 * max(outside, 0.5), (k, inside, outside)  # face destroyed
        assert outside < 3.0  # the rest of the frame only has re-encoding noise
        # the face's detail is gone: the covered area is smooth
        gray = after[k].mean(axis=2)
        ys, xs = np.nonzero(region_mask(gray.shape, regions_by_frame[k], RedactOptions(scale=1.0)))
        patch = gray[ys.min() : ys.max(), xs.min() : xs.max()]
        orig = before[k].mean(axis=2)[ys.min() : ys.max(), xs.min() : xs.max()]
        assert np.abs(np.diff(patch, axis=1)).mean() < 0.5 * np.abs(np.diff(orig, axis=1)).mean()


def test_missed_detections_are_filled_by_tracking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Detection 'misses' the face in frames 10, 11 and 20 and in the last 3 frames: those
    frames are still covered (interpolated between detections, or predicted)."""
    src = clip_head(media("single_face.mp4"), tmp_path / "in.mkv", 1.0)
    real = FrameDetector.detect
    missed = {10, 11, 20, 27, 28, 29}

    def flaky(self: FrameDetector, frame: Any) -> Detections:
        det = real(self, frame)
        return Detections.empty() if frame.index in missed else det

    monkeypatch.setattr(FrameDetector, "detect", flaky)
    out = tmp_path / "out.mkv"
    report = redact_video(
        src, out, analyzer_options=THREADS, video=VideoRedactOptions(backfill=0, detect_every=1)
    )
    sources = {r.frame_index: r.source for r in report.regions}
    assert set(sources) == set(range(30))  # every frame covered
    assert {sources[i] for i in (10, 11, 20)} == {"interpolated"}
    assert {sources[i] for i in (27, 28, 29)} == {"tracked"}
    assert {sources[i] for i in set(range(30)) - missed} == {"detected"}
    counts = report.counts
    assert counts["interpolated"] == 3 and counts["tracked"] == 3
    before, after = decoded(src), decoded(out)
    boxes = {r.frame_index: r.box for r in report.regions}
    for k in (10, 11, 20, 28):  # the pixels of the filled frames are covered too
        mask = region_mask(before[k].shape[:2], [boxes[k]], RedactOptions())
        diff = np.abs(before[k].astype(int) - after[k].astype(int)).mean(axis=2)
        assert diff[mask].mean() > 15
        # and the interpolated box lies on the face (close to its neighbours' detections)
        near = report.regions[[r.frame_index for r in report.regions].index(k - 1)].box
        assert np.abs(np.array(boxes[k]) - np.array(near)).max() < 30


def test_detecting_every_other_frame_still_covers_every_frame(tmp_path: Path) -> None:
    src = clip_head(media("single_face.mp4"), tmp_path / "in.mkv", 0.7)
    calls: list[int] = []
    real = FrameDetector.detect

    def counting(self: FrameDetector, frame: Any) -> Detections:
        calls.append(frame.index)
        return real(self, frame)

    mp = pytest.MonkeyPatch()
    mp.setattr(FrameDetector, "detect", counting)
    try:
        report = redact_video(
            src,
            tmp_path / "out.mkv",
            analyzer_options=THREADS,
            video=VideoRedactOptions(detect_every=2),
        )
    finally:
        mp.undo()
    assert calls == list(range(0, 21, 2))
    by_frame = {r.frame_index: r.source for r in report.regions}
    assert set(by_frame) == set(range(21))
    assert {by_frame[i] for i in range(1, 20, 2)} == {"interpolated"}
    assert by_frame[20] == "detected"


def test_hevc_mov_with_a_cut_keeps_codec_and_covers_only_face_frames(tmp_path: Path) -> None:
    src = media("face_noface.mov")  # hevc + aac, a face in frames 0..71 then none
    head = clip_head(src, tmp_path / "in.mov", 3.3)  # the cut at frame 72 is ~2.7 s
    out = tmp_path / "out.mov"
    report = redact_video(head, out, analyzer_options=THREADS, options=RedactOptions("pixelate"))
    covered = {int(r.frame_index or 0) for r in report.regions}
    assert set(range(72)) <= covered  # every face frame covered
    v = VideoRedactOptions()
    assert max(covered) <= 71 + (v.tracker.max_missed + 1) * v.detect_every  # then stops
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert c.streams.audio


def test_bad_inputs_and_outputs_leave_nothing(tmp_path: Path) -> None:
    good = clip_head(media("single_face.mp4"), tmp_path / "in.mkv", 0.3)
    # unwritable output paths: a folder that is a file, a missing folder, an unknown suffix
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker / "out.mp4", tmp_path / "nope" / "out.mp4", tmp_path / "out.xyz"):
        with pytest.raises(OutputError):
            redact_video(good, target, analyzer_options=THREADS)
        assert not target.exists()
    with pytest.raises(OutputError, match="input video"):
        redact_video(good, good, analyzer_options=THREADS)
    # a truncated input: nothing at the output path, no temporary file left behind
    whole = clip_head(media("single_face.mp4"), tmp_path / "whole.mkv", 10.0)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    out_dir = tmp_path / "outs"
    out_dir.mkdir()
    with pytest.raises(InvalidVideoError, match="truncated"):
        redact_video(cut, out_dir / "cut.mp4", analyzer_options=THREADS)
    audio = tmp_path / "audio.mka"
    with av.open(str(media("single_face.mp4"))) as i, av.open(str(audio), "w") as o:
        a = o.add_stream_from_template(i.streams.audio[0])
        for p in i.demux(i.streams.audio[0]):
            if p.dts is not None:
                p.stream = a
                o.mux(p)
    with pytest.raises(NoVideoStreamError):
        redact_video(audio, out_dir / "audio.mp4", analyzer_options=THREADS)
    assert list(out_dir.iterdir()) == []


def test_rotated_input_is_written_upright(tmp_path: Path) -> None:
    from tests.test_video import make_clip

    head = clip_head(media("single_face.mp4"), tmp_path / "head.mkv", 0.3)
    upright = decoded(head)
    stored = [np.ascontiguousarray(np.rot90(f, k=-1)) for f in upright]
    rotated = make_clip(tmp_path / "rot.mp4", stored, rotation=90)
    out = tmp_path / "out.mp4"
    report = redact_video(rotated, out, analyzer_options=THREADS)
    frames = decoded(out)
    assert frames[0].shape == (360, 640, 3) and report.extra["rotation"] == 90
    assert report.counts["frames_with_regions"] == len(frames) == len(upright)


def test_mien_redact_command_on_videos(tmp_path: Path) -> None:
    import json

    from mien.cli import main

    good = clip_head(media("single_face.mp4"), tmp_path / "in.mp4", 0.3)
    out, rep = tmp_path / "out.mp4", tmp_path / "rep.json"
    assert (
        main(["redact", str(good), "-o", str(out), "--report", str(rep), "-q", "--threads", "2"])
        == 0
    )
    doc = json.loads(rep.read_text())
    assert doc["kind"] == "video" and doc["extra"]["audio_kept"] is True
    assert doc["counts"]["frames_with_regions"] == doc["counts"]["frames"] == len(decoded(out))
    src = media("single_face.mp4").read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(src[: len(src) // 2])
    assert main(["redact", str(half), "-o", str(tmp_path / "h.mp4"), "-q"]) == 1
    assert not (tmp_path / "h.mp4").exists()
    blocker = tmp_path / "f"
    blocker.write_text("x")
    assert main(["redact", str(good), "-o", str(blocker / "o.mp4"), "-q"]) == 3
