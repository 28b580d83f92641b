"""Where a live stream comes from: recognising stream addresses and opening them with PyAV.

A *stream source* is read as it arrives rather than from a file of known length:

* ``rtsp://`` / ``rtsps://`` (IP cameras; TCP transport by default),
* ``rtmp://`` / ``rtmps://`` (a media server; with ``listen=True`` mien itself is the server
  an encoder such as OBS publishes to),
* ``http://`` / ``https://`` addresses of an HLS playlist (path ending in ``.m3u8``),
* a local camera ``/dev/videoN`` (Video4Linux2),
* ``-``: a stream piped into standard input (any container FFmpeg can read from a pipe,
  e.g. MPEG-TS or Matroska; ``input_format`` names it when probing cannot).

Credentials in an address (``rtsp://user:secret@camera/...``) are never written to events or
logs: :func:`display_url` hides them.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

from mien.live.guard import Guarded, open_guarded
from mien.live.outbound import OutboundPolicy

SourceKind = Literal["rtsp", "rtmp", "hls", "v4l2", "pipe", "file"]

_NETWORK_SCHEMES: Final[dict[str, SourceKind]] = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "rtmp": "rtmp",
    "rtmps": "rtmp",
}
_DEVICE = re.compile(r"^/dev/video\d+$")


def source_kind(address: str) -> SourceKind | None:
    """The kind of stream ``address`` names, or None when it is not a stream address."""
    if not isinstance(address, str) or not address:
        return None
    if address == "-":
        return "pipe"
    if _DEVICE.match(address):
        return "v4l2"
    parts = urlsplit(address)
    scheme = parts.scheme.lower()
    if scheme in _NETWORK_SCHEMES:
        return _NETWORK_SCHEMES[scheme]
    if scheme in ("http", "https") and parts.path.lower().endswith(".m3u8"):
        return "hls"
    return None


def is_stream_url(address: object) -> bool:
    """True for the live-stream addresses mien reads as streams: ``rtsp(s)://``,
    ``rtmp(s)://``, ``http(s)://...m3u8`` and ``/dev/videoN``.

    ``-`` is not one by itself (``mien analyze -`` reads one picture from stdin); the CLI's
    ``--stream`` option reads standard input as a live stream.
    """
    return isinstance(address, str) and source_kind(address) not in (None, "pipe")


_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]+@")


def hide_credentials(text: str) -> str:
    """``text`` (an error message, a log line) with the user name and password of every URL in
    it replaced by ``***`` — FFmpeg's messages repeat the address they failed on."""
    return _CREDENTIALS.sub(r"\1***@", text)


def display_url(address: str) -> str:
    """``address`` with any user name and password replaced by ``***`` (safe to log)."""
    parts = urlsplit(address)
    if parts.username is None and parts.password is None:
        return address
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class StreamSource:
    """A stream address and how to open it.

    * ``address``: the URL, device path or ``-``; a plain file path is accepted too (kind
      ``"file"``; useful with ``realtime=True`` to replay a recording as if it were live).
    * ``input_format``: FFmpeg demuxer name when it cannot be probed (pipes: ``mpegts``...).
    * ``listen``: for ``rtmp://``, accept one publisher instead of connecting to a server.
    * ``open_timeout_s`` / ``read_timeout_s``: give up opening / waiting for data after this.
    * ``options``: extra FFmpeg options passed to the demuxer/protocol (strings).
    * ``policy``: an :class:`~mien.live.outbound.OutboundPolicy`: network addresses are then
      opened only where it allows, for the first connection and every one FFmpeg would
      make afterwards (see :mod:`mien.live.guard`), and a failure to open is reported as a
      plain "source unreachable" (the reason goes to the ``mien.live`` log only). The
      HTTP service always sets one; the ``mien live`` command does not.
    """

    address: str
    input_format: str | None = None
    listen: bool = False
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    options: dict[str, str] = field(default_factory=dict)
    policy: OutboundPolicy | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address:
            raise ValueError("a stream source needs an address")
        if not (0 < self.open_timeout_s < math.inf and 0 < self.read_timeout_s < math.inf):
            raise ValueError("timeouts must be > 0 seconds")
        if self.listen and self.kind != "rtmp":
            raise ValueError("listen is only supported for rtmp:// addresses")
        if self.policy is not None and (self.listen or not self.is_network):
            raise ValueError("an outbound policy applies to rtsp, rtmp and HLS addresses only")

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.address) or "file"

    @property
    def display(self) -> str:
        return display_url(self.address)

    @property
    def is_network(self) -> bool:
        return self.kind in ("rtsp", "rtmp", "hls")

    def demuxer_options(self) -> dict[str, str]:
        """FFmpeg options for this kind of source (the caller's ``options`` win)."""
        opts: dict[str, str] = {}
        kind = self.kind
        if kind == "rtsp":
            opts.update(rtsp_transport="tcp", rtsp_flags="prefer_tcp")
        elif kind == "rtmp":
            if self.listen:
                opts["listen"] = "1"
        elif kind == "hls":
            # Re-try a playlist or segment request that fails for a moment; start at the live
            # edge of a live playlist (FFmpeg's default: 3 segments from the end).
            opts.update(http_persistent="1", reconnect="1", reconnect_on_network_error="1")
            opts.setdefault("reconnect_delay_max", "4")
        opts.update(self.options)
        return opts

    def connect(self) -> Guarded:
        """Open the source; its ``container`` is PyAV's input, and ``close()`` closes it with
        whatever the policy needed to open it (a relay). Errors as :meth:`open`."""
        if self.policy is None:
            return Guarded(self.open())
        timeout = (self.open_timeout_s, self.read_timeout_s)
        return open_guarded(self.address, self.kind, self.demuxer_options(), self.policy, timeout)

    def open(self) -> Any:
        """Open the source with PyAV; returns an ``av.container.InputContainer``.

        Raises PyAV's errors (``av.error.FFmpegError``, an ``OSError``) when it cannot be
        opened; the caller decides whether to try again. A source with a ``policy`` is opened
        with :meth:`connect`.
        """
        import av

        if self.policy is not None:
            raise ValueError("a source with an outbound policy is opened with connect()")

        fmt = self.input_format
        target: Any = self.address
        kind = self.kind
        if kind == "pipe":
            target = sys.stdin.buffer
        elif kind == "v4l2" and fmt is None:
            fmt = "video4linux2"
        opts = self.demuxer_options()
        # A pipe has no network to wait for; everything else gives up after the timeouts
        # (which is also how a stop request reaches a read that is waiting for data).
        timeout = None if kind == "pipe" else (self.open_timeout_s, self.read_timeout_s)
        return av.open(target, mode="r", format=fmt, options=opts, timeout=timeout)
