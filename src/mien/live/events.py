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

Events hold boxes, scores and observable attributes only: no pixels, no face crops.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

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


def iso_time(epoch_s: float) -> str:
    """``epoch_s`` as ``2026-01-31T12:00:00.123Z``."""
    dt = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class LiveEvent:
    """One event: its ``type`` and its fields (``data``), JSON-ready."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    wall_time: float = field(default_factory=time.time)
    seq: int = -1

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown live event type {self.type!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "seq": self.seq}
        out["wall_time"] = iso_time(self.wall_time)
        out.update(self.data)
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


class EventCounter:
    """Numbers events of one session in emission order."""

    def __init__(self) -> None:
        self._next = itertools.count()

    def make(self, type_: str, **data: Any) -> LiveEvent:
        return LiveEvent(type_, data, time.time(), next(self._next))
