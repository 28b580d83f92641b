"""Options of a live session (validated on construction).

:class:`LiveOptions` holds every live default in one place: the CLI (:mod:`mien.cli.live`)
reads them from here (:func:`mien.cli.common.default_of`) rather than repeating them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mien.detect.search import FrameSearch
from mien.live.decoder import ReconnectPolicy
from mien.redact.suspect import OnSuspect, validate_on_suspect


@dataclass(frozen=True)
class LiveOptions:
    """How a live stream is read and how far analysis may fall behind.

    * ``queue_frames``: decoded frames that may wait for analysis; when more arrive, the
      oldest is dropped (and counted). Bounds memory and latency.
    * ``reconnect``: the :class:`ReconnectPolicy` for a source that drops.
    * ``realtime``: pace a recorded source (a file, a pipe) at its own frame rate, as if live.
    * ``duration_s``: stop after this many seconds of wall-clock time (None: until the
      stream ends or :meth:`LiveSession.stop`).
    * ``max_frames``: stop after this many decoded frames (None: no limit).
    * ``track_max_missed``: a track ends (``track_ended``) after this many searched frames in
      a row without its face (the tracker's ``max_missed``).
    * ``detect_max_side``: the detector runs on a copy of the frame shrunk so its longer side
      is at most this many px (None: the full frame), as in video mode (``detect_side``);
      validated as :attr:`search`, the :class:`FrameSearch` video mode runs (so a side video
      mode refuses is refused here, not when the session starts).
    * ``detect_every_ms``: in redaction, search a frame for faces at least this often (stream
      time) even when behind; frames in between are covered where the tracker predicts the
      faces (0: search every frame; falling behind then drops frames instead).
    * ``max_delay_ms``: in redaction, a frame that has waited longer than this while newer
      frames wait too is dropped rather than written late (bounds the added latency).
    * ``hold_ms``: in redaction, keep covering the last known area of every face seen in the
      last ``hold_ms`` whatever the detector says, also when it fails or misses the face.
    * ``on_suspect``: in redaction, what to do with a *suspect* frame (damaged in decoding, or
      not searched for faces: :mod:`mien.redact.suspect`): ``"cover"`` (default) also covers
      the known regions grown :data:`~mien.redact.suspect.SUSPECT_GROWTH` times, or the whole
      frame when no face is known; ``"fail"`` ends the session with
      :class:`mien.errors.SuspectFramesError`; ``"keep"`` writes it covered as usual. Every
      suspect frame is reported whatever the choice (docs/live.md, "Fail closed").
    * ``hls_time`` / ``hls_list_size``: segment length (s) and playlist length (0: all) for
      HLS folder output.
    * ``audio``: pass the source's audio through to the redacted output.
    """

    queue_frames: int = 30
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    realtime: bool = False
    duration_s: float | None = None
    max_frames: int | None = None
    track_max_missed: int = 5
    detect_max_side: int | None = 640
    detect_every_ms: float = 200.0
    max_delay_ms: float = 1000.0
    hold_ms: float = 2000.0
    on_suspect: OnSuspect = "cover"
    hls_time: float = 2.0
    hls_list_size: int = 0
    audio: bool = True
    search: FrameSearch = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        times = (self.duration_s or 1.0, self.detect_every_ms, self.max_delay_ms, self.hold_ms)
        if not all(math.isfinite(float(t)) for t in times):
            # inf/NaN would turn off the 'search at least this often' promise (a NaN compares
            # false with everything)
            raise ValueError("durations must be finite numbers")
        if self.queue_frames < 1:
            raise ValueError("queue_frames must be >= 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        if self.track_max_missed < 0 or self.hold_ms < 0:
            raise ValueError("track_max_missed and hold_ms must be >= 0")
        if self.detect_every_ms < 0 or self.max_delay_ms <= 0:
            raise ValueError("detect_every_ms must be >= 0 and max_delay_ms > 0")
        if self.detect_max_side is not None and self.detect_max_side < 64:
            raise ValueError("detect_max_side must be >= 64 px")
        object.__setattr__(self, "search", FrameSearch(self.detect_max_side or 0))
        if not 0.5 <= self.hls_time <= 60 or self.hls_list_size < 0:
            raise ValueError("hls_time must lie in [0.5, 60] s and hls_list_size be >= 0")
        validate_on_suspect(self.on_suspect)
