"""The events of a live session: plain records, one JSON object each (``to_dict()``).

Every event has ``type``, ``wall_time`` (UTC, ISO 8601 with milliseconds, when mien emitted
it) and ``seq`` (0, 1, 2... in emission order). The types, in the order a session emits them:

* ``stream_started``: the source was opened (size, frame rate, codecs);
* ``frame``: one analysed frame: ``frame_index`` (decoded frames since the start),
  ``timestamp_ms`` (the stream's timestamp, continuous across reconnects), ``captured_at``
  (wall-clock time the frame was decoded), ``latency_ms`` (decoded -> event), ``faces``
  (the per-face objects of docs/output.md, with ``track_id``), and ``flags`` when a rules
  profile is given;
* ``track_started`` / ``track_ended``: a face track appeared / was lost, with its summary;
* ``flag``: a rule started to fire for a face (rising edge; the frame records carry every flag);
* ``dropped``: frames skipped because analysis fell behind (``count`` since the last such
  event, ``total``);
* ``reconnecting`` / ``gap``: the source dropped, mien is trying again after ``delay_s``;
  when it is back, ``gap`` says how long (wall clock) and between which timestamps;
* ``error``: something went wrong that ends the session (``code``, ``message``);
* ``summary``: always last: counts, latency percentiles and why the session ended.

Each type has its own small frozen record below (its *body*: :class:`StreamStarted`,
:class:`AnalysedFrame`, :class:`RedactedFrame`, ...; the summary is
:class:`mien.live.stats.SessionSummary`); :class:`LiveEvent` adds the envelope. The JSON of
every type is described by ``mien/schema/live_event.schema.json``.

Events hold boxes, scores and observable attributes only: no pixels, no face crops.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar, Final, Literal, Protocol, cast

import numpy as np
import numpy.typing as npt

from mien.types import ErrorInfo

EVENT_TYPES: Final[tuple[str, ...]] = (
    "stream_started",
    "frame",
    "track_started",
    "track_ended",
    "flag",
    "dropped",
    "reconnecting",
    "gap",
    "error",
    "summary",
)

#: Why an area of a written frame was covered (``covered`` of a redacted frame).
RegionSource = Literal["detected", "tracked", "held", "suspect", "whole_frame"]

#: What ``on_suspect`` did with a suspect frame.
SuspectAction = Literal["covered_regions", "covered_frame", "kept"]


def iso_time(epoch_s: float) -> str:
    """``epoch_s`` as ``2026-01-31T12:00:00.123Z``."""
    dt = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def round_ms(v: float | None) -> float | None:
    """A time in ms as events give it (0.1 ms)."""
    return None if v is None else round(float(v), 1)


def round_box(box: npt.ArrayLike) -> tuple[float, float, float, float]:
    """A box ``x1, y1, x2, y2`` as events give it (0.1 px)."""
    x1, y1, x2, y2 = (round(float(v), 1) for v in np.asarray(box).reshape(4))
    return (x1, y1, x2, y2)


class EventBody(Protocol):
    """The fields of one event type (its ``type``, and ``to_dict()`` in JSON order).

    A body holds its values as the JSON gives them (rounded where the JSON rounds): the
    ``of`` constructors round."""

    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...


class Record:
    """A frozen dataclass whose JSON is its fields in their order (tuples as lists, records
    as their ``to_dict()``): the records below need no ``to_dict`` of their own."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_json(getattr(self, f.name)) for f in fields(cast(Any, self))}


def to_json(value: Any) -> Any:
    """A field's value in a record's ``to_dict()``."""
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Record):
        return value.to_dict()
    return value


@dataclass(frozen=True)
class FrameRef(Record):
    """Which frame an event is about (the first fields of ``frame`` and ``flag`` events)."""

    frame_index: int
    timestamp_ms: float
    captured_at: str

    @classmethod
    def of(cls, index: int, timestamp_ms: float, captured_at: float) -> FrameRef:
        """``captured_at`` in epoch seconds."""
        return cls(index, round(float(timestamp_ms), 1), iso_time(captured_at))


@dataclass(frozen=True)
class StreamStarted(Record):
    type: ClassVar[str] = "stream_started"

    source: str
    kind: str
    mode: Literal["analyze", "redact"]
    output: str | None
    width: int
    height: int
    fps: float | None
    video_codec: str
    audio_codec: str | None


