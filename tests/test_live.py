"""Live streams, for real: HLS over HTTP, RTMP from FFmpeg and from a PyAV publisher, pipes.

Every stream is made here from the shared clips and served on loopback. No timing is
asserted: only what was decoded, tracked, covered and reported.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from mien.live import (
    LiveOptions,
    LiveSession,
    ReconnectPolicy,
    StreamSource,
    display_url,
    is_stream_url,
    source_kind,
)
from mien.options import AnalyzerOptions
from tests.conftest import REPO, shared
from tests.live_streams import (
    HLSServer,
    damaged_clip,
    ffmpeg_rtmp_server,
    free_port,
    has_ffmpeg,
    publish_rtmp,
    receive_rtmp,
    start_growing_hls,
    write_hls,
)

DETECT = AnalyzerOptions(features=("detection",), num_threads=2)


def clip(name: str) -> Path:
    return shared("pyfeat_media", name)


def collect(session: LiveSession, on_event: Any = None) -> list[dict[str, Any]]:
    out = []
    for ev in session.events():
        d = ev.to_dict()
        json.dumps(d, allow_nan=False)  # every event is plain JSON
        out.append(d)
        if on_event is not None:
            on_event(d)
    return out


def by_type(events: list[dict[str, Any]], t: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == t]


def check_envelope(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events[-1]["type"] == "summary"
    assert [e["seq"] for e in events] == list(range(len(events)))
    frames = by_type(events, "frame")
    ts = [f["timestamp_ms"] for f in frames]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    for f in frames:
        assert f["captured_at"].endswith("Z") and f["latency_ms"] >= 0
    return events[-1]


@pytest.fixture()
def hls_single(tmp_path: Path) -> Any:
    folder = tmp_path / "hls"
    n = write_hls(clip("single_face.mp4"), folder)
    server = HLSServer(folder)
    yield server, n
    server.close()


def realtime_events(folder: Path) -> list[dict[str, Any]]:
    """Serve the HLS playlist in ``folder`` over HTTP and collect a real-time session's events."""
    server = HLSServer(folder)
    try:
        return collect(
            LiveSession(server.url(), analyzer_options=DETECT, options=LiveOptions(realtime=True))
        )
    finally:
        server.close()


# -- addresses -------------------------------------------------------------------------------


