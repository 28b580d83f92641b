"""The records of a video analysis: one per analysed frame, one per track, one per video.

Their ``to_dict()`` objects are the JSON lines ``mien analyze clip.mp4`` writes (docs/output.md,
"Video"): ``"kind": "frame"``, ``"kind": "track"`` and a closing ``"kind": "video"``.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mien.types import HEAD_POSE_NAMES, ErrorInfo, Faces, ModelInfo


@dataclass(frozen=True)
class FrameResult:
    """The faces of one analysed frame; ``faces.track_ids`` links them across frames."""

    source: str
    index: int
    timestamp_ms: float
    width: int
    height: int
    faces: Faces

    def to_dict(self, *, include_mesh: bool = True) -> dict[str, Any]:
        return {
            "kind": "frame",
            "source": self.source,
            "frame": int(self.index),
            "timestamp_ms": round(float(self.timestamp_ms), 3),
            "width": int(self.width),
            "height": int(self.height),
            "faces": self.faces.to_records(include_mesh=include_mesh),
        }


@dataclass(frozen=True)
class TrackSummary:
    """One face followed through the video.

    * ``first_frame``/``last_frame`` and ``first_ms``/``last_ms``: where it was first and last
      detected; ``frames``: in how many analysed frames it was detected.
    * ``best_frame``/``best_ms``/``best_box``: the frame where the face looked best — highest
      ``sharpness * exposure`` when quality was measured, else the highest detector score.
    * ``score_mean``/``score_max``: detector confidence over the track.
    * ``head_pose``: median yaw/pitch/roll over the frames where it was measured (or None).
    * ``attributes``: per attribute, the value seen in most frames (ties: the higher mean
      confidence), the mean confidence of the frames with that value, and in how many frames
      it could be judged (``{"value", "confidence", "frames"}``; value None if never judged).
    """

    source: str
    track_id: int
    first_frame: int
    last_frame: int
    first_ms: float
    last_ms: float
    frames: int
    best_frame: int
    best_ms: float
    best_box: tuple[float, float, float, float]
    score_mean: float
    score_max: float
    head_pose: dict[str, float | None] | None = None
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "track",
            "source": self.source,
            "track_id": int(self.track_id),
            "first_frame": int(self.first_frame),
            "last_frame": int(self.last_frame),
            "first_ms": round(self.first_ms, 3),
            "last_ms": round(self.last_ms, 3),
            "frames": int(self.frames),
            "best_frame": int(self.best_frame),
            "best_ms": round(self.best_ms, 3),
            "best_box": [round(v, 2) for v in self.best_box],
            "score": {"mean": round(self.score_mean, 4), "max": round(self.score_max, 4)},
        }
        if self.head_pose is not None:
            out["head_pose"] = self.head_pose
        out["attributes"] = self.attributes
        return out


@dataclass(frozen=True)
class VideoResult:
    """The closing record of one video: its header facts, counts, and the error if any.

    ``frames_decoded`` counts every decoded frame, ``frames_analysed`` the selected ones;
    ``error`` is set when the video could not be opened (then nothing else was produced) or
    was damaged part-way (the frames before the damage were analysed and reported).
    """

    source: str
    width: int = 0
    height: int = 0
    fps: float | None = None
    rotation: int = 0
    frames_decoded: int = 0
    frames_analysed: int = 0
    tracks: int = 0
    models: tuple[ModelInfo, ...] = ()
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "video",
            "source": self.source,
            "width": int(self.width),
            "height": int(self.height),
            "fps": None if self.fps is None else round(self.fps, 3),
            "rotation": int(self.rotation),
            "frames_decoded": int(self.frames_decoded),
            "frames_analysed": int(self.frames_analysed),
            "tracks": int(self.tracks),
            "models": [m.to_dict() for m in self.models],
        }
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


class TrackStats:
    """Running per-track statistics (constant memory per track and attribute value)."""

    def __init__(self, track_id: int) -> None:
        self.track_id = track_id
        self.first_frame = self.last_frame = -1
        self.first_ms = self.last_ms = 0.0
        self.frames = 0
        self.score_sum = 0.0
        self.score_max = 0.0
        self.best = -math.inf
        self.best_frame = -1
        self.best_ms = 0.0
        self.best_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self.poses: list[tuple[float, float, float]] = []
        self.votes: dict[str, Counter[str]] = defaultdict(Counter)
        self.conf: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.judged: Counter[str] = Counter()

    def add(self, faces: Faces, i: int, frame: int, ts: float) -> None:
        if self.frames == 0:
            self.first_frame, self.first_ms = frame, ts
        self.last_frame, self.last_ms = frame, ts
        self.frames += 1
        score = float(faces.scores[i])
        self.score_sum += score
        self.score_max = max(self.score_max, score)
        goodness = score
        if faces.quality is not None and "sharpness" in faces.quality:
            sharp = float(faces.quality["sharpness"][i])
            expo = float(faces.quality.get("exposure", np.ones(len(faces)))[i])
            if math.isfinite(sharp) and math.isfinite(expo):
                goodness = 1.0 + sharp * expo  # any measured quality ranks above a bare score
        if goodness > self.best:
            self.best, self.best_frame, self.best_ms = goodness, frame, ts
            b = faces.boxes[i]
            self.best_box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        if faces.head_pose is not None and np.isfinite(faces.head_pose[i]).all():
            hp = faces.head_pose[i]
            if len(self.poses) < 100_000:
                self.poses.append((float(hp[0]), float(hp[1]), float(hp[2])))
        for name, col in faces.attributes.items():
            value = col.values[i]
            if value is None:
                self.votes[name]
                continue
            key = json.dumps(value, sort_keys=True)
            self.votes[name][key] += 1
            c = float(col.confidence[i])
            if math.isfinite(c):
                self.conf[name][key] += c
            self.judged[name] += 1

    def summary(self, source: str, want_pose: bool) -> TrackSummary:
        pose: dict[str, float | None] | None = None
        if want_pose:
            if self.poses:
                med = np.median(np.array(self.poses), axis=0)
                pose = {n: round(float(v), 1) for n, v in zip(HEAD_POSE_NAMES, med, strict=True)}
            else:
                pose = dict.fromkeys(HEAD_POSE_NAMES)
        attrs: dict[str, dict[str, Any]] = {}
        for name, votes in self.votes.items():
            if not votes:
                attrs[name] = {"value": None, "confidence": None, "frames": 0}
                continue
            key = max(votes, key=lambda k: (votes[k], self.conf[name][k] / votes[k]))
            attrs[name] = {
                "value": json.loads(key),
                "confidence": round(self.conf[name][key] / votes[key], 4),
                "frames": int(self.judged[name]),
            }
        return TrackSummary(
            source=source,
            track_id=self.track_id,
            first_frame=self.first_frame,
            last_frame=self.last_frame,
            first_ms=self.first_ms,
            last_ms=self.last_ms,
            frames=self.frames,
            best_frame=self.best_frame,
            best_ms=self.best_ms,
            best_box=self.best_box,
            score_mean=self.score_sum / max(1, self.frames),
            score_max=self.score_max,
            head_pose=pose,
            attributes=attrs,
        )
