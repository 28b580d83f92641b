"""Where redacted live video goes: a file, a folder of HLS segments, a server, or stdout.

:func:`open_sink` picks the output from the target:

* ``rtmp://...`` (FLV, H.264 + AAC/MP3) or ``rtsp://...`` (pushed to an RTSP server with
  ANNOUNCE/RECORD over TCP): a media server that re-publishes the redacted stream;
* a folder (an existing directory, or a path ending in ``/``): HLS, ``index.m3u8`` plus
  ``seg00000.ts``, ``seg00001.ts``... of about ``hls_time`` seconds each;
* ``-``: MPEG-TS on standard output (for a pipe into another program);
* any other path: a file whose container follows the extension (``.mp4``/``.mov`` are written
  fragmented, so the file plays even when mien is stopped hard).

Video is encoded with H.264 (libx264, ``ultrafast``/``zerolatency``: the encoder adds no
frames of delay). Audio is passed through re-encoded as AAC (which every one of these
containers takes), in step with the video. Only frames handed to
:meth:`LiveSink.write_frame` are written: mien gives it frames whose faces are covered.
"""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mien.errors import LiveOutputError, OutputError
from mien.live.source import hide_credentials

MS: Final[Fraction] = Fraction(1, 1000)

#: Sample rates the AAC encoder takes (others are encoded at 48 kHz).
_AAC_RATES: Final[frozenset[int]] = frozenset(
    {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}
)


def sink_kind(target: str) -> str:
    """``rtmp``, ``rtsp``, ``pipe``, ``hls`` (a folder) or ``file``."""
    low = target.lower()
    if low.startswith(("rtmp://", "rtmps://")):
        return "rtmp"
    if low.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if target == "-":
        return "pipe"
    if target.endswith(("/", os.sep)) or Path(target).is_dir():
        return "hls"
    return "file"


