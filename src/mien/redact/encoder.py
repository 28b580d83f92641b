"""The cover-and-encode stage of video redaction, on its own thread.

Video redaction runs as three stages that overlap on the machine's cores: decoding (the
:class:`mien.media.video.VideoReader` thread), detection and tracking (the caller's thread) and
covering plus encoding (:class:`EncodeStage`). The native code of each stage (FFmpeg,
onnxruntime, OpenCV) releases the GIL. Jobs pass through a bounded queue, so a slow encoder holds
the detector back instead of piling up decoded frames.

Fail closed: an exception in the stage (a full disk, an encoder error) is kept and raised again
in the caller's thread at its next :meth:`EncodeStage.put` or at :meth:`EncodeStage.close`; the
caller then discards the output. :meth:`EncodeStage.abort` stops the thread without writing the
rest; no thread is left running after either.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["EncodeStage"]

_END = object()


class EncodeStage:
    """Runs ``work(job)`` for every job put, in order, on one thread.

    ``seconds`` adds up the time spent in ``work`` (for the stage profile).
    """

    def __init__(self, work: Callable[[Any], None], queue_size: int = 8) -> None:
        self._work = work
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="mien-video-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _END or self._stop.is_set():
                return
            t = time.perf_counter()
            try:
                self._work(job)
            except BaseException as exc:  # raised again in the caller's thread
                self._error = exc
                self._stop.set()
                self._drain()
                return
            self.seconds += time.perf_counter() - t

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, job: Any) -> None:
        """Queue one job (waits while the queue is full); raises the stage's error if it
        failed."""
        while True:
            self._check()
            if self._stop.is_set():
                raise RuntimeError("the encode stage was stopped")
            try:
                self._queue.put(job, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait until every job is done; raises the stage's error if it failed."""
        if self._thread.is_alive():
            self.put(_END)
            self._thread.join()
        self._check()

    def abort(self) -> None:
        """Stop without doing the jobs still queued; returns once the thread has ended."""
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_END)
            self._thread.join(timeout=0.05)
