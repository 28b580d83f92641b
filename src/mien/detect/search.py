"""How a video frame is searched for faces: the options video analysis, video redaction and
live sessions share (:class:`mien.detect.frame.FrameDetector` runs them).

Kept free of heavy imports: the option classes that embed it are read by the CLI for its
defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameSearch:
    """One detector pass per frame on a shrunk copy, or the still-image plan on the full frame.

    * ``side``: longer side (px) of the copy the detector runs on (0: the full frame); a frame
      already that small is searched as it is.
    * ``all_passes``: run the still-image detection plan (upscaled, mirrored and tiled passes)
      on the full frame instead (slow, thorough).
    """

    side: int = 0
    all_passes: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.side, int) or not (self.side == 0 or 64 <= self.side <= 8192):
            raise ValueError(f"detect_side must be 0 or in 64..8192, got {self.side!r}")

    @property
    def scaled_side(self) -> int | None:
        """The longer side of the copy a video reader should hand out (None: none)."""
        return self.side or None

    @property
    def full_frame(self) -> bool:
        """Whether detection needs the full-size frame from the reader."""
        return self.all_passes or not self.side
