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

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

from mien.detect.detections import Detections
from mien.detect.detector import DetectionPlan, FaceDetector
from mien.detect.search import FrameSearch
from mien.media.video import VideoFrame

#: Around a followed face, the search window reaches this many face sizes past each side.
ROI_MARGIN = 1.0
#: ... and at least this many pixels (of the searched copy).
ROI_MIN_PX = 32
#: When the windows around the followed faces take at least this share of the picture, the
#: whole picture is searched instead: it costs about the same and finds new faces too.
ROI_WHOLE_SHARE = 0.5


def roi_windows(
    boxes: npt.NDArray[np.float64], margin: float, width: int, height: int
) -> list[tuple[int, int, int, int]]:
    """Integer windows ``(x0, y0, x1, y1)`` around ``boxes``, grown by ``margin`` box sizes
    (at least :data:`ROI_MIN_PX`) on each side, cut to the picture, overlapping ones joined."""
    wins: list[list[int]] = []
    for x0, y0, x1, y1 in boxes:
        if not np.isfinite([x0, y0, x1, y1]).all():
            continue
        grow = max(margin * max(x1 - x0, y1 - y0), ROI_MIN_PX)
        w = [
            max(0, int(np.floor(x0 - grow))),
            max(0, int(np.floor(y0 - grow))),
            min(width, int(np.ceil(x1 + grow))),
            min(height, int(np.ceil(y1 + grow))),
        ]
        if w[2] > w[0] and w[3] > w[1]:
            wins.append(w)
    joined = True
    while joined:  # join until no two windows overlap
        joined = False
        for i in range(len(wins)):
            for j in range(i + 1, len(wins)):
                a, c = wins[i], wins[j]
                if a[0] < c[2] and c[0] < a[2] and a[1] < c[3] and c[1] < a[3]:
                    wins[i] = [min(a[0], c[0]), min(a[1], c[1]), max(a[2], c[2]), max(a[3], c[3])]
                    del wins[j]
                    joined = True
                    break
            if joined:
                break
    return [(w[0], w[1], w[2], w[3]) for w in wins]


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

    def detect_around(
        self, frame: VideoFrame, boxes: npt.ArrayLike, margin: float = ROI_MARGIN
    ) -> Detections:
        """The faces of ``frame`` searched only in windows around ``boxes`` (full-frame px,
        (N, 4)): each box grown by ``margin`` box sizes (at least :data:`ROI_MIN_PX` px) on every
        side, overlapping windows joined, each searched at the size :meth:`detect` searches the
        whole frame. Same output as :meth:`detect`; no window: no face. Windows that take
        :data:`ROI_WHOLE_SHARE` of the picture or more: the whole frame (:meth:`detect`)."""
        if self.search.all_passes or frame.scaled is None:
            return self.detect(frame)
        img, scale = frame.scaled, frame.scale
        b = np.asarray(boxes, np.float64).reshape(-1, 4) * scale
        wins = roi_windows(b, margin, img.shape[1], img.shape[0])
        area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in wins)
        if area >= ROI_WHOLE_SHARE * img.shape[0] * img.shape[1]:
            return self.detect(frame)
        parts = [
            self.detector.detect(np.ascontiguousarray(img[y0:y1, x0:x1]), self.copy_plan).map_back(
                1.0, x0, y0
            )
            for x0, y0, x1, y1 in wins
        ]
        found = Detections.merge(parts) if parts else Detections.empty()
        if scale != 1.0:
            found = found.map_back(scale)
        return self._plan.select(found.clip(frame.width, frame.height))

    def detect(self, frame: VideoFrame) -> Detections:
        """The faces of one frame in its full-size pixels, best score first."""
        if self.search.all_passes or frame.scaled is None:
            if frame.rgb is None:
                raise ValueError("all_passes needs the full-size frame")
            return self.detector.detect(frame.rgb, self._plan)
        return self._full_size(self.detector.detect(frame.scaled, self.copy_plan), frame)

    def detect_many(self, frames: Sequence[VideoFrame]) -> list[Detections]:
        """:meth:`detect` of each of ``frames``, their copies searched in one batched network
        run where :meth:`FaceDetector.detect_many` can (the same results)."""
        copies = [f.scaled for f in frames if f.scaled is not None]
        if self.search.all_passes or len(copies) != len(frames):
            return [self.detect(f) for f in frames]
        found = self.detector.detect_many(copies, self.copy_plan)
        return [self._full_size(d, f) for d, f in zip(found, frames, strict=True)]

    def _full_size(self, found: Detections, frame: VideoFrame) -> Detections:
        """Faces found on ``frame``'s copy, in the frame's pixels, kept as ``plan`` says."""
        if frame.scale != 1.0:
            found = found.map_back(frame.scale)
        return self._plan.select(found.clip(frame.width, frame.height))