class LiveSink:
    """Encodes covered RGB frames (and copies audio) to the target; open on the first frame."""

    def __init__(
        self,
        target: str,
        *,
        hls_time: float = 2.0,
        hls_list_size: int = 0,
        crf: int = 23,
        preset: str = "ultrafast",
    ) -> None:
        self.target = target
        self.kind = sink_kind(target)
        self.hls_time = hls_time
        self.hls_list_size = hls_list_size
        self.crf = crf
        self.preset = preset
        self._out: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._audio_in: Any = None
        self._last_vpts = -1
        self._audio_end_ms = 0.0
        self.frames_written = 0
        self.audio_packets = 0
        self.path: str = target

    @property
    def opened(self) -> bool:
        return self._out is not None

    def open(self, width: int, height: int, fps: float | None, audio_stream: Any = None) -> None:
        import av

        fmt: str | None = None
        options: dict[str, str] = {}
        target: Any = self.target
        fps = fps if fps and 1.0 <= fps <= 240.0 else 25.0
        if self.kind == "rtmp":
            fmt = "flv"
        elif self.kind == "rtsp":
            fmt = "rtsp"
            options["rtsp_transport"] = "tcp"
        elif self.kind == "pipe":
            fmt = "mpegts"
            target = sys.stdout.buffer
        elif self.kind == "hls":
            folder = Path(self.target)
            folder.mkdir(parents=True, exist_ok=True)
            fmt = "hls"
            target = str(folder / "index.m3u8")
            options.update(
                hls_time=f"{self.hls_time:g}",
                hls_list_size=str(self.hls_list_size),
                hls_segment_filename=str(folder / "seg%05d.ts"),
                hls_flags="independent_segments",
            )
        else:
            from mien.media.write import check_output_path

            try:  # mien's output rule: no link, device, FIFO, socket or folder at the path
                check_output_path(self.target, kind="video")
            except OutputError as exc:
                raise LiveOutputError(exc.message) from exc
            parent = Path(self.target).resolve().parent
            if not parent.is_dir():
                raise LiveOutputError(f"cannot write {self.target}: {parent} is not a folder")
            if Path(self.target).suffix.lower() in (".mp4", ".mov", ".m4v"):
                options["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
        self.path = str(target) if isinstance(target, str) else self.target
        try:
            out = av.open(target, mode="w", format=fmt, options=options)
        except Exception as exc:
            raise LiveOutputError(
                hide_credentials(f"cannot open output {self.target}: {exc}")
            ) from exc
        try:
            codec = "libx264" if "libx264" in av.codecs_available else "h264"
            rate = Fraction(fps).limit_denominator(1001)
            video: Any = out.add_stream(codec, rate=rate)
            video.width = width - width % 2
            video.height = height - height % 2
            video.pix_fmt = "yuv420p"
            video.time_base = MS
            video.codec_context.time_base = MS
            gop = max(1, round(fps * min(self.hls_time, 2.0)))
            video.codec_context.gop_size = gop
            video.options = {
                "preset": self.preset,
                "tune": "zerolatency",
                "crf": str(self.crf),
                "g": str(gop),
                "keyint_min": str(gop),
                "sc_threshold": "0",
            }
            self._video = video
            if audio_stream is not None:
                self._add_audio(out, audio_stream)
        except Exception as exc:
            out.close()
            raise LiveOutputError(
                hide_credentials(f"cannot set up output {self.target}: {exc}")
            ) from exc
        self._out = out

    def _add_audio(self, out: Any, audio_stream: Any) -> None:
        rate = int(audio_stream.codec_context.sample_rate or 48000)
        if rate not in _AAC_RATES:
            rate = 48000
        self._audio = out.add_stream("aac", rate=rate)
        self._audio.layout = "stereo" if (audio_stream.codec_context.channels or 2) > 1 else "mono"
        self._audio_in = audio_stream

    def write_frame(self, rgb: npt.NDArray[np.uint8], timestamp_ms: float) -> None:
        import av

        if self._out is None:
            raise LiveOutputError("the output is not open")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        pts = round(timestamp_ms)
        if pts <= self._last_vpts:
            pts = self._last_vpts + 1
        self._last_vpts = pts
        frame.pts = pts
        frame.time_base = MS
        try:
            for packet in self._video.encode(frame):
                self._out.mux(packet)
        except Exception as exc:
            raise LiveOutputError(
                hide_credentials(f"cannot write to {self.target}: {exc}")
            ) from exc
        self.frames_written += 1

    def write_audio(self, packet: Any, timestamp_ms: float) -> None:
        """Re-encode one audio packet of the source, which starts at ``timestamp_ms``.

        Audio is encoded as one continuous track; when the source was away (a reconnect) the
        gap is filled with silence so sound and picture stay in step.
        """
        if self._out is None or self._audio is None:
            return
        if timestamp_ms < self._audio_end_ms - 1.0:
            return  # overlaps what was already written (a reconnect); skipped
        try:
            frames = packet.decode()
        except Exception:
            return  # a corrupt audio packet is skipped: the video goes on
        try:
            gap = timestamp_ms - self._audio_end_ms
            if self._audio_end_ms > 0 and gap > 100.0:
                self._silence(min(gap, 600_000.0))
            for frame in frames:
                frame.pts = None
                for out_packet in self._audio.encode(frame):
                    self._out.mux(out_packet)
                rate = frame.sample_rate or self._audio.codec_context.sample_rate
                timestamp_ms += frame.samples * 1000.0 / rate
            self._audio_end_ms = max(self._audio_end_ms, timestamp_ms)
        except Exception as exc:
            raise LiveOutputError(
                hide_credentials(f"cannot write audio to {self.target}: {exc}")
            ) from exc
        self.audio_packets += 1

    def _silence(self, duration_ms: float) -> None:
        import av

        rate = int(self._audio.codec_context.sample_rate)
        layout = self._audio.layout.name
        channels = len(self._audio.layout.channels)
        remaining = round(duration_ms * rate / 1000.0)
        while remaining > 0:
            n = min(remaining, rate)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, n * channels), np.int16), format="s16", layout=layout
            )
            frame.sample_rate = rate
            for out_packet in self._audio.encode(frame):
                self._out.mux(out_packet)
            remaining -= n
        self._audio_end_ms += duration_ms

    def close(self) -> None:
        """Flush the encoders and finish the output (playlist end, file index)."""
        out, self._out = self._out, None
        if out is None:
            return
        try:
            for packet in self._video.encode(None):
                out.mux(packet)
            if self._audio is not None:
                for packet in self._audio.encode(None):
                    out.mux(packet)
        except Exception:
            pass  # a target that went away cannot be flushed; close anyway
        finally:
            try:
                out.close()
            except Exception as exc:
                raise LiveOutputError(
                    hide_credentials(f"cannot finish {self.target}: {exc}")
                ) from exc
