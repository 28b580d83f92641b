"""The decoder thread: reads a stream as it arrives, reconnects when it drops.

:class:`StreamDecoder` runs in its own thread. It opens the :class:`StreamSource`, demuxes
video (and, for redaction, audio) packets, decodes video frames to RGB and hands everything to
a :class:`FrameBuffer`, which drops the oldest frames when the analysis loop falls behind.

When the source fails (network error, a server that goes away, a read that times out) it
tries again after 0.5 s, 1 s, 2 s... (up to ``ReconnectPolicy.max_delay_s``), at most
``max_retries`` times in a row, and tells the analysis loop through :class:`Notice` items, so
the session can report ``reconnecting`` and ``gap`` events.

Damage: each connection has its own :class:`mien.media.damage.DamageWatch`, fed with the
decoder's events (a packet that fails to decode, a frame the decoder flags as corrupt, a
timestamp gap), and every :class:`DecodedFrame` carries the reasons it may be damaged
(``damage``). A new connection after a drop starts in the middle of the stream: until its
first clean key frame, its frames count as ``after_damage`` too (they may be predicted from
pictures this connection never received).

Authentication: a server that refuses the credentials (401/403) is not asked again; the
session ends with reason ``unauthorized``.

Timestamps: ``timestamp_ms`` is the stream's own presentation time, counted from the first
frame of the session, made continuous across reconnects: a new connection continues after the
last frame before the drop plus the wall-clock length of the gap.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mien.live.buffer import FrameBuffer
from mien.live.source import StreamSource, hide_credentials
from mien.media.damage import AFTER_DAMAGE, DamageWatch

log = logging.getLogger("mien.live")

#: The one message of every failure of a source opened under an outbound policy.
SOURCE_UNREACHABLE = "source unreachable"

EndReason = Literal["end", "stopped", "source_lost", "unreachable", "unauthorized", "error"]


@dataclass(frozen=True)
class ReconnectPolicy:
    """How often and how patiently a dropped source is opened again.

    ``max_retries``: attempts in a row before giving up (0: never reconnect; -1: forever).
    The n-th attempt waits ``min(max_delay_s, initial_delay_s * 2**n)`` seconds.
    """

    max_retries: int = 5
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < -1:
            raise ValueError("max_retries must be >= -1 (-1: forever)")
        if not 0 <= self.initial_delay_s <= self.max_delay_s < math.inf:
            raise ValueError("need 0 <= initial_delay_s <= max_delay_s, finite")

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay_s, self.initial_delay_s * (2.0 ** min(attempt, 30))))

    def allows(self, attempt: int) -> bool:
        return self.max_retries < 0 or attempt < self.max_retries


@dataclass
class DecodedFrame:
    index: int
    timestamp_ms: float
    captured_at: float  # time.time() when decoded
    arrived: float  # time.monotonic() when decoded
    rgb: npt.NDArray[np.uint8]
    connection: int
    damage: tuple[str, ...] = ()  # why the picture may be damaged (mien.media.damage)


@dataclass
class AudioPacket:
    packet: Any  # av.Packet of the input's audio stream
    timestamp_ms: float
    connection: int


@dataclass
class Notice:
    """A change of the connection: ``connected``, ``reconnecting`` or ``ended``."""

    kind: Literal["connected", "reconnecting", "ended"]
    data: dict[str, Any] = field(default_factory=dict)


class StreamDecoder(threading.Thread):
    """Decodes ``source`` into ``buffer`` until the source ends, fails for good, or stop()."""

    def __init__(
        self,
        source: StreamSource,
        buffer: FrameBuffer,
        *,
        reconnect: ReconnectPolicy | None = None,
        realtime: bool = False,
        audio: bool = False,
        max_pixels: int = 50_000_000,
    ) -> None:
        super().__init__(name="mien-live-decoder", daemon=True)
        self.source = source
        self.buffer = buffer
        self.reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        self.realtime = realtime
        self.audio = audio
        self.max_pixels = max_pixels
        self._stop_event = threading.Event()
        self.frames_decoded = 0
        self.decode_errors = 0
        self.connections = 0
        self.reconnects = 0
        self._next_base_ms = 0.0
        self._last_ts_ms: float | None = None
        self._lost_at: float | None = None

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    # -- thread body ---------------------------------------------------------------------

    def run(self) -> None:
        reason: EndReason = "end"
        message: str | None = None
        try:
            reason, message = self._loop()
        except Exception as exc:  # never let the thread die silently
            log.exception("live decoder failed")
            reason, message = "error", self._describe(exc)
        finally:
            data: dict[str, Any] = {"reason": reason}
            if message:
                data["message"] = message
            self.buffer.put(Notice("ended", data), is_frame=False)
            self.buffer.close()

    def _loop(self) -> tuple[EndReason, str | None]:
        failures = 0  # connections in a row that failed to open, gave no frame, or dropped
        last_error: str | None = None
        first = True
        kind = self.source.kind
        while not self.stopping:
            if not first:
                # the n-th retry in a row (n = failures so far) waits delay(n - 1)
                if not self.reconnect.allows(failures - 1):
                    return ("source_lost" if self.connections else "unreachable"), last_error
                delay = self.reconnect.delay(failures - 1)
                self.buffer.put(
                    Notice(
                        "reconnecting",
                        {"attempt": failures, "delay_s": delay, "error": last_error},
                    ),
                    is_frame=False,
                )
                if self._stop_event.wait(delay):
                    break
            first = False
            try:
                opened = self.source.connect()
            except Exception as exc:  # PyAV raises OSError subclasses and FFmpegError
                last_error = self._describe(exc)
                failures += 1
                # asking again with the same credentials cannot help; under an outbound policy
                # a refusal is told from no other failure (docs/security.md)
                if _refused_credentials(exc) and self.source.policy is None:
                    return "unauthorized", last_error
                if kind in ("pipe", "file"):
                    return "unreachable", last_error
                continue
            try:
                outcome, error, got_frames = self._read(opened.container)
            finally:
                # closing a broken connection must not hide the real error
                with contextlib.suppress(Exception):
                    opened.close()
            if outcome == "stopped":
                break
            if outcome == "fatal":
                return "error", error
            if outcome == "eof" and kind in ("hls", "pipe", "file"):
                return "end", None
            if kind in ("pipe", "file"):
                return "source_lost", error
            # the source dropped, or a live server ended its stream: try again
            if error is None and self.source.policy is not None:
                error = SOURCE_UNREACHABLE  # an open port is not told from a closed one
            last_error = error or "the stream ended"
            if self._lost_at is None:
                self._lost_at = time.monotonic()
            failures = 1 if got_frames else failures + 1
        return "stopped", None

    def _read(self, container: Any) -> tuple[str, str | None, bool]:
        """Demux and decode one connection; (outcome, error, got_frames)."""
        import av

        video = next((s for s in container.streams if s.type == "video"), None)
        if video is None:
            return "fatal", "the stream has no video track", False
        audio = (
            next((s for s in container.streams if s.type == "audio"), None) if self.audio else None
        )
        video.thread_type = "AUTO"
        self.connections += 1
        connection = self.connections
        cc = video.codec_context
        width, height = int(cc.width or 0), int(cc.height or 0)
        if width * height > self.max_pixels:
            too_big = f"frames of {width}x{height} exceed the {self.max_pixels} px limit"
            return "fatal", too_big, False
        rate = video.average_rate or video.guessed_rate
        fps = float(rate) if rate else None
        info: dict[str, Any] = {
            "connection": connection,
            "width": width,
            "height": height,
            "fps": round(fps, 3) if fps else None,
            "video_codec": cc.name,
            "audio_codec": audio.codec_context.name if audio is not None else None,
            "audio_stream": audio,
        }
        if self._lost_at is not None:
            info["gap_s"] = round(time.monotonic() - self._lost_at, 3)
            info["last_timestamp_ms"] = self._last_ts_ms
        self.buffer.put(Notice("connected", info), is_frame=False)
        base_ms = self._next_base_ms
        if self._lost_at is not None:
            base_ms += (time.monotonic() - self._lost_at) * 1000.0
            self._lost_at = None
        t0: float | None = None
        wall0: float | None = None
        frame_ms = 1000.0 / fps if fps else 40.0
        last_rel_ms = -frame_ms
        got = False
        watch = DamageWatch(step_ms=frame_ms if fps else None)  # one per connection
        resumed = connection > 1  # joined a running stream: damaged until a clean key frame
        streams = [video] if audio is None else [video, audio]
        try:
            for packet in container.demux(streams):
                if self.stopping:
                    return "stopped", None, got
                ptime = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0:  # the flush packet at the end: drains the video decoder
                    if packet.stream is audio or t0 is None:
                        continue
                elif ptime is not None:
                    t = float(ptime * packet.time_base)
                    if t0 is None:
                        t0 = t
                    if packet.stream is audio:
                        self.buffer.put(
                            AudioPacket(packet, base_ms + (t - t0) * 1000.0, connection),
                            is_frame=False,
                        )
                        continue
                elif packet.stream is audio:
                    continue  # audio without a time cannot be placed
                # (a video packet without a time is decoded all the same: over RTSP the first
                # one, the key frame, often has none, and skipping it loses the whole group of
                # pictures that refers to it)
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    self.decode_errors += 1
                    watch.packet_failed()
                    continue
                for frame in frames:
                    ft = frame.time
                    if t0 is None and ft is not None:
                        t0 = ft
                    damage = watch.frame(
                        corrupt=bool(frame.is_corrupt),
                        key=bool(frame.key_frame),
                        timestamp_ms=None if ft is None else ft * 1000.0,
                    )
                    if resumed and frame.key_frame and not damage:
                        resumed = False
                    if resumed and not damage:
                        damage = (AFTER_DAMAGE,)
                    rel_ms = (
                        (ft - t0) * 1000.0
                        if ft is not None and t0 is not None
                        else last_rel_ms + frame_ms
                    )
                    if rel_ms <= last_rel_ms:  # non-monotonic or missing times
                        rel_ms = last_rel_ms + frame_ms
                    last_rel_ms = rel_ms
                    if self.realtime:
                        now = time.monotonic()
                        if wall0 is None:
                            wall0 = now - rel_ms / 1000.0
                        wait = wall0 + rel_ms / 1000.0 - now
                        if wait > 0 and self._stop_event.wait(wait):
                            return "stopped", None, got
                    rgb = frame.to_ndarray(format="rgb24")
                    ts = base_ms + rel_ms
                    self.buffer.put(
                        DecodedFrame(
                            self.frames_decoded,
                            ts,
                            time.time(),
                            time.monotonic(),
                            rgb,
                            connection,
                            damage,
                        ),
                        is_frame=True,
                    )
                    self.frames_decoded += 1
                    self._last_ts_ms = ts
                    self._next_base_ms = ts + frame_ms
                    got = True
        except EOFError:
            return "eof", None, got
        except Exception as exc:  # network errors, timeouts, corrupt data
            return "error", self._describe(exc), got
        return "eof", None, got

    def _describe(self, exc: BaseException) -> str:
        """The text of a source failure. Under an outbound policy it is the same for every
        failure (a refused address, a closed port, a port that speaks something else, an HTTP
        error): the details, which would let a caller scan the network, only go to the log."""
        if self.source.policy is None:
            return _describe(exc)
        log.info("stream source %s: %s", self.source.display, _describe(exc))
        return SOURCE_UNREACHABLE


def _refused_credentials(exc: BaseException) -> bool:
    """Whether opening failed because the server refused the log-in (HTTP/RTSP 401 or 403)."""
    import av

    refused = (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)
    return isinstance(exc, refused) or "401 Unauthorized" in str(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return hide_credentials(f"{type(exc).__name__}: {text}")
