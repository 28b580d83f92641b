"""Real streams on loopback for the live tests, made from the shared clips.

* :func:`write_hls` encodes a clip into HLS segments + playlist with PyAV's hls muxer;
  :class:`HLSServer` serves a folder over HTTP (``http.server`` in a thread);
* :func:`ffmpeg_rtmp_server` starts FFmpeg (the ``ffmpeg`` program) as a one-client RTMP
  server that plays a clip in real time (``-re ... -f flv -listen 1``);
* :func:`publish_rtmp` / :func:`receive_rtmp` run a PyAV RTMP publisher / listening receiver in
  a child process (PyAV holds the GIL while its output connects, so the peer cannot live in
  the test's own process);
* :class:`RTSPServer` runs GStreamer's RTSP server (tests/rtsp_server.py, under the system
  Python) serving a clip, optionally behind a log-in; :func:`rtsp_server_missing` says why it
  cannot run here;
* :func:`damaged_clip` makes a short clip with bit errors in its coded pictures.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_hls(
    clip: Path,
    folder: Path,
    *,
    segment_s: float = 1.0,
    max_frames: int | None = None,
    realtime: bool = False,
    audio: bool = True,
) -> int:
    """Encode ``clip`` as HLS into ``folder`` (index.m3u8, seg000.ts...); returns frames.

    With ``realtime`` the frames are written at the clip's pace, so the playlist grows like a
    live one (no ENDLIST until the end).
    """
    folder.mkdir(parents=True, exist_ok=True)
    src = av.open(str(clip))
    vin = src.streams.video[0]
    fps = float(vin.average_rate or 25)
    out = av.open(
        str(folder / "index.m3u8"),
        "w",
        format="hls",
        options={
            "hls_time": f"{segment_s:g}",
            "hls_list_size": "0",
            "hls_segment_filename": str(folder / "seg%03d.ts"),
        },
    )
    v = out.add_stream("libx264", rate=round(fps))
    v.width, v.height, v.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
    gop = max(1, round(fps * segment_s))
    v.options = {"preset": "ultrafast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
    a = out.add_stream("aac", rate=44100) if audio and src.streams.audio else None
    streams = [vin] + ([src.streams.audio[0]] if a is not None else [])
    n = 0
    start = time.monotonic()
    for packet in src.demux(streams):
        for frame in packet.decode():
            if isinstance(frame, av.VideoFrame):
                if max_frames is not None and n >= max_frames:
                    continue
                frame.pts = n
                frame.time_base = Fraction(1, round(fps))
                for p in v.encode(frame):
                    out.mux(p)
                n += 1
                if realtime:
                    wait = start + n / fps - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
            elif a is not None and (max_frames is None or n < max_frames):
                frame.pts = None
                for p in a.encode(frame):
                    out.mux(p)
    for p in v.encode():
        out.mux(p)
    if a is not None:
        for p in a.encode():
            out.mux(p)
    out.close()
    src.close()
    return n


def served_hls(clip: Path, folder: Path, max_frames: int) -> Iterator[HLSServer]:
    """``clip``'s first ``max_frames`` frames as a finished HLS stream in ``folder``, served on
    loopback for as long as the generator is open (a module fixture's ``yield from``)."""
    write_hls(clip, folder, max_frames=max_frames, audio=False)
    server = HLSServer(folder)
    try:
        yield server
    finally:
        server.close()


def start_growing_hls(clip: Path, folder: Path, max_frames: int) -> threading.Thread:
    """Write ``clip`` as a live HLS playlist, at the clip's pace, in a thread; returns the
    (started) thread once ``folder/index.m3u8`` exists (or after 30 s)."""
    writer = threading.Thread(
        target=write_hls,
        args=(clip, folder),
        kwargs={"max_frames": max_frames, "realtime": True, "audio": False},
        daemon=True,
    )
    writer.start()
    deadline = time.monotonic() + 30
    while not (folder / "index.m3u8").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return writer


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class HLSServer:
    """Serves ``folder`` on 127.0.0.1 over HTTP until :meth:`close`."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_Quiet, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str = "index.m3u8") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def has_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def ffmpeg_rtmp_server(clip: Path, url: str, seconds: float) -> subprocess.Popen[bytes]:
    """FFmpeg playing ``clip`` (looped, ``seconds`` long) in real time to one RTMP client."""
    server = subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(clip), "-t", f"{seconds:g}", "-c", "copy", "-f", "flv",
            "-listen", "1", url,
        ],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    port = urlsplit(url).port
    assert port is not None, url
    wait_listening(port, server)
    return server


def _listening_ports() -> set[int]:
    """TCP ports in the LISTEN state on this machine, read from ``/proc/net/tcp{,6}``."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # 0A = TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening(port: int, server: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until ``server`` listens on ``port``, without connecting to it.

    A one-client server (``ffmpeg -listen 1``) would spend its only connection on a probe, so
    this reads the kernel's socket table instead. On a busy CI machine FFmpeg can take seconds
    to open its input and listen; a fixed sleep made the RTMP tests flaky.
    """
    if not Path("/proc/net/tcp").exists():  # not Linux: fall back to a generous pause
        time.sleep(2.0)
        return
    deadline = time.monotonic() + timeout
    while port not in _listening_ports():
        if server.poll() is not None:
            raise RuntimeError(f"the RTMP server exited ({server.returncode}) before listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout:g} s")
        time.sleep(0.05)


_PUBLISH = r"""
import sys, time, av
clip, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + 30
while True:
    try:
        out = av.open(url, "w", format="flv")
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
src = av.open(clip)
vin = src.streams.video[0]
fps = float(vin.average_rate or 25)
v = out.add_stream("libx264", rate=round(fps))
v.width, v.height, v.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
v.options = {"preset": "ultrafast", "tune": "zerolatency"}
n, start = 0, time.monotonic()
while n < seconds * fps:
    for frame in src.decode(video=0):
        frame.pts = None
        for p in v.encode(frame):
            out.mux(p)
        n += 1
        time.sleep(max(0.0, start + n / fps - time.monotonic()))
        if n >= seconds * fps:
            break
    src.seek(0)
for p in v.encode():
    out.mux(p)
out.close()
"""

_RECEIVE = r"""
import json, sys, av
url, result = sys.argv[1], sys.argv[2]
c = av.open(url, options={"listen": "1"}, timeout=(60, 20))
info = {"streams": [s.type for s in c.streams], "video": 0, "audio": 0}
try:
    for packet in c.demux():
        if packet.stream.type == "video":
            info["video"] += len(packet.decode())
        elif packet.stream.type == "audio":
            info["audio"] += 1
except Exception as exc:
    info["end"] = repr(exc)
open(result, "w").write(json.dumps(info))
"""


def publish_rtmp(clip: Path, url: str, seconds: float) -> subprocess.Popen[bytes]:
    """A PyAV encoder publishing ``clip`` in real time to ``url`` (retries until it listens)."""
    return subprocess.Popen(
        [sys.executable, "-c", _PUBLISH, str(clip), url, f"{seconds:g}"],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def receive_rtmp(url: str, result: Path) -> subprocess.Popen[bytes]:
    """A PyAV RTMP server receiving one stream; writes what it got to ``result`` (JSON)."""
    return subprocess.Popen(
        [sys.executable, "-c", _RECEIVE, url, str(result)], stdin=subprocess.DEVNULL
    )


def damaged_clip(clip: Path, dst: Path, *, seconds: float = 4.0, seed: int = 5) -> Path:
    """``clip`` cut to ``seconds`` (stream copy, ``moov`` first), then 3 bytes flipped at 40
    random places in the middle 60% of its ``mdat`` box: bit errors in the coded pictures,
    which FFmpeg conceals (frames flagged corrupt, later frames predicted from them)."""
    import random
    import struct

    cut = dst.with_name(dst.stem + "-cut.mp4")
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip),
            "-t", f"{seconds:g}", "-c", "copy", "-movflags", "faststart", str(cut),
        ],
        check=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    data = bytearray(cut.read_bytes())
    pos, mdat = 0, None
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = len(data) - pos
        if kind == b"mdat":
            mdat = (pos + head, pos + size)
            break
        pos += size
    assert mdat is not None, "no mdat box"
    start, end = mdat
    lo, hi = start + (end - start) // 5, end - (end - start) // 5
    rng = random.Random(seed)
    for _ in range(40):
        at = rng.randrange(lo, hi - 3)
        for k in range(3):
            data[at + k] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


# -- RTSP: GStreamer's gst-rtsp-server (tests/rtsp_server.py) under the system Python --------

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
_RTSP_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "assert all(Gst.ElementFactory.find(e) for e in ('qtdemux', 'h264parse', 'rtph264pay'))"
)


@functools.cache
def rtsp_server_missing() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"no {SYSTEM_PYTHON} (the RTSP server runs under the system Python)"
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", _RTSP_PROBE], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot start {SYSTEM_PYTHON}: {exc}"
    if probe.returncode != 0:
        return (
            "GStreamer's RTSP server is not installed for the system Python (Debian: apt-get "
            "install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
            "gstreamer1.0-plugins-bad; .ci/run installs them)"
        )
    return None


class RTSPServer:
    """A real RTSP server on 127.0.0.1 serving ``clip`` at ``/clip`` (tests/rtsp_server.py),
    run as a separate process under the system Python; with ``user``/``password`` it wants a
    log-in. :meth:`kill` and :meth:`start` again restart it on the same port."""

    def __init__(
        self,
        clip: Path,
        *,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.clip = clip
        self.port = port if port is not None else free_port()
        self.user = user
        self.password = password
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self, timeout_s: float = 30.0) -> None:
        cmd = [
            SYSTEM_PYTHON, str(RTSP_SERVER_SCRIPT), "--port", str(self.port),
            "--clip", str(self.clip),
        ]  # fmt: skip
        if self.user is not None:
            cmd += ["--user", self.user, "--password", self.password or ""]
        deadline = time.monotonic() + timeout_s
        while True:  # the port may still be held for a moment after a kill
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
            )
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()  # "ready", or "" when it exits
            if line.strip() == "ready":
                return
            self.proc.wait(timeout=10)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the RTSP server did not start on port {self.port}")
            time.sleep(0.3)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        login = "" if user is None else f"{user}:{password}@"
        return f"rtsp://{login}127.0.0.1:{self.port}/clip"

    def kill(self) -> None:
        """Kill the server at once (no goodbye to its clients, as when a camera loses power)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
