"""A bounded hand-over between the decoder thread and the analysis loop.

Decoded frames wait here until the analysis loop takes them. When more than ``max_frames``
frames wait, the oldest waiting frame is dropped (and counted) rather than letting memory and
latency grow without limit. Other items (audio packets, connection notices) are never dropped:
they are small, and losing them would break the output or the event log.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class FrameBuffer:
    def __init__(self, max_frames: int) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        self.max_frames = max_frames
        self._items: deque[tuple[bool, Any]] = deque()
        self._frames = 0
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: Any, *, is_frame: bool) -> None:
        with self._cond:
            if is_frame:
                if self._frames >= self.max_frames:
                    for i, (f, _) in enumerate(self._items):
                        if f:
                            del self._items[i]
                            self._frames -= 1
                            self.dropped += 1
                            break
                self._frames += 1
            self._items.append((is_frame, item))
            self._cond.notify_all()

    def close(self) -> None:
        """No more items will come; :meth:`get` returns None once the buffer is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> tuple[bool, Any] | None:
        """The oldest item as ``(is_frame, item)``; None when closed and empty, or on timeout."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            is_frame, item = self._items.popleft()
            if is_frame:
                self._frames -= 1
            return is_frame, item

    @property
    def frames_waiting(self) -> int:
        with self._cond:
            return self._frames

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._items
