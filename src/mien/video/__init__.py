"""Video mode: face analysis of every (selected) frame of a video, with face tracks.

* :class:`VideoAnalyzer` / :func:`analyze_video` — see :mod:`mien.video.analyzer`.
* :class:`FrameResult`, :class:`TrackSummary`, :class:`VideoResult` — the records
  (docs/output.md, "Video").
"""

from __future__ import annotations

from mien.video.analyzer import VideoAnalyzer, VideoOptions, analyze_video
from mien.video.records import FrameResult, TrackSummary, VideoResult

__all__ = [
    "FrameResult",
    "TrackSummary",
    "VideoAnalyzer",
    "VideoOptions",
    "VideoResult",
    "analyze_video",
]
