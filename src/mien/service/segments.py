"""Video and stream results grouped for review: one *segment* per run of a face track's flags.

A video job (or a stream job) gives one result per analysed frame; reviewing those one by one
is 40 cards for a 20 s clip. Here the flagged faces of the frames are grouped into segments:

* a segment holds the frames of **one track** (``track_id``) whose **rule sets agree** (the
  set of rule ids that fired for that face);
* two such frames of a track are in one segment when no frame with another non-empty rule set
  of that track lies between them and they are less than ``gap_s`` (default 1.0 s) apart;
  frames where the face is not flagged (or not seen) in between count as a gap, so a flag that
  flickers off for a frame or two does not split a segment;
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
#: The longest segment of a stream job (seconds) before it is handed out and a new one starts.
STREAM_MAX_S = 30.0
#: Result rows of segments use ``seq`` from here on (frame and event rows use smaller ones).
SEQ_BASE = 1 << 30


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

    def add(self, obs: FaceObs) -> None:
        self.end_s = obs.t_s
        self.end_frame = obs.frame
        self.frames += 1
        self.members.append(obs.frame)
        if _better(obs, self.key):
            self.key = obs

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
            "keyframe": self.key.frame,
            "keyframe_s": round(self.key.t_s, 3),
            "keyframe_face": self.key.face,
            "keyframe_box": None if self.key.box is None else list(self.key.box),
            "width": self.key.size[0],
            "height": self.key.size[1],
        }

    def flags(self) -> list[dict[str, Any]]:
        """The flags of the keyframe's face: what the review page lists as the reasons."""
        return [dict(f) for f in self.key.flags]


def _better(a: FaceObs, b: FaceObs) -> bool:
    """Whether ``a`` makes a better keyframe than ``b`` (larger box, then score, then earlier)."""
    return (a.area, a.score, -a.t_s) > (b.area, b.score, -b.t_s)


def frame_observations(
    data: Mapping[str, Any], flags: Sequence[Mapping[str, Any]]
) -> list[FaceObs]:
    """The flagged faces of one frame record (a video job's ``frame`` result or a stream's
    ``frame`` event) and its flags. Flags not about one face (``face`` is None) are left out:
    they say something about the whole frame, which has no track to follow."""
    frame = int(data.get("frame", data.get("frame_index", 0)))
    t_s = float(data.get("timestamp_ms") or 0.0) / 1000.0
    faces = list(data.get("faces") or [])
    per_face: dict[int, list[Mapping[str, Any]]] = {}
    for f in flags:
        idx = f.get("face")
        if isinstance(idx, int) and idx >= 0:
            per_face.setdefault(idx, []).append(f)
    out = []
    for idx, found in sorted(per_face.items()):
        rec = faces[idx] if idx < len(faces) else {}
        box = rec.get("box")
        tid = rec.get("track_id", found[0].get("track_id"))
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

    def __init__(self, gap_s: float = DEFAULT_GAP_S, max_s: float | None = None) -> None:
        if not gap_s > 0:
            raise ValueError(f"gap_s must be > 0, got {gap_s!r}")
        if max_s is not None and not max_s > 0:
            raise ValueError(f"max_s must be > 0, got {max_s!r}")
        self.gap_s = float(gap_s)
        self.max_s = max_s
        self._open: dict[int, Segment] = {}

    def add(self, faces: Iterable[FaceObs], t_s: float) -> list[Segment]:
        """Take the flagged faces of the frame at ``t_s``; the segments closed by it."""
        done = [s for s in self._open.values() if t_s - s.end_s >= self.gap_s]
        for s in done:
            del self._open[_tid(s)]
        for obs in faces:
            seg = self._open.get(obs.track_id) if obs.track_id is not None else None
            if seg is not None and (
                seg.rules != obs.rules
                or (self.max_s is not None and obs.t_s - seg.start_s >= self.max_s)
            ):
                done.append(self._open.pop(_tid(seg)))
                seg = None
            if seg is None:
                seg = _start(obs)
                if obs.track_id is None:
                    done.append(seg)  # a face without a track is a segment of its own
                    continue
                self._open[obs.track_id] = seg
            else:
                seg.add(obs)
        return sorted(done, key=_order)

    def close(self) -> list[Segment]:
        """The segments still open (end of the video or stream)."""
        done = sorted(self._open.values(), key=_order)
        self._open.clear()
        return done


def _tid(seg: Segment) -> int:
    assert seg.track_id is not None
    return seg.track_id


def _order(seg: Segment) -> tuple[float, int, int]:
    return (seg.start_s, seg.start_frame, -1 if seg.track_id is None else seg.track_id)


def _start(obs: FaceObs) -> Segment:
    return Segment(
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


def segment_frames(
    frames: Iterable[tuple[float, Sequence[FaceObs]]],
    gap_s: float = DEFAULT_GAP_S,
    max_s: float | None = None,
) -> list[Segment]:
    """Every segment of a whole video: ``frames`` are ``(t_s, flagged faces)`` in time order."""
    seg = Segmenter(gap_s, max_s)
    out: list[Segment] = []
    for t_s, faces in frames:
        out += seg.add(faces, t_s)
    out += seg.close()
    return sorted(out, key=_order)


def segment_row(seg: Segment, seq: int, source: str | None = None) -> dict[str, Any]:
    """The result row (``store.add_results``) of a segment: flagged, with its keyframe's flags."""
    data = seg.to_dict()
    if source is not None:
        data["source"] = source
    return {"seq": SEQ_BASE + seq, "kind": "segment", "data": data, "flags": seg.flags()}
