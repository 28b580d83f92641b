"""Following faces from frame to frame of a video (multi-object tracking of boxes).

:class:`Tracker` gives every detection of a frame a ``track_id`` that stays the same while the
face moves, predicts where a face is in frames where detection misses it (constant velocity),
and ends a track after a few frames without a matching detection. A track id only links
detections within one video: it is not an identity and is never stored across videos.
"""

from __future__ import annotations

from mien.track.assign import greedy_assign
from mien.track.tracker import Track, Tracker, TrackerOptions

__all__ = ["Track", "Tracker", "TrackerOptions", "greedy_assign"]