def test_stream_addresses() -> None:
    assert is_stream_url("rtsp://cam.local:554/stream1")
    assert is_stream_url("RTMP://server/live/key")
    assert is_stream_url("https://cdn.example/live/index.m3u8?token=abc")
    assert is_stream_url("/dev/video0")
    assert not is_stream_url("https://example.org/photo.jpg")
    assert not is_stream_url("clip.mp4")
    assert not is_stream_url("-")  # a picture on stdin unless --stream
    assert source_kind("-") == "pipe"
    assert source_kind("http://h/x.m3u8") == "hls"
    assert display_url("rtsp://admin:secret@10.0.0.2:554/s") == "rtsp://***@10.0.0.2:554/s"
    assert "secret" not in StreamSource("rtsp://u:secret@h/s").display
    with pytest.raises(ValueError):
        StreamSource("rtsp://h/s", listen=True)  # only RTMP can listen
    p = ReconnectPolicy(max_retries=3, initial_delay_s=0.5, max_delay_s=2.0)
    assert [p.delay(i) for i in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert p.allows(2) and not p.allows(3)


# -- HLS over HTTP ---------------------------------------------------------------------------


def test_hls_analyze_frames_tracks_summary(hls_single: Any) -> None:
    server, n = hls_single
    session = LiveSession(
        server.url(),
        analyzer_options=AnalyzerOptions(features=("detection", "quality"), num_threads=2),
        options=LiveOptions(realtime=True),
    )
    events = collect(session)
    summary = check_envelope(events)
    started = events[0]
    assert started["type"] == "stream_started" and started["kind"] == "hls"
    assert (started["width"], started["height"]) == (640, 360)
    assert summary["reason"] == "end" and "error" not in summary
    assert summary["frames_decoded"] >= n - 3
    frames = by_type(events, "frame")
    assert len(frames) == summary["frames_analysed"] > 0
    assert summary["frames_analysed"] + summary["frames_dropped"] == summary["frames_decoded"]
    with_face = [f for f in frames if f["faces"]]
    assert len(with_face) >= 0.9 * len(frames)  # one face all through the clip
    assert all("track_id" in face and "quality" in face for f in with_face for face in f["faces"])
    assert by_type(events, "track_started") and by_type(events, "track_ended")
    ended = by_type(events, "track_ended")[0]
    assert ended["frames"] >= 1 and ended["last_ms"] >= ended["first_ms"]
    assert summary["tracks"] == len(by_type(events, "track_started"))


def test_hls_live_playlist_that_grows(tmp_path: Path) -> None:
    folder = tmp_path / "live"
    writer = start_growing_hls(clip("WolfgangLanger_Pexels.mp4"), folder, max_frames=120)
    server = HLSServer(folder)
    try:
        session = LiveSession(server.url(), analyzer_options=DETECT)
        events = collect(session)
    finally:
        writer.join(60)
        server.close()
    summary = check_envelope(events)
    assert "error" not in summary, summary
    # the reader joined a playlist still being written and followed it to its end
    assert summary["frames_decoded"] >= 60
    assert by_type(events, "frame")[-1]["frame_index"] >= 60


def test_stream_without_faces(tmp_path: Path) -> None:
    folder = tmp_path / "noface"
    write_hls(clip("no_face.mp4"), folder)
    events = realtime_events(folder)
    summary = check_envelope(events)
    frames = by_type(events, "frame")
    assert frames and summary["reason"] == "end"
    assert sum(len(f["faces"]) for f in frames) <= 0.05 * len(frames)
    assert summary["tracks"] <= 1


def test_corrupt_segment_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    write_hls(clip("single_face.mp4"), folder, segment_s=0.5, audio=False)
    playlist = (folder / "index.m3u8").read_text()
    segments = sorted(folder.glob("seg*.ts"))
    assert len(segments) >= 3
    rng = np.random.default_rng(7)
    segments[1].write_bytes(rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    (folder / "index.m3u8").write_text(playlist)
    events = realtime_events(folder)
    summary = check_envelope(events)
    frames = by_type(events, "frame")
    assert frames
    # frames from before and after the garbage segment came through
    assert frames[0]["timestamp_ms"] < 500 and summary["frames_decoded"] >= 40
    assert summary["reason"] in ("end", "source_lost")


# -- RTMP ------------------------------------------------------------------------------------


@pytest.mark.skipif(not has_ffmpeg(), reason="needs the ffmpeg program (apt-get install ffmpeg)")
def test_rtmp_source_drops_and_comes_back() -> None:
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/cam"
    servers = [ffmpeg_rtmp_server(clip("single_face.mp4"), url, seconds=3)]
    session = LiveSession(
        url,
        analyzer_options=DETECT,
        options=LiveOptions(
            reconnect=ReconnectPolicy(max_retries=20, initial_delay_s=0.3, max_delay_s=1.0)
        ),
    )
    state = {"frames_after_gap": 0, "gap": False}

    def on_event(e: dict[str, Any]) -> None:
        if e["type"] == "reconnecting" and len(servers) == 1:
            servers[0].wait(30)
            servers.append(ffmpeg_rtmp_server(clip("single_face.mp4"), url, seconds=30))
        if e["type"] == "gap":
            state["gap"] = True
        if e["type"] == "frame" and state["gap"]:
            state["frames_after_gap"] += 1
            if state["frames_after_gap"] >= 10:
                session.stop()

    try:
        events = collect(session, on_event)
    finally:
        for s in servers:
            s.kill()
            s.wait()
    summary = check_envelope(events)
    assert by_type(events, "reconnecting")
    gap = by_type(events, "gap")[0]
    assert gap["gap_s"] > 0 and gap["connection"] == 2
    assert summary["reconnects"] >= 1 and summary["gaps"] and summary["reason"] == "stopped"
    frames = by_type(events, "frame")
    before = [f for f in frames if f["timestamp_ms"] <= gap["last_timestamp_ms"]]
    after = [f for f in frames if f["timestamp_ms"] > gap["last_timestamp_ms"]]
    assert before and len(after) >= 10
    assert any(f["faces"] for f in after)


def test_rtmp_listen_for_a_publisher() -> None:
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/key"
    publisher = publish_rtmp(clip("single_face.mp4"), url, seconds=3)
    try:
        session = LiveSession(
            StreamSource(url, listen=True, open_timeout_s=30),
            analyzer_options=DETECT,
            options=LiveOptions(reconnect=ReconnectPolicy(max_retries=0)),
        )
        events = collect(session)
    finally:
        publisher.kill()
        publisher.wait()
    summary = check_envelope(events)
    assert events[0]["type"] == "stream_started" and events[0]["kind"] == "rtmp"
    assert summary["frames_decoded"] >= 45
    assert summary["tracks"] >= 1
    assert any(f["faces"] for f in by_type(events, "frame"))


def test_unreachable_source_gives_up() -> None:
    url = f"rtmp://127.0.0.1:{free_port()}/live/none"
    session = LiveSession(
        StreamSource(url, open_timeout_s=2, read_timeout_s=2),
        analyzer_options=DETECT,
        options=LiveOptions(
            reconnect=ReconnectPolicy(max_retries=2, initial_delay_s=0.1, max_delay_s=0.2)
        ),
    )
    events = collect(session)
    summary = check_envelope(events)
    assert summary["reason"] == "unreachable"
    assert summary["error"]["code"] == "StreamUnreachable"
    assert len(by_type(events, "reconnecting")) == 2
    assert not by_type(events, "frame")


# -- redaction -------------------------------------------------------------------------------


def faces_in(path: Path) -> tuple[int, int]:
    """(frames, frames where the detector finds a face) of a video."""
    from mien.detect.detector import DetectionPlan, FaceDetector

    det = FaceDetector(num_threads=2)
    plan = DetectionPlan(threshold=0.5, upscale=1.0, tiling=False)
    frames = found = 0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            frames += 1
            found += len(det.detect(frame.to_ndarray(format="rgb24"), plan)) > 0
    return frames, found


def test_redact_hls_to_file_keeps_audio_and_covers_faces(hls_single: Any, tmp_path: Path) -> None:
    from mien.redact import RedactOptions

    server, n = hls_single
    out = tmp_path / "redacted.mp4"
    session = LiveSession(
        server.url(),
        options=LiveOptions(realtime=True),
        redact=RedactOptions(),
        output=str(out),
    )
    events = collect(session)
    summary = check_envelope(events)
    assert summary["reason"] == "end" and "error" not in summary
    frames = by_type(events, "frame")
    assert summary["frames_written"] == len(frames) >= n - 5
    # every written frame had its face covered (detected or carried by the tracker)
    assert all(f["covered"] for f in frames)
    sources = {r["source"] for f in frames for r in f["covered"]}
    assert "detected" in sources and sources <= {"detected", "tracked", "held", "suspect"}
    # a clean stream has no damaged frame (on a busy machine some may be covered by prediction
    # alone for too long: not_searched, their known regions grown)
    assert set(summary["suspect_reasons"]) <= {"not_searched"}
    with av.open(str(out)) as c:
        kinds = sorted(s.type for s in c.streams)
    assert kinds == ["audio", "video"]
    total, found = faces_in(out)
    assert total == summary["frames_written"]
    assert found <= 0.1 * total  # the face is gone from the output
    _, found_in = faces_in(clip("single_face.mp4"))
    assert found_in >= 0.9 * 72  # ... though the source shows it in every frame


def test_redact_to_hls_folder(tmp_path: Path) -> None:
    from mien.redact import RedactOptions

    folder = tmp_path / "out"
    session = LiveSession(
        StreamSource(str(clip("WolfgangLanger_Pexels.mp4"))),
        options=LiveOptions(realtime=True, max_frames=72, hls_time=1.0),
        redact=RedactOptions(method="pixelate"),
        output=str(folder) + "/",
    )
    summary = check_envelope(collect(session))
    playlist = (folder / "index.m3u8").read_text()
    assert "#EXT-X-ENDLIST" in playlist and len(list(folder.glob("seg*.ts"))) >= 2
    total, found = faces_in(folder / "index.m3u8")
    assert total == summary["frames_written"] > 40
    assert found <= 0.1 * total


def test_redact_to_rtmp_target(tmp_path: Path) -> None:
    from mien.redact import RedactOptions

    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/out"
    result = tmp_path / "received.json"
    receiver = receive_rtmp(url, result)
    try:
        time.sleep(1.0)  # let the receiver listen
        session = LiveSession(
            StreamSource(str(clip("single_face.mp4"))),
            options=LiveOptions(realtime=True),
            redact=RedactOptions(),
            output=url,
        )
        summary = check_envelope(collect(session))
        receiver.wait(30)
    finally:
        receiver.kill()
    got = json.loads(result.read_text())
    assert summary["frames_written"] > 50 and "error" not in summary
    assert sorted(got["streams"]) == ["audio", "video"]
    assert got["video"] >= summary["frames_written"] - 5 and got["audio"] > 10


class _FailingAfter:
    """A real VideoAnalyzer whose detector stops working after ``n`` frames."""

    def __init__(self, n: int) -> None:
        from mien.redact.options import REDACT_THRESHOLD
        from mien.video.analyzer import VideoAnalyzer

        self.inner = VideoAnalyzer(
            AnalyzerOptions(features=("detection",), threshold=REDACT_THRESHOLD, num_threads=2)
        )
        self.n = n
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def reset(self) -> None:
        self.inner.reset()

    def process(self, rgb: np.ndarray, ts: float, frame_index: int | None = None) -> Any:
        self.calls += 1
        if self.calls > self.n:
            raise RuntimeError("detector failed")
        return self.inner.process(rgb, ts, frame_index=frame_index)


def test_detector_failure_gives_covered_suspect_frames(tmp_path: Path) -> None:
    """A detector that stops working does not end the stream: every frame it could not search
    is a ``not_searched`` suspect frame, covered where the face was (held, and grown)."""
    from mien.redact import RedactOptions

    out = tmp_path / "out.mkv"
    session = LiveSession(
        StreamSource(str(clip("single_face.mp4"))),
        options=LiveOptions(realtime=True, hold_ms=60_000, detect_every_ms=0),
        redact=RedactOptions(method="fill"),
        output=str(out),
        analyzer=_FailingAfter(5),
    )
    events = collect(session)
    summary = check_envelope(events)
    frames = by_type(events, "frame")
    assert summary["detector_failures"] > 0 and "error" not in summary
    assert summary["reason"] == "end" and summary["frames_written"] == len(frames) >= 60
    last_detected = max(i for i, f in enumerate(frames) if f["detected"])
    late = frames[last_detected + 1 :]
    assert len(late) >= 40
    for f in late:
        assert "not_searched" in f["suspect"] and f["action"] == "covered_regions"
        sources = [r["source"] for r in f["covered"]]
        assert "held" in sources and "suspect" in sources
        held = next(r["box"] for r in f["covered"] if r["source"] == "held")
        grown = [r["box"] for r in f["covered"] if r["source"] == "suspect"]
        width = held[2] - held[0]  # grown SUSPECT_GROWTH times around the same centre
        assert any(abs((g[2] - g[0]) - 1.5 * width) < 1 for g in grown)
    suspect = [f for f in frames if "suspect" in f]
    assert summary["suspect_frames"] == len(suspect)
    assert summary["suspect_reasons"]["not_searched"] == sum(
        "not_searched" in f["suspect"] for f in suspect
    )
    total, found = faces_in(out)
    assert total == len(frames) and found <= 0.1 * total


@pytest.mark.parametrize("policy", ["cover", "keep"])
def test_suspect_frame_with_no_face_known(tmp_path: Path, policy: str) -> None:
    """A detector that never works: nothing is known of the faces, so ``cover`` covers every
    frame edge to edge; ``keep`` writes them as they are, but still lists them."""
    from mien.redact import RedactOptions

    out = tmp_path / "out.mkv"
    session = LiveSession(
        StreamSource(str(clip("single_face.mp4"))),
        options=LiveOptions(realtime=True, max_frames=20, on_suspect=policy),
        redact=RedactOptions(method="fill"),
        output=str(out),
        analyzer=_FailingAfter(0),
    )
    events = collect(session)
    summary = check_envelope(events)
    frames = by_type(events, "frame")
    assert len(frames) == summary["frames_written"] == summary["suspect_frames"] >= 20
    assert summary["suspect_reasons"] == {"not_searched": len(frames)}
    with av.open(str(out)) as c:
        brightest = [int(fr.to_ndarray(format="gray").max()) for fr in c.decode(video=0)]
    assert len(brightest) == len(frames)
    if policy == "cover":
        assert all(f["action"] == "covered_frame" for f in frames)
        assert all([r["source"] for r in f["covered"]] == ["whole_frame"] for f in frames)
        assert frames[0]["covered"][0]["box"] == [0.0, 0.0, 640.0, 360.0]
        assert max(brightest) < 30  # filled black edge to edge
    else:
        assert all(f["action"] == "kept" and f["covered"] == [] for f in frames)
        assert min(brightest) > 100  # the picture as it was


def test_damaged_stream_frames_are_suspect_and_covered(tmp_path: Path) -> None:
    """A clip with bit errors played as a live source: the frames the decoder flags, and those
    predicted from them until the next key frame, are suspect and covered harder."""
    from mien.media.damage import DAMAGE_REASONS
    from mien.redact import RedactOptions

    if not has_ffmpeg():
        pytest.skip("the ffmpeg program is needed to cut the clip")
    bad = damaged_clip(clip("WolfgangLanger_Pexels.mp4"), tmp_path / "damaged.mp4")
    out = tmp_path / "out.mp4"
    session = LiveSession(
        StreamSource(str(bad)),
        options=LiveOptions(realtime=True, audio=False),
        redact=RedactOptions(method="fill"),
        output=str(out),
        analyzer_options=AnalyzerOptions(features=("detection",), num_threads=2),
    )
    events = collect(session)
    summary = check_envelope(events)
    frames = by_type(events, "frame")
    damaged = [f for f in frames if set(f.get("suspect", ())) & set(DAMAGE_REASONS)]
    assert any("corrupt_frame" in f["suspect"] for f in damaged)
    assert any("after_damage" in f["suspect"] for f in damaged)
    assert summary["suspect_reasons"]["corrupt_frame"] >= 1
    for f in damaged:
        assert f["action"] in ("covered_regions", "covered_frame")
        if f["action"] == "covered_regions":
            assert any(r["source"] == "suspect" for r in f["covered"])
    clean = [f for f in frames if "suspect" not in f]
    assert clean and all("action" not in f for f in clean)
    total, found = faces_in(out)
    assert total == len(frames) and found <= 0.1 * total


_FAILING_CLI = r"""
import sys
import mien.video.analyzer as va
after, calls, real = int(sys.argv[1]), [0], va.VideoAnalyzer.process
def process(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] > after:
        raise RuntimeError("detector failed (injected)")
    return real(self, *args, **kwargs)
va.VideoAnalyzer.process = process
from mien.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("policy", ["cover", "fail"])
def test_cli_detector_failure_exit_code_and_on_suspect(tmp_path: Path, policy: str) -> None:
    """``mien redact STREAM`` with a detector that fails after 5 frames: exit 1 either way;
    ``--on-suspect fail`` stops at the first suspect frame and closes the output so far."""
    out, report = tmp_path / "out.mkv", tmp_path / "report.jsonl"
    done = subprocess.run(
        [
            sys.executable, "-c", _FAILING_CLI, "5", "redact", "--stream", "--realtime",
            str(clip("single_face.mp4")), "-o", str(out), "--method", "fill", "--threads", "2",
            "--detect-every", "0", "--on-suspect", policy, "--report", str(report),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    events = [json.loads(x) for x in report.read_text().splitlines()]
    summary = check_envelope(events)
    frames = by_type(events, "frame")
    assert summary["suspect_frames"] >= 1 and "suspect frames" in done.stderr
    with av.open(str(out)) as c:
        written = sum(1 for _ in c.decode(video=0))
    assert written == summary["frames_written"] == len(frames)
    if policy == "cover":
        assert summary["reason"] == "end" and "error" not in summary
        assert written >= 60 and summary["suspect_reasons"]["not_searched"] >= 40
    else:
        assert summary["reason"] == "suspect_frame" and written < 60
        error = by_type(events, "error")[0]
        assert error["code"] == summary["error"]["code"] == "SuspectFrames"
        assert "on_suspect=fail" in error["message"] and "SuspectFrames" in done.stderr
        assert all("suspect" not in f for f in frames)  # stopped at the first one
        assert summary["suspect_frames"] == 1


# -- CLI -------------------------------------------------------------------------------------


def mien_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mien", *args]


def test_cli_sigterm_ends_cleanly_with_summary(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        mien_cmd(
            "analyze", "--stream", "--realtime", "--features", "detection", "--threads", "2",
            "-o", str(events), str(clip("WolfgangLanger_Pexels.mp4")),
        ),
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if events.exists() and '"type": "frame"' in events.read_text():
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert lines[-1]["type"] == "summary" and lines[-1]["reason"] == "stopped"
    assert lines[-1]["frames_decoded"] < 472  # stopped before the clip's end
    assert "stopped after" in err


def test_cli_pipe_stream(tmp_path: Path) -> None:
    ts = tmp_path / "clip.ts"
    with av.open(str(clip("single_face.mp4"))) as src, av.open(str(ts), "w") as dst:
        v = dst.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 640, 360, "yuv420p"
        v.options = {"preset": "ultrafast"}
        for frame in src.decode(video=0):
            frame.pts = None
            for p in v.encode(frame):
                dst.mux(p)
        for p in v.encode():
            dst.mux(p)
    with open(ts, "rb") as stdin:
        done = subprocess.run(
            mien_cmd(
                "analyze", "--stream", "--realtime", "--input-format", "mpegts", "--features",
                "detection", "-q", "-",
            ),
            cwd=REPO, stdin=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert lines[0]["type"] == "stream_started" and lines[0]["kind"] == "pipe"
    assert lines[-1]["type"] == "summary" and lines[-1]["reason"] == "end"
    assert lines[-1]["frames_decoded"] >= 60
    assert Counter(x["type"] for x in lines)["frame"] > 0


def test_cli_refuses_before_connecting() -> None:
    done = subprocess.run(
        mien_cmd("analyze", "rtsp://127.0.0.1:9/never", "--features", "detection,age"),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "refused" in done.stderr and done.stdout == ""


def test_cli_unreachable_exit_code(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    done = subprocess.run(
        mien_cmd(
            "redact", f"rtmp://127.0.0.1:{free_port()}/live/x", "-o", str(tmp_path / "o.mp4"),
            "--reconnect", "1", "--reconnect-max-delay", "0.5", "--timeout", "2",
            "--report", str(report),
        ),
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    last = json.loads(report.read_text().splitlines()[-1])
    assert last["type"] == "summary" and last["error"]["code"] == "StreamUnreachable"
    assert not (tmp_path / "o.mp4").exists()  # nothing is written without a stream


def test_rules_flags_on_a_stream(hls_single: Any) -> None:
    rules = pytest.importorskip("mien.rules")
    server, _ = hls_single
    text = "name: t\nrules:\n  - id: no-face\n    require: faces == 0\n    message: a face\n"
    session = LiveSession(
        server.url(),
        analyzer_options=DETECT,
        options=LiveOptions(realtime=True, max_frames=30),
        rules=rules.parse_rules(text),
    )
    events = collect(session)
    check_envelope(events)
    frames = by_type(events, "frame")
    assert frames and all("flags" in f for f in frames)
    flagged = [f for f in frames if f["flags"]]
    assert flagged and flagged[0]["flags"][0]["rule"] == "no-face"
    assert 1 <= len(by_type(events, "flag")) <= len(flagged)  # rising edges only


def test_rules_refuse_identity_fields() -> None:
    pytest.importorskip("mien.rules")
    from mien.errors import RefusedAttributeError

    with pytest.raises(RefusedAttributeError):
        LiveSession(
            "rtsp://127.0.0.1:9/x",
            analyzer_options=DETECT,
            rules="name: t\nrules:\n  - id: r\n    per_face: true\n"
            "    require: face.gender == 'x'\n    message: m\n",
        )


def test_cli_stream_defaults_are_live_options() -> None:
    """Each live default lives in LiveOptions: the CLI's stream options resolve to it (the
    detector side was 512 for ``mien analyze rtsp://...`` while docs and LiveOptions said
    640); video files keep the video default."""
    from mien.cli import build_parser
    from mien.cli.analyze import _video_options
    from mien.cli.live import _live_options
    from mien.video.analyzer import VideoOptions

    parser = build_parser()
    analyze = parser.parse_args(["analyze", "rtsp://127.0.0.1:9/cam"])
    redact = parser.parse_args(["redact", "rtsp://127.0.0.1:9/cam", "-o", "out.mp4"])
    assert _live_options(analyze, redact=False) == LiveOptions()
    assert _live_options(redact, redact=True) == LiveOptions()
    assert LiveOptions().detect_max_side == 640 and LiveOptions().on_suspect == "cover"
    video = parser.parse_args(["analyze", "clip.mp4"])
    assert _video_options(video).detect_side == VideoOptions().detect_side == 512
    given = parser.parse_args(
        ["redact", "rtsp://h/c", "-o", "o.mp4", "--detect-side", "0", "--on-suspect", "fail",
         "--hold", "0.5", "--reconnect", "2"]
    )  # fmt: skip
    opts = _live_options(given, redact=True)
    assert (opts.detect_max_side, opts.on_suspect, opts.hold_ms) == (None, "fail", 500.0)
    assert opts.reconnect.max_retries == 2 and opts.queue_frames == LiveOptions().queue_frames
    done = subprocess.run(
        mien_cmd("analyze", "--help"), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "default 512 for video files, 640 for live streams" in " ".join(done.stdout.split())


def test_error_texts_hide_credentials() -> None:
    from mien.live.source import hide_credentials

    text = "Connection refused: rtsp://admin:s3cret@10.0.0.5:554/cam and rtmp://u@h/live/x"
    assert hide_credentials(text) == (
        "Connection refused: rtsp://***@10.0.0.5:554/cam and rtmp://***@h/live/x"
    )
    assert hide_credentials("no address here: /dev/video0") == "no address here: /dev/video0"


def test_breaking_out_of_events_releases_the_stream(hls_single: Any) -> None:
    """A caller that stops iterating early (``break``, then the generator is closed) gets the
    decoder thread stopped and joined, as docs/live.md promises; it used to keep running."""
    server, _ = hls_single
    session = LiveSession(server.url(), analyzer_options=DETECT, options=LiveOptions(realtime=True))
    events = session.events()
    for ev in events:
        if ev.type == "frame":
            break
    decoder = session._decoder
    assert decoder is not None and decoder.is_alive()
    events.close()  # what a for loop's break leads to once the generator is dropped
    assert session.stopped
    assert not decoder.is_alive()
