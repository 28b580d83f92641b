"""What a live session counts while it runs (:class:`SessionStats`), and the ``summary``
event it ends with (:class:`SessionSummary`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, Literal

import numpy as np

from mien.live.events import Dropped, Gap, Record, to_json
from mien.types import ErrorInfo

#: Seconds between two ``dropped`` events (the summary has the exact total).
DROPPED_EVERY_S: Final[float] = 1.0

#: Latencies kept for the summary's percentiles (the most recent ones).
_LATENCIES_KEPT: Final[int] = 200_000


@dataclass
class SessionStats:
    """The counters of one session, updated by its loop (one thread)."""

    analysed: int = 0  # frames the detector searched (analysis: analysed frames)
    skipped: int = 0  # frames the loop dropped (the buffer's own drops are counted there)
    predicted: int = 0  # redaction: frames covered by prediction alone
    held: int = 0  # redaction: frames in which a last known area was covered too
    detector_failures: int = 0
    suspect_frames: int = 0
    suspect_reasons: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    gaps: list[Gap] = field(default_factory=list)
    tracks: int = 0
    flags: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES_KEPT))
    dropped_reported: int = 0
    last_dropped_event: float = 0.0  # time.monotonic() of the last ``dropped`` event

    def count_suspect(self, reasons: tuple[str, ...]) -> None:
        self.suspect_frames += 1
        for r in reasons:
            self.suspect_reasons[r] = self.suspect_reasons.get(r, 0) + 1

    def dropped(self, queue_overflow: int, now: float, *, force: bool) -> Dropped | None:
        """The ``dropped`` event due now, if any: frames were dropped since the last one, and
        :data:`DROPPED_EVERY_S` has passed (or ``force``, at the end)."""
        total = queue_overflow + self.skipped
        if total <= self.dropped_reported:
            return None
        if not force and now - self.last_dropped_event < DROPPED_EVERY_S:
            return None
        event = Dropped(total - self.dropped_reported, total, queue_overflow, self.skipped)
        self.dropped_reported = total
        self.last_dropped_event = now
        return event

    def latency(self) -> Latency:
        lat = np.array(self.latencies, np.float64)
        if not lat.size:
            return Latency(None, None, None)
        return Latency(
            round(float(np.percentile(lat, 50)), 1),
            round(float(np.percentile(lat, 99)), 1),
            round(float(lat.max()), 1),
        )


@dataclass(frozen=True)
class Latency(Record):
    """Decoded -> event, in ms (None before the first frame)."""

    p50: float | None
    p99: float | None
    max: float | None


@dataclass(frozen=True)
class RedactionCounts(Record):
    """The summary fields of a redacting session (absent when analysing); ``suspect_reasons``
    sorted by reason."""

    output: str | None
    frames_written: int
    frames_predicted: int
    frames_held: int
    detector_failures: int
    suspect_frames: int
    suspect_reasons: dict[str, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "suspect_reasons", dict(sorted(self.suspect_reasons.items())))


@dataclass(frozen=True)
class SessionSummary:
    """The ``summary`` event: always last; counts, latency and why the session ended."""

    type: ClassVar[str] = "summary"

    source: str
    mode: Literal["analyze", "redact"]
    reason: str
    started_at: str
    duration_s: float
    frames_decoded: int
    frames_analysed: int
    frames_dropped: int
    queue_overflow: int
    frames_skipped: int
    decode_errors: int
    reconnects: int
    gaps: tuple[Gap, ...]
    tracks: int
    flags: int
    latency_ms: Latency
    redaction: RedactionCounts | None = None
    error: ErrorInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields in order; the redaction counts (flat) and ``error`` only when set."""
        out = {
            f.name: to_json(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("redaction", "error")
        }
        if self.redaction is not None:
            out.update(self.redaction.to_dict())
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out
