"""Signs that a decoded video frame may not show what was recorded.

A damaged stream (bit errors, lost packets, a cut file) often still decodes: FFmpeg *conceals*
the damage by copying or smearing nearby pixels, and a face in the concealed area can come out
garbled enough for the detector to miss it while a viewer still recognises it. Redaction must
then not trust its own "no face here" (docs/redaction.md, "Fail closed"), so the readers hand
each frame the reasons it may be damaged, in this vocabulary:

* ``corrupt_frame``: the decoder flagged the frame itself (``AV_FRAME_FLAG_CORRUPT`` or a
  ``decode_error_flags`` value, e.g. concealment active: PyAV's ``frame.is_corrupt``);
* ``decode_error``: a packet just before this frame failed to decode (its picture is lost and
  later frames may have referenced it);
* ``timestamp_gap``: the frame comes more than :data:`GAP_FACTOR` frame intervals after the one
  before (frames are missing; only this frame is flagged, since a gap alone is also how a
  variable-frame-rate recording pauses, and frames that referenced the lost ones are flagged
  by the decoder itself);
* ``after_damage``: an earlier frame was damaged and no clean key frame has come since, so this
  frame may be predicted from damaged pictures.

:class:`DamageWatch` turns the decoder's events into these reasons; the file reader
(:class:`mien.media.video.VideoReader`) and the live decoder use the same one.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AFTER_DAMAGE",
    "CORRUPT_FRAME",
    "DAMAGE_REASONS",
    "DECODE_ERROR",
    "GAP_FACTOR",
    "TIMESTAMP_GAP",
    "DamageWatch",
]

CORRUPT_FRAME: Final[str] = "corrupt_frame"
DECODE_ERROR: Final[str] = "decode_error"
TIMESTAMP_GAP: Final[str] = "timestamp_gap"
AFTER_DAMAGE: Final[str] = "after_damage"

#: Every reason a frame may carry, with the sentence reports and docs use for it.
DAMAGE_REASONS: Final[dict[str, str]] = {
    CORRUPT_FRAME: "the decoder flagged this frame as corrupt (errors concealed)",
    DECODE_ERROR: "a packet before this frame could not be decoded",
    TIMESTAMP_GAP: "frames are missing before this one (timestamp gap)",
    AFTER_DAMAGE: "predicted from damaged frames (no clean key frame since the damage)",
}

#: A timestamp step larger than this many frame intervals counts as missing frames.
GAP_FACTOR: Final[float] = 2.5


class DamageWatch:
    """Feed it one stream's decoder events in order; it says why each frame may be damaged.

    >>> watch = DamageWatch(step_ms=40.0)
    >>> watch.frame(corrupt=False, key=True, timestamp_ms=0.0)
    ()
    >>> watch.packet_failed()
    >>> watch.frame(corrupt=False, key=False, timestamp_ms=80.0)
    ('decode_error',)
    >>> watch.frame(corrupt=False, key=False, timestamp_ms=120.0)
    ('after_damage',)
    >>> watch.frame(corrupt=False, key=True, timestamp_ms=160.0)
    ()
    """

    def __init__(self, step_ms: float | None = None) -> None:
        """``step_ms``: the stream's nominal frame interval (None: learnt from the frames)."""
        self.step_ms = step_ms if step_ms and step_ms > 0 else None
        self._learnt: float | None = None
        self._failed = 0
        self._damaged = False
        self._last_ms: float | None = None
        self.frames_flagged = 0

    def packet_failed(self) -> None:
        """A packet of the stream could not be decoded."""
        self._failed += 1

    def reset(self) -> None:
        """Forget the damage state (a new connection starts with a key frame of its own)."""
        self._failed = 0
        self._damaged = False
        self._last_ms = None

    def frame(self, *, corrupt: bool, key: bool, timestamp_ms: float | None) -> tuple[str, ...]:
        """The damage reasons of the next decoded frame (empty when none)."""
        reasons: list[str] = []
        if corrupt:
            reasons.append(CORRUPT_FRAME)
        if self._failed:
            reasons.append(DECODE_ERROR)
            self._failed = 0
        if reasons:
            self._damaged = True
        elif key:
            self._damaged = False
        elif self._damaged:
            reasons.append(AFTER_DAMAGE)
        if self._gap(timestamp_ms):
            reasons.append(TIMESTAMP_GAP)
        if reasons:
            self.frames_flagged += 1
        return tuple(reasons)

    def _gap(self, ts: float | None) -> bool:
        if ts is None:
            return False
        last, self._last_ms = self._last_ms, ts
        if last is None or ts <= last:
            return False
        delta = ts - last
        step = self.step_ms or self._learnt
        if self.step_ms is None:  # learn the smallest interval seen so far
            self._learnt = delta if self._learnt is None else min(self._learnt, delta)
        return step is not None and delta > GAP_FACTOR * step
