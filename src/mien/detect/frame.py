"""Detection on video frames: search a shrunk copy, map the faces back to the full frame.

The pass cost grows with the pixels, so video analysis, video redaction and live sessions
search each frame on a copy whose longer side is :attr:`FrameSearch.side` px (measured frames/s
in docs/benchmarks.md). The copy comes from the video reader (``VideoFrame.scaled``, made while
decoding) or, for frames given as arrays, from :meth:`FrameDetector.frame`; this module owns
the way back: faces mapped to full-size pixels, cut to the frame, then ``min_face`` and
``max_faces`` applied there (:meth:`DetectionPlan.select`), so they mean the same as on a still
image.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

from mien.detect.detections import Detections
from mien.detect.detector import DetectionPlan, FaceDetector
from mien.detect.search import FrameSearch
from mien.media.video import VideoFrame


class FrameDetector:
    """Finds the faces of video frames as ``search`` says, keeping what ``plan`` keeps.

    ``plan`` is the still-image plan (threshold, ``min_face``, ``max_faces``, rotation search);
    a shrunk copy is searched with one pass of it at the copy's size.
    """

    def __init__(self, detector: FaceDetector, plan: DetectionPlan, search: FrameSearch) -> None:
        self.detector = detector
        self.search = search
        self._plan = plan
        #: The one pass on a shrunk copy (``min_face`` and ``max_faces`` wait for full size).
        self.copy_plan = replace(
            plan,
            min_face=0.0,
            max_faces=None,
            global_max_side=1 << 30,
            upscale=1.0,
            upscale_flip=False,
            tiling=False,
        )

    def frame(self, rgb: npt.NDArray[np.uint8], index: int, timestamp_ms: float) -> VideoFrame:
        """A frame given as an upright (H, W, 3) uint8 array, with the copy the detector
        searches (as a video reader makes it while decoding)."""
        h, w = rgb.shape[:2]
        scale = 1.0
        scaled = rgb
        side = self.search.side
        if side and max(h, w) > side and not self.search.all_passes:
            scale = side / max(h, w)
            size = (max(2, round(w * scale)), max(2, round(h * scale)))
            scaled = np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
            scale = (size[0] / w + size[1] / h) / 2
        return VideoFrame(index, float(timestamp_ms), rgb, scaled, scale, w, h)

    def detect(self, frame: VideoFrame) -> Detections:
        """The faces of one frame in its full-size pixels, best score first."""
        if self.search.all_passes or frame.scaled is None:
            if frame.rgb is None:
                raise ValueError("all_passes needs the full-size frame")
            return self.detector.detect(frame.rgb, self._plan)
        found = self.detector.detect(frame.scaled, self.copy_plan)
        if frame.scale != 1.0:
            found = found.map_back(frame.scale)
        return self._plan.select(found.clip(frame.width, frame.height))
