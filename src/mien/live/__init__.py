"""Live streams: analyse and redact faces in RTSP / RTMP / HLS / camera / piped streams.

* :func:`is_stream_url` — whether an address is read as a live stream.
* :class:`LiveSession` — decode, detect, track; ``events()`` yields :class:`LiveEvent`
  records as they happen (``to_dict()`` is JSON-ready); with ``redact=RedactOptions()`` and an
  ``output`` it also writes the stream with every face covered.
* :func:`stream_events` — the same as a one-call generator.
* :class:`LiveOptions`, :class:`ReconnectPolicy`, :class:`StreamSource` — how it is read.

See docs/live.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mien.live.decoder import ReconnectPolicy
from mien.live.events import EVENT_TYPES, LiveEvent
from mien.live.options import LiveOptions
from mien.live.session import LiveSession
from mien.live.source import StreamSource, display_url, is_stream_url, source_kind

__all__ = [
    "EVENT_TYPES",
    "LiveEvent",
    "LiveOptions",
    "LiveSession",
    "ReconnectPolicy",
    "StreamSource",
    "display_url",
    "is_stream_url",
    "source_kind",
    "stream_events",
]


def stream_events(source: str | StreamSource, **kwargs: Any) -> Iterator[LiveEvent]:
    """Events of a :class:`LiveSession` on ``source`` (keyword arguments as for the session).

    Closing the generator (``break`` out of the loop) ends the session cleanly.
    """
    return LiveSession(source, **kwargs).events()
