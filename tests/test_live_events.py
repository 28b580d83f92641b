"""The records of live events and the session's counters, without a stream (mien.live.events,
mien.live.stats): every body gives the JSON of the live event schema, in its field order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mien.live import events as ev
from mien.live.stats import DROPPED_EVERY_S, Latency, RedactionCounts, SessionStats, SessionSummary
from mien.types import ErrorInfo
from tests.test_schemas import valid

REF = ev.FrameRef.of(12, 480.04, 1_767_225_600.1234)
GAP = ev.Gap(gap_s=2.5, last_timestamp_ms=1234.5, connection=2)
ERROR = ErrorInfo("StreamLost", "the stream ended")


def summary(*, redact: bool, error: ErrorInfo | None = None) -> SessionSummary:
    counts = RedactionCounts("out.mp4", 10, 3, 2, 1, 2, {"not_searched": 2, "after_damage": 1})
    return SessionSummary(
        source="rtsp://***@cam/s",
        mode="redact" if redact else "analyze",
        reason="end",
        started_at="2026-01-01T00:00:00.000Z",
        duration_s=1.5,
        frames_decoded=12,
        frames_analysed=9,
        frames_dropped=3,
        queue_overflow=1,
        frames_skipped=2,
        decode_errors=0,
        reconnects=1,
        gaps=(GAP,),
        tracks=1,
        flags=0,
        latency_ms=Latency(12.5, 40.1, 41.0),
        redaction=counts if redact else None,
        error=error,
    )


BODIES: list[Any] = [
    ev.StreamStarted("rtsp://***@cam/s", "rtsp", "analyze", None, 640, 360, 25.0, "h264", None),
    ev.AnalysedFrame(REF, [], None, 3.2),
    ev.RedactedFrame(REF, True, (ev.Region.of([1, 2, 3, 4], 0.9, "detected", 1),), (), None, 3.2),
    ev.TrackStarted(1, 12, 480.0, (1.0, 2.0, 30.0, 40.0), 0.91),
    ev.TrackEnded(1),
    ev.FlagRaised(
        REF,
        {
            "rule": "r",
            "severity": "error",
            "message": "m",
            "face": None,
            "unknown": False,
            "values": {},
            "frame": 12,
            "timestamp_ms": 480.04,
        },
    ),
    ev.Dropped(3, 5, 1, 4),
    ev.Reconnecting(1, 0.5, "connection refused"),
    GAP,
    ev.ErrorEvent(ERROR),
    summary(redact=False),
]


def test_every_event_type_has_a_body() -> None:
    assert sorted({b.type for b in BODIES}) == sorted(ev.EVENT_TYPES)


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_each_body_is_a_valid_live_event(body: Any) -> None:
    event = ev.EventCounter().make(body)
    record = event.to_dict()
    assert list(record)[:3] == ["type", "seq", "wall_time"] and record["seq"] == 0
    assert event.type == body.type and event["type"] == body.type
    assert {k: v for k, v in record.items() if k not in ("type", "seq", "wall_time")} == (
        body.to_dict()
    )
    assert valid("live_event", record), record


def test_frame_fields_come_first_in_their_order() -> None:
    assert REF.to_dict() == {
        "frame_index": 12,
        "timestamp_ms": 480.0,
        "captured_at": "2026-01-01T00:00:00.123Z",
    }
    frame = ev.AnalysedFrame(REF, [], [], 3.2).to_dict()
    assert list(frame) == [
        "frame_index",
        "timestamp_ms",
        "captured_at",
        "faces",
        "flags",
        "latency_ms",
    ]
    region = ev.Region.of(np.array([1.04, 2.06, 3.0, 4.0]), 0.123456, "held", 3)
    suspect = ev.RedactedFrame(REF, False, (region,), ("not_searched",), "covered_regions", 1.0)
    assert list(suspect.to_dict()) == [
        "frame_index", "timestamp_ms", "captured_at", "detected", "covered", "suspect", "action",
        "latency_ms",
    ]  # fmt: skip
    assert suspect.to_dict()["covered"] == [
        {"box": [1.0, 2.1, 3.0, 4.0], "score": 0.1235, "source": "held", "track_id": 3}
    ]
    # a flag's own timestamp (not rounded) replaces the frame's, where the frame's stood
    flag = ev.FlagRaised(REF, {"rule": "r", "timestamp_ms": 480.04}).to_dict()
    assert list(flag) == ["frame_index", "timestamp_ms", "captured_at", "rule"]
    assert flag["timestamp_ms"] == 480.04


def test_track_ended_carries_the_track_summary() -> None:
    assert ev.TrackEnded(4).to_dict() == {"track_id": 4}
    assert ev.TrackEnded(4, {"first_frame": 2, "track_id": 4}).to_dict() == {
        "track_id": 4,
        "first_frame": 2,
    }


def test_an_unknown_type_is_refused() -> None:
    class Odd:
        type = "odd"

        def to_dict(self) -> dict[str, Any]:
            return {}

    with pytest.raises(ValueError, match="unknown live event type"):
        ev.LiveEvent(Odd())


def test_summary_fields_by_mode() -> None:
    analyse = summary(redact=False).to_dict()
    assert "output" not in analyse and "error" not in analyse
    assert analyse["gaps"] == [GAP.to_dict()]
    assert analyse["latency_ms"] == {"p50": 12.5, "p99": 40.1, "max": 41.0}
    redact = summary(redact=True, error=ERROR).to_dict()
    assert list(redact)[len(analyse) :] == [
        "output", "frames_written", "frames_predicted", "frames_held", "detector_failures",
        "suspect_frames", "suspect_reasons", "error",
    ]  # fmt: skip
    assert list(redact["suspect_reasons"]) == ["after_damage", "not_searched"]  # sorted
    assert redact["error"] == {"code": "StreamLost", "message": "the stream ended"}
    assert valid("live_event", ev.EventCounter().make(summary(redact=True, error=ERROR)).to_dict())


def test_dropped_events_are_spaced_and_add_up() -> None:
    stats = SessionStats()
    assert stats.dropped(0, 100.0, force=False) is None  # nothing dropped
    stats.skipped = 2
    first = stats.dropped(1, 100.0, force=False)
    assert first == ev.Dropped(count=3, total=3, queue_overflow=1, skipped=2)
    stats.skipped = 4
    assert stats.dropped(1, 100.0 + DROPPED_EVERY_S / 2, force=False) is None  # too soon
    assert stats.dropped(1, 100.0 + DROPPED_EVERY_S, force=False) == ev.Dropped(2, 5, 1, 4)
    stats.skipped = 5
    assert stats.dropped(1, 100.0 + DROPPED_EVERY_S, force=True) == ev.Dropped(1, 6, 1, 5)
    assert stats.dropped(1, 200.0, force=True) is None  # all reported


def test_latency_and_suspect_counts() -> None:
    stats = SessionStats()
    assert stats.latency() == Latency(None, None, None)
    stats.latencies.extend([10.0, 20.0, 30.0])
    assert stats.latency() == Latency(20.0, 29.8, 30.0)
    stats.count_suspect(("corrupt_frame", "not_searched"))
    stats.count_suspect(("not_searched",))
    assert stats.suspect_frames == 2
    assert stats.suspect_reasons == {"corrupt_frame": 1, "not_searched": 2}
