"""Detection of a video's frames ahead of the tracker: on several sessions, or in batches.

Detection (one CenterFace pass per frame) is most of the time of video analysis. On the CPU,
``n`` onnxruntime sessions of one thread each, working on alternate frames in ``n`` threads
(onnxruntime releases the GIL), did more frames per second than one session of ``n`` threads,
with the same detections (docs/benchmarks.md, "Speed toward the limit"); ``n`` is the analyzer's
``num_threads`` (0: one per core), the cores the detector uses. On ``device="cuda"`` the
frames go to the GPU in batches of :data:`BATCH` instead (one network run each). Either way the
frames come back in their order, each with its detections, and a reader error part-way comes
after the frames read before it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

from mien.detect.centerface import CenterFace
from mien.detect.detections import Detections
from mien.detect.detector import DetectionPlan, FaceDetector
from mien.detect.frame import FrameDetector
from mien.detect.search import FrameSearch
from mien.media.video import VideoFrame
from mien.options import AnalyzerOptions

#: Frames per batched network run on a GPU.
BATCH = 8
#: Most one-thread sessions (beyond this a session of several threads does as well).
MAX_LANES = 8


def lane_count(options: AnalyzerOptions) -> int:
    """How many one-thread sessions detect on alternate frames: the detector's cores on the
    CPU (``num_threads``, 0: every core, at most :data:`MAX_LANES`), 1 on a GPU."""
    if options.device != "cpu":
        return 1
    return max(1, min(MAX_LANES, options.num_threads or _cores()))


def _cores() -> int:
    """The cores this process may use (its CPU affinity where the system has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class DetectionLanes:
    """Detects the frames of a video ahead of their use, in order (see the module's text).

    ``frames`` is the analyzer's own frame detector: used as it is with one lane and for
    batches on a GPU; with ``n > 1`` lanes each lane gets a one-thread session of its own.
    """

    def __init__(
        self,
        frames: FrameDetector,
        options: AnalyzerOptions,
        plan: DetectionPlan,
        search: FrameSearch,
    ) -> None:
        self.frames = frames
        self.batch = BATCH if options.device == "cuda" else 1
        count = lane_count(options)
        self.lanes = [
            FrameDetector(FaceDetector(CenterFace(num_threads=1)), plan, search)
            for _ in range(count if count > 1 else 0)
        ]

    def detected(self, frames: Iterable[VideoFrame]) -> Iterator[tuple[VideoFrame, Detections]]:
        """Each of ``frames`` with its detections, in order; an error of ``frames`` is raised
        after the frames before it."""
        failed: list[Exception] = []
        source = _until_error(frames, failed)
        if self.batch > 1:
            yield from self._batched(source)
        elif self.lanes:
            yield from self._alternate(source)
        else:
            for frame in source:
                yield frame, self.frames.detect(frame)
        if failed:
            raise failed[0]

    def _batched(self, frames: Iterator[VideoFrame]) -> Iterator[tuple[VideoFrame, Detections]]:
        group: list[VideoFrame] = []
        for frame in frames:
            group.append(frame)
            if len(group) == self.batch:
                yield from zip(group, self.frames.detect_many(group), strict=True)
                group = []
        if group:
            yield from zip(group, self.frames.detect_many(group), strict=True)

    def _alternate(self, frames: Iterator[VideoFrame]) -> Iterator[tuple[VideoFrame, Detections]]:
        n = len(self.lanes)
        pending: deque[tuple[VideoFrame, Future[Detections]]] = deque()
        with ExitStack() as stack:
            pools = [stack.enter_context(ThreadPoolExecutor(1, "mien-detect")) for _ in range(n)]
            for i, frame in enumerate(frames):
                pending.append((frame, pools[i % n].submit(self.lanes[i % n].detect, frame)))
                while len(pending) > 2 * n:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()


def _until_error(frames: Iterable[VideoFrame], failed: list[Exception]) -> Iterator[VideoFrame]:
    """``frames`` until one cannot be read; that error goes into ``failed`` instead of up."""
    it = iter(frames)
    while True:
        try:
            frame = next(it)
        except StopIteration:
            return
        except Exception as exc:  # raised again by DetectionLanes.detected, after the frames
            failed.append(exc)
            return
        yield frame
