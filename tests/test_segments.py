"""mien.service.segments: flagged faces of video frames grouped into review segments."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mien.service.segments import (
    SCENE,
    FaceObs,
    Segmenter,
    frame_observations,
    segment_frames,
    segment_row,
)


def obs(
    frame: int,
    t: float,
    tid: int | None,
    rules: str = "a",
    side: float = 10.0,
    score: float = 0.9,
    face: int = 0,
) -> FaceObs:
    return FaceObs(
        frame=frame,
        t_s=t,
        face=face,
        track_id=tid,
        rules=frozenset(rules.split(",")) if rules else frozenset(),
        area=side * side,
        score=score,
        box=(0.0, 0.0, side, side),
        flags=tuple({"rule": r, "face": face, "track_id": tid} for r in rules.split(",")),
    )


def spans(frames: list[tuple[float, list[FaceObs]]], **kw: Any) -> list[tuple[Any, ...]]:
    return [
        (s.track_id, tuple(sorted(s.rules)), s.start_s, s.end_s, s.frames)
        for s in segment_frames(frames, **kw)
    ]


# (frames as (t, [(track, rules)]), expected (track, rules, start, end, frame count))
CASES = [
    ("empty", [], []),
    ("one frame", [(0.0, [(1, "a")])], [(1, ("a",), 0.0, 0.0, 1)]),
    (
        "steady track at 2 fps is one segment",
        [(t / 2, [(1, "a")]) for t in range(40)],
        [(1, ("a",), 0.0, 19.5, 40)],
    ),
    (
        "a gap just under 1 s is merged",
        [(0.0, [(1, "a")]), (0.99, [(1, "a")])],
        [(1, ("a",), 0.0, 0.99, 2)],
    ),
    (
        "a gap of 1 s or more splits",
        [(0.0, [(1, "a")]), (1.0, [(1, "a")])],
        [(1, ("a",), 0.0, 0.0, 1), (1, ("a",), 1.0, 1.0, 1)],
    ),
    (
        "an unflagged frame in between is a gap, merged when short",
        [(0.0, [(1, "a")]), (0.5, []), (0.9, [(1, "a")])],
        [(1, ("a",), 0.0, 0.9, 2)],
    ),
    (
        "other rules split a track",
        [(0.0, [(1, "a")]), (0.5, [(1, "a,b")]), (1.0, [(1, "a")])],
        [(1, ("a",), 0.0, 0.0, 1), (1, ("a", "b"), 0.5, 0.5, 1), (1, ("a",), 1.0, 1.0, 1)],
    ),
    (
        "two tracks are apart",
        [(0.0, [(1, "a"), (2, "a")]), (0.5, [(1, "a"), (2, "a")])],
        [(1, ("a",), 0.0, 0.5, 2), (2, ("a",), 0.0, 0.5, 2)],
    ),
    (
        "faces without a track are one segment each",
        [(0.0, [(None, "a")]), (0.5, [(None, "a")])],
        [(None, ("a",), 0.0, 0.0, 1), (None, ("a",), 0.5, 0.5, 1)],
    ),
]


@pytest.mark.parametrize(("name", "frames", "want"), CASES, ids=[c[0] for c in CASES])
def test_segment_table(name: str, frames: list[Any], want: list[Any]) -> None:
    built = [
        (t, [obs(i, t, tid, rules, face=j) for j, (tid, rules) in enumerate(faces)])
        for i, (t, faces) in enumerate(frames)
    ]
    assert spans(built) == want


def test_by_track_the_rules_are_the_union() -> None:
    frames = [(0.0, [obs(0, 0.0, 1, "a")]), (0.5, [obs(1, 0.5, 1, "a,b")]), (1.0, [obs(2, 1.0, 1)])]
    (seg,) = segment_frames(frames, by_rules=False)
    assert seg.rules == {"a", "b"} and seg.rule_frames == {"a": 3, "b": 1} and seg.frames == 3
    assert seg.to_dict()["rule_frames"] == {"a": 3, "b": 1}
    assert [f["rule"] for f in seg.flags()] == ["a", "b"]


def test_frame_flags_are_followed_as_the_scene() -> None:
    data = {"frame": 0, "timestamp_ms": 0.0, "faces": []}
    frames = []
    for i in range(4):
        (o,) = frame_observations(
            {**data, "frame": i, "timestamp_ms": 500.0 * i}, [{"rule": "one-face", "face": None}]
        )
        frames.append((o.t_s, [o]))
    (seg,) = segment_frames(frames)
    assert seg.track_id is None and seg.frames == 4 and (seg.start_s, seg.end_s) == (0.0, 1.5)
    d = seg.to_dict()
    assert d["scene"] is True and d["keyframe_face"] is None and d["keyframe_box"] is None


def test_gap_is_configurable_and_max_length_splits() -> None:
    frames = [(t / 2, [obs(t, t / 2, 7)]) for t in range(10)]  # 0 .. 4.5 s
    assert len(segment_frames(frames, gap_s=0.4)) == 10
    assert [(s.start_s, s.end_s) for s in segment_frames(frames, max_s=2.0)] == [
        (0.0, 1.5),
        (2.0, 3.5),
        (4.0, 4.5),
    ]
    with pytest.raises(ValueError):
        Segmenter(gap_s=0)
    with pytest.raises(ValueError):
        Segmenter(max_s=-1)


def test_keyframe_is_the_largest_face_then_score_then_earliest() -> None:
    frames = [
        (0.0, [obs(0, 0.0, 1, side=10)]),
        (0.5, [obs(1, 0.5, 1, side=30, score=0.5)]),
        (1.0, [obs(2, 1.0, 1, side=30, score=0.8)]),
        (1.5, [obs(3, 1.5, 1, side=30, score=0.8)]),
        (2.0, [obs(4, 2.0, 1, side=20)]),
    ]
    (seg,) = segment_frames(frames)
    assert seg.key.frame == 2
    row = segment_row(seg, "clip.mp4")
    assert "seq" not in row and row["kind"] == "segment"
    data = row["data"]
    assert data["keyframe"] == 2 and data["keyframe_s"] == 1.0
    assert data["keyframe_box"] == [0.0, 0.0, 30.0, 30.0]
    assert (data["start_s"], data["end_s"], data["frames"]) == (0.0, 2.0, 5)
    assert data["rules"] == ["a"] and data["source"] == "clip.mp4" and data["track_id"] == 1
    assert row["flags"] == [{"rule": "a", "face": 0, "track_id": 1}]


def test_streaming_hands_out_segments_once_they_cannot_grow() -> None:
    seg = Segmenter()
    assert seg.add([obs(0, 0.0, 1)], 0.0) == []
    assert seg.add([obs(1, 0.5, 1)], 0.5) == []
    assert seg.add([], 1.2) == []  # 0.7 s since the last frame: may still grow
    (done,) = seg.add([], 1.5)  # 1.0 s: closed
    assert (done.start_s, done.end_s, done.frames) == (0.0, 0.5, 2)
    assert seg.add([obs(3, 2.0, 1, "b")], 2.0) == []
    (last,) = seg.close()
    assert last.rules == frozenset({"b"}) and seg.close() == []


def test_frame_observations_of_video_and_stream_records() -> None:
    faces = [
        {"box": [0, 0, 10, 20], "score": 0.9, "track_id": 4},
        {"box": [50, 50, 60, 60], "score": 0.8, "track_id": 5},
    ]
    flags = [
        {"rule": "r1", "face": 0, "track_id": 4},
        {"rule": "r2", "face": 0, "track_id": 4},
        {"rule": "scene", "face": None},
    ]
    common = {"timestamp_ms": 3000.0, "faces": faces, "width": 640, "height": 360}
    video = frame_observations({"frame": 6, **common}, flags)
    stream = frame_observations({"frame_index": 6, **common}, flags)
    assert video == stream
    scene, o = video  # face 1 is not flagged; the flag about no single face is the scene's
    assert scene.face == SCENE and scene.track_id is None and scene.rules == {"scene"}
    assert (o.frame, o.t_s, o.track_id, o.face) == (6, 3.0, 4, 0)
    assert o.size == (640, 360)
    assert o.rules == {"r1", "r2"} and o.area == 200.0 and o.box == (0.0, 0.0, 10.0, 20.0)
    assert frame_observations({"faces": []}, []) == []


# -- properties ----------------------------------------------------------------------------

_face = st.tuples(
    st.one_of(st.none(), st.integers(0, 3), st.just("scene")), st.sampled_from(["a", "b", "a,b"])
)
_frames = st.lists(st.tuples(st.floats(0.05, 2.5), st.lists(_face, max_size=4)), max_size=40)


def _build(raw: list[tuple[float, list[tuple[Any, str]]]]) -> list[Any]:
    t = 0.0
    out = []
    for i, (dt, faces) in enumerate(raw):
        t += dt
        seen: set[Any] = set()
        built = []
        for j, (tid, rules) in enumerate(faces):
            if tid is not None and tid in seen:
                continue  # a track is at most once in a frame, and so are the frame's own flags
            seen.add(tid)
            side = float(1 + (i * 7 + j) % 11)
            if tid == "scene":
                o = obs(i, t, None, rules, face=SCENE)
                built.append(dataclasses.replace(o, area=0.0, box=None))
            else:
                built.append(obs(i, t, tid, rules, side=side, face=j))
        out.append((t, built))
    return out


def _follow(o: FaceObs) -> Any:
    """What links an observation to the others of its segment."""
    if o.face == SCENE:
        return "scene"
    return ("track", o.track_id) if o.track_id is not None else ("alone", o.frame, o.face)


@settings(max_examples=300, deadline=None)
@given(
    _frames,
    st.sampled_from([0.3, 1.0, 2.0]),
    st.sampled_from([None, 1.5, 5.0]),
    st.booleans(),
)
def test_segment_properties(raw: Any, gap: float, max_s: float | None, by_rules: bool) -> None:
    frames = _build(raw)
    segs = segment_frames(frames, gap_s=gap, max_s=max_s, by_rules=by_rules)
    every = {(o.frame, o.face): o for _, faces in frames for o in faces}
    # every flagged face is in exactly one segment, with its track's other frames only
    members: list[tuple[int, int]] = []
    for s in segs:
        mine = [
            (f, o.face) for f in s.members for o in frames[f][1] if _follow(o) == _follow(s.key)
        ]
        assert len(mine) == s.frames == len(set(mine))
        members += mine
        got = [every[m] for m in mine]
        if by_rules:
            assert all(o.rules == s.rules for o in got)
        assert s.rules == frozenset().union(*(o.rules for o in got))
        assert s.rule_frames == {r: sum(r in o.rules for o in got) for r in s.rules}
        assert {f["rule"] for f in s.flags()} == s.rules
        assert s.key in got and all(o.area <= s.key.area for o in got)
        if max_s is not None:
            assert s.end_s - s.start_s < max_s
        times = [o.t_s for o in got]
        assert times == sorted(times) and times[0] == s.start_s and times[-1] == s.end_s
        assert all(b - a < gap for a, b in itertools.pairwise(times))  # gaps < gap_s merged
    assert sorted(members) == sorted(every)
    # segments of a track do not overlap; consecutive ones are split for a reason (a gap of at
    # least gap_s, other rules, or the length limit)
    tracks: dict[Any, list[Any]] = {}
    for s in segs:
        tracks.setdefault(_follow(s.key), []).append(s)
    for ts in tracks.values():
        ts.sort(key=lambda s: s.start_s)
        for a, b in itertools.pairwise(ts):
            assert a.end_s < b.start_s
            assert (
                b.start_s - a.end_s >= gap
                or (by_rules and a.rules != b.rules)
                or (max_s is not None and b.start_s - a.start_s >= max_s)
            )


@settings(max_examples=150, deadline=None)
@given(_frames, st.booleans())
def test_streaming_equals_whole_video(raw: Any, by_rules: bool) -> None:
    frames = _build(raw)
    seg = Segmenter(by_rules=by_rules, max_s=3.0)
    streamed = []
    for t, faces in frames:
        for s in seg.add(faces, t):
            assert t >= s.end_s  # never handed out before its last frame
            streamed.append(s)
    streamed += seg.close()
    whole = segment_frames(frames, by_rules=by_rules, max_s=3.0)
    key = lambda s: (s.start_s, s.end_s, s.frames, sorted(s.rules), repr(_follow(s.key)))  # noqa: E731
    assert sorted(map(key, streamed)) == sorted(map(key, whole))
