"""RTSP, the protocol of nearly every camera, for real: GStreamer's RTSP server on loopback.

The server (tests/rtsp_server.py) runs as a separate process under the system Python and
serves a shared clip as recorded; mien connects to ``rtsp://127.0.0.1:PORT/clip`` as it would
to a camera. Every test is bounded (``--max-frames`` / ``max_frames``, subprocess timeouts).
Skipped, saying why, when GStreamer's RTSP server is not installed (.ci/run installs it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mien.live import LiveOptions, LiveSession, ReconnectPolicy, StreamSource
from mien.options import AnalyzerOptions
from tests.conftest import REPO, shared
from tests.live_streams import RTSPServer, rtsp_server_missing

DETECT = AnalyzerOptions(features=("detection",), num_threads=2)
CLIP = "WolfgangLanger_Pexels.mp4"  # 19.7 s, 640x360, 24 fps, one face


@pytest.fixture(scope="module")
def clip() -> Path:
    path = shared("pyfeat_media", CLIP)  # skips when the shared data is absent
    why = rtsp_server_missing()
    if why is not None:
        pytest.skip(why)
    return path


@pytest.fixture()
def server(clip: Path) -> Iterator[RTSPServer]:
    srv = RTSPServer(clip)
    yield srv
    srv.close()


def mien(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mien", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def of_type(events: list[dict[str, Any]], t: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == t]


def test_analyze_rtsp(server: RTSPServer) -> None:
    done = mien(
        "analyze", server.url(), "--features", "detection", "--threads", "2",
        "--max-frames", "48", "--timeout", "20", "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = lines(done.stdout)
    started = events[0]
    assert started["type"] == "stream_started" and started["kind"] == "rtsp"
    assert (started["width"], started["height"], started["video_codec"]) == (640, 360, "h264")
    summary = events[-1]
    assert summary["type"] == "summary" and summary["reason"] == "max_frames"
    assert summary["frames_decoded"] >= 48 and "error" not in summary  # the decoder runs ahead
    frames = of_type(events, "frame")
    assert frames and sum(len(f["faces"]) > 0 for f in frames) >= 0.8 * len(frames)
    assert of_type(events, "track_started")


def test_redact_rtsp_to_file(server: RTSPServer, tmp_path: Path) -> None:
    import av

    out, report = tmp_path / "out.mp4", tmp_path / "report.jsonl"
    done = mien(
        "redact", server.url(), "-o", str(out), "--method", "fill", "--threads", "2",
        "--max-frames", "72", "--timeout", "20", "--report", str(report), "-q",
    )  # fmt: skip
    events = lines(report.read_text())
    summary = events[-1]
    assert summary["type"] == "summary" and summary["reason"] == "max_frames", done.stderr
    # a clean stream has no damaged frames; on a busy machine some frames may be covered by
    # prediction alone for too long (not_searched): then they are suspect and the exit code 1
    assert set(summary["suspect_reasons"]) <= {"not_searched"}
    assert done.returncode == (1 if summary["suspect_frames"] else 0), done.stderr
    frames = of_type(events, "frame")
    assert summary["frames_written"] == len(frames) > 0
    # the stream's first packet (its key frame) has no timestamp over RTSP: it is decoded all
    # the same, so the output starts with the clip's first frame, not at the next key frame
    assert frames[0]["frame_index"] == 0 and frames[0]["timestamp_ms"] < 100
    assert any(r["source"] == "detected" for f in frames for r in f["covered"])
    assert all(f["covered"] for f in frames)  # the face is in every frame of the clip
    with av.open(str(out)) as c:
        written = sum(1 for _ in c.decode(video=0))
    assert written == summary["frames_written"]
    from tests.test_live import faces_in

    total, found = faces_in(out)
    assert total == written and found <= 0.1 * total


def test_reconnect_after_the_server_restarts(server: RTSPServer) -> None:
    """The camera goes away mid-stream (killed) and comes back on the same port: the session
    reports the drop, reconnects (connection 2) and goes on with continuous timestamps."""
    session = LiveSession(
        StreamSource(server.url(), open_timeout_s=10, read_timeout_s=10),
        analyzer_options=DETECT,
        options=LiveOptions(
            reconnect=ReconnectPolicy(max_retries=10, initial_delay_s=0.2, max_delay_s=1.0),
            duration_s=120,
        ),
    )
    events: list[dict[str, Any]] = []
    frames_after_gap = 0
    restarted = False
    for ev in session.events():
        d = ev.to_dict()
        events.append(d)
        if d["type"] == "frame":
            if not restarted and len(of_type(events, "frame")) >= 20:
                server.kill()
                server.start()  # same port
                restarted = True
            elif of_type(events, "gap"):
                frames_after_gap += 1
                if frames_after_gap >= 20:
                    session.stop()
    summary = events[-1]
    assert summary["type"] == "summary" and summary["reason"] == "stopped", summary
    assert "error" not in summary and summary["reconnects"] >= 1
    gaps = of_type(events, "gap")
    assert len(gaps) == 1 and gaps[0]["connection"] == 2 and gaps[0]["gap_s"] >= 0
    assert summary["gaps"] == [
        {k: gaps[0][k] for k in ("gap_s", "last_timestamp_ms", "connection")}
    ]
    assert of_type(events, "reconnecting")[0]["attempt"] == 1
    frames = of_type(events, "frame")
    gap_seq = gaps[0]["seq"]
    before = [f for f in frames if f["seq"] < gap_seq]
    after = [f for f in frames if f["seq"] > gap_seq]
    assert len(before) >= 20 and len(after) >= 20
    assert after[0]["timestamp_ms"] > before[-1]["timestamp_ms"]  # continuous across the gap
    assert after[0]["frame_index"] > before[-1]["frame_index"]
    assert sum(len(f["faces"]) > 0 for f in after) >= 0.8 * len(after)


def test_credentials_in_the_address(clip: Path, tmp_path: Path) -> None:
    password, wrong = "Op3n-S3sam3-4711", "Wr0ng-Guess-0815"
    srv = RTSPServer(clip, user="camuser", password=password)
    try:
        ok = mien(
            "analyze", srv.url("camuser", password), "--features", "detection", "--threads",
            "2", "--max-frames", "24", "--timeout", "20",
        )  # fmt: skip
        bad = mien(
            "analyze", srv.url("camuser", wrong), "--features", "detection", "--threads", "2",
            "--max-frames", "24", "--timeout", "20",
        )  # fmt: skip
        anonymous = mien(
            "analyze", srv.url(), "--features", "detection", "--max-frames", "24",
            "--timeout", "20",
        )  # fmt: skip
    finally:
        srv.close()
    assert ok.returncode == 0, ok.stderr
    events = lines(ok.stdout)
    assert events[0]["source"] == f"rtsp://***@127.0.0.1:{srv.port}/clip"
    assert events[-1]["reason"] == "max_frames" and of_type(events, "frame")
    # the wrong password: one clear error, at once (no reconnect attempts), exit 1
    assert bad.returncode == 1, bad.stderr
    events = lines(bad.stdout)
    assert [e["type"] for e in events] == ["error", "summary"]
    assert events[0]["code"] == "StreamUnauthorized"
    assert "refused the credentials" in events[0]["message"] and "401" in events[0]["message"]
    assert events[-1]["reason"] == "unauthorized"
    assert "StreamUnauthorized" in bad.stderr and "refused the credentials" in bad.stderr
    for done in (ok, bad):
        for secret in (password, wrong):
            assert secret not in done.stdout and secret not in done.stderr
    assert anonymous.returncode == 1 and "StreamUnauthorized" in anonymous.stderr


def test_damaged_rtsp_stream_is_covered(clip: Path, tmp_path: Path) -> None:
    """A camera whose pictures arrive with bit errors: the frames the decoder flags, and the
    ones predicted from them, are suspect, covered harder, and the exit code is 1."""
    from mien.media.damage import DAMAGE_REASONS
    from tests.live_streams import damaged_clip, has_ffmpeg
    from tests.test_live import faces_in

    if not has_ffmpeg():
        pytest.skip("the ffmpeg program is needed to cut the clip")
    srv = RTSPServer(damaged_clip(clip, tmp_path / "damaged.mp4"))  # 4 s, 98 frames
    out, report = tmp_path / "out.mp4", tmp_path / "report.jsonl"
    try:
        done = mien(
            "redact", srv.url(), "-o", str(out), "--method", "fill", "--threads", "2",
            "--max-frames", "90", "--timeout", "20", "--report", str(report),
        )  # fmt: skip
    finally:
        srv.close()
    events = lines(report.read_text())
    summary = events[-1]
    assert summary["reason"] == "max_frames" and "error" not in summary, done.stderr
    assert done.returncode == 1 and "suspect frames" in done.stderr
    assert summary["suspect_reasons"]["corrupt_frame"] >= 1
    assert summary["suspect_reasons"]["after_damage"] >= 1
    frames = of_type(events, "frame")
    damaged = [f for f in frames if set(f.get("suspect", ())) & set(DAMAGE_REASONS)]
    assert damaged and all(f["action"] in ("covered_regions", "covered_frame") for f in damaged)
    total, found = faces_in(out)
    assert total == len(frames) and found <= 0.1 * total
