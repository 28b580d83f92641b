"""What a live session does with each decoded frame: a pure decision, tested without a stream.

The loop of :class:`mien.live.LiveSession` asks :func:`schedule` once per frame and does what
it says. The decision depends only on the frame's stream time, how long it has waited, how
many frames wait behind it, when the detector last ran and the session's options:

* **analysis**: a frame is analysed when the loop is caught up (no frame waits behind it),
  else dropped: the tracker carries the faces across dropped frames, so track ids stay stable;
* **redaction**: every frame is written, covered. It is searched for faces (``"detect"``)
  when the loop is caught up; when behind, it is still searched every ``detect_every_ms`` of
  stream time unless that would let the backlog grow past :data:`MAX_BACKLOG_FOR_DUE` frames,
  and in any case after :data:`MAX_UNSEARCHED_MS`: a face that enters the picture must be found
  even if the queue overflows for it (dropped frames never leak). Otherwise it is covered where
  the tracker predicts the faces (``"predict"``). A frame that has waited longer than
  ``max_delay_ms`` while newer ones wait is dropped: too late to show, never written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

#: What the loop does with one frame: analyse it (analysis), search and cover it (redaction),
#: cover it where the faces are predicted (redaction), or drop it (counted as skipped).
Action = Literal["analyse", "detect", "predict", "drop"]

#: In redaction, a frame is searched for faces at least this often (ms of stream time), even
#: when the loop is behind.
MAX_UNSEARCHED_MS: Final[float] = 1000.0

#: When behind, a search that is merely due (``detect_every_ms``) waits while more frames than
#: this wait behind the frame.
MAX_BACKLOG_FOR_DUE: Final[int] = 2


@dataclass(frozen=True)
class FrameState:
    """What :func:`schedule` knows of one frame and of the loop when the frame is taken."""

    timestamp_ms: float  # the frame's stream time
    waited_ms: float  # since it was decoded
    waiting: int  # decoded frames waiting behind it
    last_detect_ms: float  # stream time of the last frame the detector ran on


def schedule(
    frame: FrameState,
    *,
    redacting: bool,
    detect_every_ms: float,
    max_delay_ms: float,
) -> Action:
    """The :data:`Action` for ``frame`` (see the module's docstring for the rules)."""
    behind = frame.waiting > 0
    if not redacting:
        return "drop" if behind else "analyse"
    if not behind:
        return "detect"
    if frame.waited_ms > max_delay_ms:
        return "drop"
    since = frame.timestamp_ms - frame.last_detect_ms
    due = since >= detect_every_ms and frame.waiting <= MAX_BACKLOG_FOR_DUE
    overdue = since >= max(MAX_UNSEARCHED_MS, detect_every_ms)
    return "detect" if due or overdue else "predict"