@dataclass(frozen=True)
class AnalysedFrame:
    """A ``frame`` event of analysis: the tracked faces, and the flags when rules are given."""

    type: ClassVar[str] = "frame"

    frame: FrameRef
    faces: list[dict[str, Any]]
    flags: list[dict[str, Any]] | None
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        out = self.frame.to_dict()
        out["faces"] = self.faces
        if self.flags is not None:
            out["flags"] = self.flags
        out["latency_ms"] = self.latency_ms
        return out


@dataclass(frozen=True)
class Region(Record):
    """One covered area of a written frame: its box, the face's score and track, and why."""

    box: tuple[float, float, float, float]
    score: float | None
    source: RegionSource
    track_id: int | None

    @classmethod
    def of(
        cls, box: npt.ArrayLike, score: float | None, source: RegionSource, track_id: int | None
    ) -> Region:
        """A region as events give it (box to 0.1 px, score to 4 decimals)."""
        rounded = None if score is None else round(float(score), 4)
        return cls(round_box(box), rounded, source, track_id)


@dataclass(frozen=True)
class RedactedFrame:
    """A ``frame`` event of redaction: whether it was searched, what was covered and, for a
    suspect frame, why (``suspect``) and what ``on_suspect`` did (``action``)."""

    type: ClassVar[str] = "frame"

    frame: FrameRef
    detected: bool
    covered: tuple[Region, ...]
    suspect: tuple[str, ...]
    action: SuspectAction | None
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        out = self.frame.to_dict()
        out["detected"] = self.detected
        out["covered"] = [r.to_dict() for r in self.covered]
        if self.action is not None:
            out["suspect"] = list(self.suspect)
            out["action"] = self.action
        out["latency_ms"] = self.latency_ms
        return out


@dataclass(frozen=True)
class TrackStarted(Record):
    type: ClassVar[str] = "track_started"

    track_id: int
    frame_index: int
    timestamp_ms: float
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class TrackEnded:
    """``track_ended``: the id, and the video-mode summary of the track when it is known."""

    type: ClassVar[str] = "track_ended"

    track_id: int
    summary: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, **(self.summary or {})}


@dataclass(frozen=True)
class FlagRaised:
    """``flag``: a rule started to fire (the frame's fields, then the flag's ``to_dict()``)."""

    type: ClassVar[str] = "flag"

    frame: FrameRef
    flag: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.frame.to_dict(), **self.flag}


@dataclass(frozen=True)
class Dropped(Record):
    """``dropped``: ``count`` frames since the last such event; ``total`` since the start,
    of which ``queue_overflow`` the buffer dropped and ``skipped`` the loop."""

    type: ClassVar[str] = "dropped"

    count: int
    total: int
    queue_overflow: int
    skipped: int


@dataclass(frozen=True)
class Reconnecting(Record):
    type: ClassVar[str] = "reconnecting"

    attempt: int
    delay_s: float
    error: str | None


@dataclass(frozen=True)
class Gap(Record):
    """``gap``: the source is back after ``gap_s`` s (also listed in the summary's ``gaps``)."""

    type: ClassVar[str] = "gap"

    gap_s: float | None
    last_timestamp_ms: float | None
    connection: int | None


@dataclass(frozen=True)
class ErrorEvent:
    """``error``: what ended the session (also the summary's ``error``)."""

    type: ClassVar[str] = "error"

    error: ErrorInfo

    def to_dict(self) -> dict[str, Any]:
        return dict(self.error.to_dict())


@dataclass(frozen=True)
class LiveEvent:
    """One event: its body (the fields of its type) in the envelope ``seq`` and ``wall_time``."""

    body: EventBody
    wall_time: float = field(default_factory=time.time)
    seq: int = -1

    def __post_init__(self) -> None:
        if self.body.type not in EVENT_TYPES:
            raise ValueError(f"unknown live event type {self.body.type!r}")

    @property
    def type(self) -> str:
        return self.body.type

    @property
    def data(self) -> dict[str, Any]:
        """The fields of the event's type, JSON-ready."""
        return self.body.to_dict()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "seq": self.seq}
        out["wall_time"] = iso_time(self.wall_time)
        out.update(self.body.to_dict())
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


class EventCounter:
    """Numbers events of one session in emission order."""

    def __init__(self) -> None:
        self._next = itertools.count()

    def make(self, body: EventBody) -> LiveEvent:
        return LiveEvent(body, time.time(), next(self._next))
