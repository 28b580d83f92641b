"""Video and stream results grouped for review: one *segment* per run of a face track's flags.

A video job (or a stream job) gives one result per analysed frame; reviewing those one by one
is 40 cards for a 20 s clip. Here the flagged faces of the frames are grouped into segments:

* a segment holds frames of **one track** (``track_id``); flags about the whole frame (``face``
  None: "no face", "more than one face") are followed as one more track, ``scene``;
* two flagged frames of a track are in one segment when they are less than ``gap_s`` (default
  1.0 s) apart; frames where the face is not flagged (or not seen) in between count as a gap,
  so a flag that flickers off for a frame or two does not split a segment;
* with ``by_rules`` (the default of :class:`Segmenter`), a segment's frames must also have the
  **same rule set** (the ids of the rules that fired for that face), and a change of the set
  starts a new segment. Without it, a segment's ``rules`` is the union over its frames, and
  ``rule_frames`` says on how many frames each rule fired. The service groups **without**
  ``by_rules`` (:data:`REVIEW_BY_RULES`): a profile of many rules (``id-photo`` has 15) fires
  a slightly different set on almost every frame of a moving face, so agreeing sets cut the
  20 s clip of the issue into 21 segments of 1 to 7 frames, the same face over and over; by
  track it is one segment with its rules and their frame counts;
* a flagged face **without a track id** (a detector without tracking) is a segment of its own;
* with ``max_s`` set (stream jobs), a segment closes once it spans ``max_s`` seconds and the
  track's next frames open a new one, so a face that stays flagged for an hour still reaches
  the review page every ``max_s`` seconds.

Each segment names its **keyframe**: the frame where the face's box is largest (area in
pixels; ties go to the higher detector score, then the earlier frame). The largest view of the
face is the one a reviewer can judge best; mien has no sharpness measure of its own, and a box
that is larger at the same detector score is, in practice, the closer and sharper view.

The module is pure (no store, no I/O): :class:`Segmenter` takes frames one at a time and hands
out segments once they can no longer grow (what a stream needs), :func:`segment_frames` does a
whole video at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Frames of a track this close (seconds) with the same rules are merged into one segment.
DEFAULT_GAP_S = 1.0
#: Whether the service's segments need agreeing rule sets (see the module doc).
REVIEW_BY_RULES = False
#: The longest segment of a stream job (seconds) before it is handed out and a new one starts.
STREAM_MAX_S = 30.0
#: The ``face`` of an observation that holds a frame's flags about no single face.
SCENE = -1


@dataclass(frozen=True)
class FaceObs:
    """One flagged face of one analysed frame."""

    frame: int
    t_s: float
    face: int
    track_id: int | None
    rules: frozenset[str]
    area: float
    score: float
    box: tuple[float, float, float, float] | None
    flags: tuple[Mapping[str, Any], ...]
    size: tuple[int, int] = (0, 0)
    """The frame's width and height (px; 0 when the record does not say)."""


