"""Video reading and video mode on the real clips of ../shared/data/pyfeat_media.

Clips made here (rotated, variable frame rate, cut, corrupt, audio-only, empty, huge) are
written with PyAV into tmp_path; the shared clips are used as they are or cut to their first
seconds (stream copy) so the tests stay fast.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from mien.cli import main
from mien.errors import (
    EmptyVideoError,
    InvalidVideoError,
    NoVideoStreamError,
    SourceNotFoundError,
    VideoTooLargeError,
)
from mien.media.video import FrameSelection, VideoLimits, VideoReader
from mien.options import AnalyzerOptions
from mien.video import FrameResult, TrackSummary, VideoAnalyzer, VideoOptions, VideoResult
from tests.conftest import shared

MEDIA = ("pyfeat_media",)


def media(name: str) -> Path:
    return shared(*MEDIA, name)


def labels() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(media("labels.json").read_text())
    return data


def clip_head(src: Path, dst: Path, seconds: float, options: dict[str, str] | None = None) -> Path:
    """Copy (no re-encoding) the video and audio packets of ``src`` up to ``seconds``
    (``options``: the output container's, e.g. ``{"movflags": "faststart"}``)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options=options or {}) as o:
        kinds = ("video", "audio")
        out = {s.index: o.add_stream_from_template(s) for s in i.streams if s.type in kinds}
        for p in i.demux(*[i.streams[k] for k in out]):
            if p.dts is None or p.pts is None or float(p.pts * p.time_base) >= seconds:
                continue
            p.stream = out[p.stream.index]
            o.mux(p)
    return dst


def make_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    pts_ms: list[int] | None = None,
    rotation: int = 0,
    codec: str = "libx264",
) -> Path:
    """Encode RGB frames; ``pts_ms`` gives each frame's timestamp (ms), ``rotation`` the
    display matrix (counter-clockwise degrees)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s: Any = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        from fractions import Fraction

        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(rotation)
        for k, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            f.pts = pts_ms[k] if pts_ms is not None else k * 40
            f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def video_analyzer() -> VideoAnalyzer:
    return VideoAnalyzer(AnalyzerOptions(features=("detection",), num_threads=2))


def frames_of(records: list[Any]) -> list[FrameResult]:
    return [r for r in records if isinstance(r, FrameResult)]


# -- reading --------------------------------------------------------------------------------


def test_reader_streams_frames_with_increasing_timestamps() -> None:
    path = media("single_face.mp4")
    with VideoReader(path, audio=True) as reader:
        items = list(reader)
        info = reader.info
    frames = [x for x in items if not isinstance(x, av.Packet)]
    audio = [x for x in items if isinstance(x, av.Packet)]
    assert len(frames) == labels()["single_face.mp4"]["frames"] == 72
    assert [f.index for f in frames] == list(range(72))
    ts = [f.timestamp_ms for f in frames]
    assert ts[0] == 0.0 and all(b > a for a, b in itertools.pairwise(ts))
    assert ts[30] == pytest.approx(1000.0, abs=1.0)  # 30 fps
    assert (info.width, info.height, info.rotation) == (640, 360, 0)
    assert info.fps == pytest.approx(30.0) and info.has_audio and audio
    assert frames[0].rgb is not None and frames[0].rgb.shape == (360, 640, 3)


def test_reader_every_n_and_sample_fps_select_the_right_frames() -> None:
    path = media("single_face.mp4")  # 30 fps, 72 frames
    with VideoReader(path, selection=FrameSelection(every_n=10), full=False, scaled_side=160) as r:
        picked = [(f.index, f.rgb, f.scaled.shape) for f in r]
    assert [p[0] for p in picked] == [0, 10, 20, 30, 40, 50, 60, 70]
    assert all(p[1] is None and p[2] == (90, 160, 3) for p in picked)
    with VideoReader(path, selection=FrameSelection(sample_fps=5.0), full=False) as r:
        sampled = [(f.index, round(f.timestamp_ms)) for f in r]
    assert [i for i, _ in sampled] == list(range(0, 72, 6))  # 30 fps / 5 per second
    with pytest.raises(ValueError, match="either"):
        FrameSelection(every_n=2, sample_fps=5.0)
    with pytest.raises(ValueError):
        FrameSelection(every_n=0)


def test_variable_frame_rate_timestamps_come_from_the_stream(tmp_path: Path) -> None:
    pts = [0, 40, 120, 130, 300, 310, 900]
    frames = [np.full((32, 32, 3), 20 * k, np.uint8) for k in range(len(pts))]
    path = make_clip(tmp_path / "vfr.mkv", frames, pts_ms=pts)
    with VideoReader(path) as reader:
        got = [f.timestamp_ms for f in reader]
    assert got == pytest.approx(pts)


def test_rotation_metadata_is_applied(tmp_path: Path, video_analyzer: VideoAnalyzer) -> None:
    # The frames are stored turned a quarter clockwise, with a display matrix that turns them
    # back (as phones record portrait video): the reader must hand out upright frames.
    src = clip_head(media("single_face.mp4"), tmp_path / "head.mkv", 0.4)
    with VideoReader(src) as reader:
        upright = [f.rgb for f in reader]
    stored = [np.ascontiguousarray(np.rot90(f, k=-1)) for f in upright]  # 360 x 640 -> 640 x 360
    path = make_clip(tmp_path / "rotated.mp4", stored, rotation=90)
    with VideoReader(path) as reader:
        back = list(reader)
        info = reader.info
    assert (info.width, info.height, info.rotation) == (640, 360, 90)
    assert back[0].rgb is not None and back[0].rgb.shape == (360, 640, 3)
    diff = np.abs(back[0].rgb.astype(int) - upright[0].astype(int)).mean()
    assert diff < 8  # the same picture, up to re-encoding
    # and the face is found upright, where it is in the original clip
    records = list(video_analyzer.analyze_video(path))
    box = frames_of(records)[0].faces.boxes[0]
    video_analyzer.reset()
    orig = video_analyzer.process(upright[0], 0.0).boxes[0]
    assert np.abs(box - orig).max() < 12


# -- faces and tracks on the labelled clips ------------------------------------------------


@pytest.mark.parametrize("name", ["face_noface.mov", "noface_face.mov", "no_face.mp4"])
def test_face_presence_matches_labels(name: str) -> None:
    spans = labels()[name]["face_frames"]
    analyzer = VideoAnalyzer(
        AnalyzerOptions(features=("detection",), num_threads=2), VideoOptions(every_n=6)
    )
    frames = frames_of(list(analyzer.analyze_video(media(name))))
    assert len(frames) >= 15
    for f in frames:
        labelled = any(a <= f.index <= b for a, b in spans)
        margin = any(abs(f.index - a) <= 1 or abs(f.index - b) <= 1 for a, b in spans)
        if margin:
            continue  # the cut frames themselves
        assert (len(f.faces) > 0) == labelled, (name, f.index, len(f.faces))
    ts = [f.timestamp_ms for f in frames]
    assert all(b > a for a, b in itertools.pairwise(ts))


def test_single_face_clip_is_one_track(video_analyzer: VideoAnalyzer) -> None:
    records = list(video_analyzer.analyze_video(media("single_face.mp4")))
    frames = frames_of(records)
    tracks = [r for r in records if isinstance(r, TrackSummary)]
    video = records[-1]
    assert isinstance(video, VideoResult) and video.ok and video.frames_analysed == 72
    assert len(frames) == 72 and all(len(f.faces) == 1 for f in frames)
    assert {int(f.faces.track_ids[0]) for f in frames} == {1}  # type: ignore[index]
    assert len(tracks) == 1
    t = tracks[0]
    assert (t.first_frame, t.last_frame, t.frames) == (0, 71, 72)
    assert t.first_ms == 0.0 and t.last_ms == pytest.approx(71 * 1000 / 30, abs=1)
    assert 0 <= t.best_frame <= 71 and 0.5 < t.score_mean <= t.score_max <= 1.0
    d = t.to_dict()
    assert d["kind"] == "track" and json.dumps(d)


def test_person_clip_has_one_dominant_track(tmp_path: Path) -> None:
    path = clip_head(media("WolfgangLanger_Pexels.mp4"), tmp_path / "wl.mkv", 4.0)
    analyzer = VideoAnalyzer(AnalyzerOptions(features=("detection",), num_threads=2))
    records = list(analyzer.analyze_video(path))
    n = len(frames_of(records))
    tracks = sorted((r for r in records if isinstance(r, TrackSummary)), key=lambda t: -t.frames)
    assert n >= 90 and tracks
    assert tracks[0].frames >= 0.9 * n  # one woman -> one track through (almost) every frame


def test_attributes_are_smoothed_over_the_track(tmp_path: Path) -> None:
    path = clip_head(media("single_face.mp4"), tmp_path / "sf.mkv", 0.5)
    analyzer = VideoAnalyzer(
        AnalyzerOptions(features=("detection", "quality", "head_pose", "eyeglasses"), num_threads=2)
    )
    records = list(analyzer.analyze_video(path))
    (track,) = [r for r in records if isinstance(r, TrackSummary)]
    per_frame = [bool(f.faces.attributes["eyeglasses"].values[0]) for f in frames_of(records)]
    majority = sum(per_frame) * 2 > len(per_frame)
    assert track.attributes["eyeglasses"]["value"] == majority
    assert track.attributes["eyeglasses"]["frames"] == len(per_frame)
    assert track.head_pose is not None and track.head_pose["yaw"] is not None
    best = frames_of(records)[[f.index for f in frames_of(records)].index(track.best_frame)]
    q = best.faces.quality
    assert q is not None  # best frame is the sharpest-and-best-exposed one
    best_q = float(q["sharpness"][0] * q["exposure"][0])
    for f in frames_of(records):
        fq = f.faces.quality
        assert fq is not None and float(fq["sharpness"][0] * fq["exposure"][0]) <= best_q + 1e-6


def test_process_requires_increasing_timestamps(video_analyzer: VideoAnalyzer) -> None:
    with VideoReader(media("single_face.mp4"), selection=FrameSelection(every_n=30)) as reader:
        rgbs = [f.rgb for f in reader]
    video_analyzer.reset()
    ids = [video_analyzer.process(rgb, 100.0 * k).track_ids for k, rgb in enumerate(rgbs)]
    assert all(i is not None and i.tolist() == [1] for i in ids)
    with pytest.raises(ValueError, match="timestamps must increase"):
        video_analyzer.process(rgbs[0], 50.0)
    video_analyzer.reset()  # a new video starts over
    assert video_analyzer.process(rgbs[0], 0.0).track_ids.tolist() == [1]  # type: ignore[union-attr]


def test_frame_index_and_pop_summary_for_streams(video_analyzer: VideoAnalyzer) -> None:
    # a live source analyses some decoded frames only: it passes their numbers, and forgets a
    # track's summary once the track has ended
    with VideoReader(media("single_face.mp4"), selection=FrameSelection(every_n=30)) as reader:
        frames = [(f.index, f.timestamp_ms, f.rgb) for f in reader]
    assert [i for i, _, _ in frames] == [0, 30, 60]
    video_analyzer.reset()
    for index, ms, rgb in frames:
        video_analyzer.process(rgb, ms, frame_index=index)
    track = video_analyzer.pop_summary(1, "clip")
    assert track is not None and track.source == "clip"
    assert (track.first_frame, track.last_frame, track.frames) == (0, 60, 3)
    assert video_analyzer.pop_summary(1) is None and video_analyzer.summaries() == []


# -- bad input ------------------------------------------------------------------------------


def _cut_mkv(tmp_path: Path) -> Path:
    whole = clip_head(media("single_face.mp4"), tmp_path / "whole.mkv", 10.0)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    return cut


def test_truncated_files(tmp_path: Path, video_analyzer: VideoAnalyzer) -> None:
    # An mp4 cut in half loses its index (at the end): nothing can be read.
    src = media("single_face.mp4").read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(src[: len(src) // 2])
    with pytest.raises(InvalidVideoError, match=r"half\.mp4"):
        VideoReader(half)
    # A Matroska file cut at 60%: the frames before the cut are kept, the damage is reported.
    cut = _cut_mkv(tmp_path)
    records = list(video_analyzer.analyze_video(cut, on_error="record"))
    video = records[-1]
    assert isinstance(video, VideoResult) and video.error is not None
    assert video.error.code == "InvalidVideo" and "truncated" in video.error.message
    assert 20 <= len(frames_of(records)) < 72 == labels()["single_face.mp4"]["frames"]
    gen = video_analyzer.analyze_video(cut)
    got: list[Any] = []
    with pytest.raises(InvalidVideoError):
        for r in gen:
            got.append(r)
    assert len(frames_of(got)) == len(frames_of(records))  # frames were yielded before


def test_corrupt_bytes(tmp_path: Path, video_analyzer: VideoAnalyzer) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    with pytest.raises(InvalidVideoError):
        VideoReader(garbage)
    whole = clip_head(media("single_face.mp4"), tmp_path / "w.mkv", 10.0)
    data = bytearray(whole.read_bytes())
    rng = np.random.default_rng(1)
    for off in range(len(data) // 3, len(data) // 3 + 20_000, 500):
        data[off : off + 50] = rng.integers(0, 256, 50, np.uint8).tobytes()
    bad = tmp_path / "corrupt.mkv"
    bad.write_bytes(bytes(data))
    records = list(video_analyzer.analyze_video(bad, on_error="record"))
    video = records[-1]
    assert isinstance(video, VideoResult) and video.error is not None
    assert video.error.code == "InvalidVideo"
    assert 0 < video.frames_analysed < 72


def test_no_video_stream_empty_and_huge(tmp_path: Path) -> None:
    audio = tmp_path / "audio.m4a"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for k in range(5):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            fr.sample_rate, fr.pts = 16000, k * 1024
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(NoVideoStreamError, match="no video stream"):
        VideoReader(audio)
    empty = tmp_path / "empty.mkv"  # a video track without a single frame (audio only muxed)
    with av.open(str(media("single_face.mp4"))) as i, av.open(str(empty), "w") as o:
        o.add_stream_from_template(i.streams.video[0])
        a = o.add_stream_from_template(i.streams.audio[0])
        for p in i.demux(i.streams.audio[0]):
            if p.dts is not None:
                p.stream = a
                o.mux(p)
    with pytest.raises(EmptyVideoError), VideoReader(empty) as reader:
        list(reader)
    huge = make_clip(tmp_path / "huge.mkv", [np.zeros((16, 9000, 3), np.uint8)] * 2)
    with pytest.raises(VideoTooLargeError, match="9000x16"):
        VideoReader(huge)
    small_limit = VideoLimits(max_side=100)
    with pytest.raises(VideoTooLargeError):
        VideoReader(media("single_face.mp4"), limits=small_limit)
    with pytest.raises(SourceNotFoundError):
        VideoReader(tmp_path / "missing.mp4")
    with pytest.raises(SourceNotFoundError):
        VideoReader(tmp_path)


# -- the command line -----------------------------------------------------------------------


def test_cli_video_lines_and_bad_inputs_in_one_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = clip_head(media("single_face.mp4"), tmp_path / "a_good.mkv", 0.5)
    half = tmp_path / "b_half.mp4"
    src = media("single_face.mp4").read_bytes()
    half.write_bytes(src[: len(src) // 2])
    cut = _cut_mkv(tmp_path)
    photo = media("single_face.jpg")
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "analyze",
            str(good),
            str(half),
            str(cut),
            str(photo),
            "--features",
            "detection",
            "--every-n",
            "3",
            "-o",
            str(out),
            "--threads",
            "2",
        ]
    )
    assert code == 1  # some inputs could not be read; the others were analysed
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for rec in lines:
        by_kind.setdefault(rec.get("kind", "image"), []).append(rec)
    good_frames = [r for r in by_kind["frame"] if r["source"] == str(good)]
    assert [r["frame"] for r in good_frames] == [0, 3, 6, 9, 12]
    assert all(f["faces"][0]["track_id"] == 1 for f in good_frames)
    tracks = [r for r in by_kind["track"] if r["source"] == str(good)]
    assert len(tracks) == 1 and tracks[0]["frames"] == 5
    videos = {r["source"]: r for r in by_kind["video"]}
    assert "error" not in videos[str(good)]
    assert videos[str(half)]["error"]["code"] == "InvalidVideo"
    assert videos[str(cut)]["error"]["code"] == "InvalidVideo"
    assert any(r["source"] == str(cut) for r in by_kind["frame"])  # kept what was decoded
    (image,) = by_kind["image"]  # the image record is unchanged: no "kind"
    assert "kind" not in image and image["source"] == str(photo) and image["faces"]
    err = capsys.readouterr().err
    assert "b_half.mp4: InvalidVideo" in err


def test_cli_sample_fps_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = clip_head(media("single_face.mp4"), tmp_path / "g.mkv", 1.0)
    out = tmp_path / "o.jsonl"
    assert (
        main(
            [
                "analyze",
                str(good),
                "--features",
                "detection",
                "--sample-fps",
                "2",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    frames = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["frame"] for r in frames if r["kind"] == "frame"] == [0, 15]
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(good), "--every-n", "2", "--sample-fps", "2"])
    assert exc.value.code == 2
    assert main(["analyze", str(good), "--every-n", "0"]) == 2
    assert main(["analyze", str(good), "--features", "age"]) == 2  # refused, nothing read
    capsys.readouterr()


def test_stopping_early_ends_the_decoder_thread(video_analyzer: VideoAnalyzer) -> None:
    import threading

    gen = video_analyzer.analyze_video(media("face_noface.mov"))
    first = [next(gen) for _ in range(3)]
    gen.close()
    assert all(isinstance(r, FrameResult) for r in first)
    assert not [t for t in threading.enumerate() if t.name == "mien-video-decode"]
