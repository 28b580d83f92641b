"""The per-frame decision of a live session, without a stream (mien.live.schedule)."""

from __future__ import annotations

import pytest

from mien.live.schedule import MAX_UNSEARCHED_MS, Action, FrameState, schedule

NEVER = -1e18  # no frame searched yet


def decide(
    ts: float,
    *,
    waiting: int = 0,
    waited_ms: float = 5.0,
    last_detect_ms: float = NEVER,
    redacting: bool = True,
    every: float = 200.0,
    max_delay: float = 1000.0,
) -> Action:
    frame = FrameState(
        timestamp_ms=ts, waited_ms=waited_ms, waiting=waiting, last_detect_ms=last_detect_ms
    )
    return schedule(frame, redacting=redacting, detect_every_ms=every, max_delay_ms=max_delay)


@pytest.mark.parametrize(
    ("waiting", "waited_ms", "expected"),
    [
        (0, 5.0, "analyse"),  # caught up
        (0, 5000.0, "analyse"),  # late but nothing newer waits: still the freshest frame
        (1, 5.0, "drop"),  # behind: the tracker carries faces across the dropped frame
        (30, 5000.0, "drop"),
    ],
)
def test_analysis_analyses_when_caught_up_and_drops_when_behind(
    waiting: int, waited_ms: float, expected: Action
) -> None:
    assert decide(1000.0, waiting=waiting, waited_ms=waited_ms, redacting=False) == expected
    # the time since the last search plays no part in analysis
    got = decide(
        1000.0, waiting=waiting, waited_ms=waited_ms, last_detect_ms=999.0, redacting=False
    )
    assert got == expected


@pytest.mark.parametrize(
    ("ts", "last", "waiting", "waited_ms", "expected"),
    [
        # caught up: every frame is searched, however recent the last search
        (1000.0, 990.0, 0, 5.0, "detect"),
        (1000.0, NEVER, 0, 5000.0, "detect"),  # waited long, but nothing newer waits
        # behind, search not due yet: covered where the faces are predicted
        (1000.0, 900.0, 1, 5.0, "predict"),
        (1000.0, 801.0, 2, 5.0, "predict"),
        # behind, due (detect_every_ms = 200 elapsed) with a short backlog: searched
        (1000.0, 800.0, 1, 5.0, "detect"),
        (1000.0, 800.0, 2, 5.0, "detect"),
        # due, but the backlog would grow: predicted until overdue
        (1000.0, 800.0, 3, 5.0, "predict"),
        (1000.0, 100.0, 30, 5.0, "predict"),
        # overdue (MAX_UNSEARCHED_MS): searched whatever the backlog
        (1000.0, 1000.0 - MAX_UNSEARCHED_MS, 30, 5.0, "detect"),
        (5000.0, NEVER, 30, 5.0, "detect"),
        # behind and waited past max_delay_ms: dropped, never written
        (1000.0, NEVER, 1, 1000.1, "drop"),
        (1000.0, 800.0, 1, 2000.0, "drop"),
        # exactly max_delay_ms is not past it
        (1000.0, 800.0, 1, 1000.0, "detect"),
    ],
)
def test_redaction_decision_table(
    ts: float, last: float, waiting: int, waited_ms: float, expected: Action
) -> None:
    got = decide(ts, waiting=waiting, waited_ms=waited_ms, last_detect_ms=last)
    assert got == expected


def test_detect_every_zero_searches_when_the_backlog_is_short() -> None:
    """``detect_every_ms=0``: every frame is due; only a long backlog turns to prediction."""
    assert decide(1000.0, waiting=2, last_detect_ms=1000.0, every=0.0) == "detect"
    assert decide(1000.0, waiting=3, last_detect_ms=999.0, every=0.0) == "predict"


def test_a_long_detect_interval_is_also_the_overdue_bound() -> None:
    """With ``detect_every_ms`` above MAX_UNSEARCHED_MS, a long backlog waits for it."""
    every = 3 * MAX_UNSEARCHED_MS
    assert decide(2000.0, waiting=5, last_detect_ms=0.0, every=every) == "predict"
    assert decide(3000.0, waiting=5, last_detect_ms=0.0, every=every) == "detect"
    assert decide(3000.0, waiting=1, last_detect_ms=0.1, every=every) == "predict"


def test_a_smaller_max_delay_drops_sooner() -> None:
    assert decide(1000.0, waiting=1, waited_ms=150.0, max_delay=100.0) == "drop"
    assert decide(1000.0, waiting=0, waited_ms=150.0, max_delay=100.0) == "detect"