@dataclass
class Segment:
    """Frames of one track whose rule sets agree (see the module doc)."""

    track_id: int | None
    rules: frozenset[str]
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    frames: int
    key: FaceObs
    members: list[int] = field(default_factory=list)
    """Analysed frame indices in the segment (kept for tests; not stored)."""
    rule_frames: dict[str, int] = field(default_factory=dict)
    """Frames of the segment on which each rule fired."""
    first_flags: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """The first flag of each rule in the segment."""

    def add(self, obs: FaceObs) -> None:
        self.end_s = obs.t_s
        self.end_frame = obs.frame
        self.frames += 1
        self.members.append(obs.frame)
        self.rules = self.rules | obs.rules
        self._count(obs)
        if _better(obs, self.key):
            self.key = obs

    def _count(self, obs: FaceObs) -> None:
        for rule in obs.rules:
            self.rule_frames[rule] = self.rule_frames.get(rule, 0) + 1
        for f in obs.flags:
            self.first_flags.setdefault(str(f.get("rule")), f)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of a segment result row (``results.data``)."""
        return {
            "kind": "segment",
            "track_id": self.track_id,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "frames": self.frames,
            "rules": sorted(self.rules),
            "rule_frames": dict(sorted(self.rule_frames.items())),
            "keyframe": self.key.frame,
            "keyframe_s": round(self.key.t_s, 3),
            "keyframe_face": None if self.key.face == SCENE else self.key.face,
            "scene": self.key.face == SCENE,
            "keyframe_box": None if self.key.box is None else list(self.key.box),
            "width": self.key.size[0],
            "height": self.key.size[1],
        }

    def flags(self) -> list[dict[str, Any]]:
        """One flag per rule of the segment (the keyframe's own where it has it, else the
        rule's first): what the review page lists as the reasons."""
        own = {str(f.get("rule")): f for f in self.key.flags}
        return [dict(own.get(r) or self.first_flags[r]) for r in sorted(self.rules)]


def _better(a: FaceObs, b: FaceObs) -> bool:
    """Whether ``a`` makes a better keyframe than ``b`` (larger box, then score, then earlier)."""
    return (a.area, a.score, -a.t_s) > (b.area, b.score, -b.t_s)


def frame_observations(
    data: Mapping[str, Any], flags: Sequence[Mapping[str, Any]]
) -> list[FaceObs]:
    """The flagged faces of one frame record (a video job's ``frame`` result or a stream's
    ``frame`` event) and its flags. Flags about the whole frame (``face`` is None, e.g. "no
    face" or "more than one face") come as one more observation with ``face`` = :data:`SCENE`:
    they are followed through time like a track of their own."""
    frame = int(data.get("frame", data.get("frame_index", 0)))
    t_s = float(data.get("timestamp_ms") or 0.0) / 1000.0
    faces = list(data.get("faces") or [])
    per_face: dict[int, list[Mapping[str, Any]]] = {}
    for f in flags:
        idx = f.get("face")
        if isinstance(idx, int) and idx >= 0:
            per_face.setdefault(idx, []).append(f)
        elif idx is None:
            per_face.setdefault(SCENE, []).append(f)
    out = []
    for idx, found in sorted(per_face.items()):
        rec = faces[idx] if 0 <= idx < len(faces) else {}
        box = rec.get("box")
        tid = None if idx == SCENE else rec.get("track_id", found[0].get("track_id"))
        area = 0.0
        box_t: tuple[float, float, float, float] | None = None
        if isinstance(box, Sequence) and len(box) == 4:
            box_t = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            area = max(0.0, box_t[2] - box_t[0]) * max(0.0, box_t[3] - box_t[1])
        out.append(
            FaceObs(
                frame=frame,
                t_s=t_s,
                face=idx,
                track_id=None if tid is None else int(tid),
                rules=frozenset(str(f.get("rule")) for f in found),
                area=area,
                score=float(rec.get("score") or 0.0),
                box=box_t,
                flags=tuple(found),
                size=(int(data.get("width") or 0), int(data.get("height") or 0)),
            )
        )
    return out


class Segmenter:
    """Segments built frame by frame (frames in time order).

    :meth:`add` returns the segments that can no longer grow (their track has had no frame with
    the same rules for ``gap_s``, its rules changed, or they reached ``max_s``); :meth:`close`
    returns the rest at the end of the video or stream.
    """

    def __init__(
        self, gap_s: float = DEFAULT_GAP_S, max_s: float | None = None, by_rules: bool = True
    ) -> None:
        if not gap_s > 0:
            raise ValueError(f"gap_s must be > 0, got {gap_s!r}")
        if max_s is not None and not max_s > 0:
            raise ValueError(f"max_s must be > 0, got {max_s!r}")
        self.gap_s = float(gap_s)
        self.max_s = max_s
        self.by_rules = by_rules
        self._open: dict[int | str, Segment] = {}

    def add(self, faces: Iterable[FaceObs], t_s: float) -> list[Segment]:
        """Take the flagged faces of the frame at ``t_s``; the segments closed by it."""
        gone = [k for k, s in self._open.items() if t_s - s.end_s >= self.gap_s]
        done = [self._open.pop(k) for k in gone]
        for obs in faces:
            key = _key(obs)
            seg = None if key is None else self._open.get(key)
            if (
                key is not None
                and seg is not None
                and (
                    (self.by_rules and seg.rules != obs.rules)
                    or (self.max_s is not None and obs.t_s - seg.start_s >= self.max_s)
                )
            ):
                done.append(self._open.pop(key))
                seg = None
            if seg is None:
                seg = _start(obs)
                if key is None:
                    done.append(seg)  # a face without a track is a segment of its own
                    continue
                self._open[key] = seg
            else:
                seg.add(obs)
        return sorted(done, key=_order)

    def close(self) -> list[Segment]:
        """The segments still open (end of the video or stream)."""
        done = sorted(self._open.values(), key=_order)
        self._open.clear()
        return done


def _key(obs: FaceObs) -> int | str | None:
    """What an observation is followed by: its track, "scene" for flags about the whole frame,
    None for a face without a track (a segment of its own)."""
    if obs.face == SCENE:
        return "scene"
    return obs.track_id


def _order(seg: Segment) -> tuple[float, int, int]:
    return (seg.start_s, seg.start_frame, -1 if seg.track_id is None else seg.track_id)


def _start(obs: FaceObs) -> Segment:
    seg = Segment(
        track_id=obs.track_id,
        rules=obs.rules,
        start_s=obs.t_s,
        end_s=obs.t_s,
        start_frame=obs.frame,
        end_frame=obs.frame,
        frames=1,
        key=obs,
        members=[obs.frame],
    )
    seg._count(obs)
    return seg


def segment_frames(
    frames: Iterable[tuple[float, Sequence[FaceObs]]],
    gap_s: float = DEFAULT_GAP_S,
    max_s: float | None = None,
    by_rules: bool = True,
) -> list[Segment]:
    """Every segment of a whole video: ``frames`` are ``(t_s, flagged faces)`` in time order."""
    seg = Segmenter(gap_s, max_s, by_rules)
    out: list[Segment] = []
    for t_s, faces in frames:
        out += seg.add(faces, t_s)
    out += seg.close()
    return sorted(out, key=_order)


def segment_row(
    seg: Segment, source: str | None = None, profile: str | None = None
) -> dict[str, Any]:
    """The result row (``store.add_results``, without its ``seq``) of a segment: flagged, with
    one flag per rule."""
    data = seg.to_dict()
    if source is not None:
        data["source"] = source
    if profile is not None:
        data["profile"] = profile
    return {"kind": "segment", "data": data, "flags": seg.flags()}
