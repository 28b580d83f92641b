"""Video redaction's threads (decode, detect + track, cover + encode): a failure in any stage
ends the job with mien's error, leaves no thread running and nothing at the output path."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mien.detect.frame import FrameDetector
from mien.errors import OutputError
from mien.media.video import VideoWriter
from mien.redact.encoder import EncodeStage
from mien.redact.video import redact_video
from tests.test_redact_video import THREADS
from tests.test_video import clip_head, media

STAGE_THREADS = ("mien-video-decode", "mien-video-encode")


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in STAGE_THREADS]


def assert_clean(out_dir: Path) -> None:
    deadline = time.monotonic() + 5
    while stage_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stage_threads() == []
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    return clip_head(media("single_face.mp4"), tmp_path / "in.mp4", 1.0)


@pytest.fixture()
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_encoder_failure_is_mien_error(
    clip: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = VideoWriter.write_rgb

    def failing(self: VideoWriter, rgb: Any, pts: int | None) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OutputError(f"cannot write {self.path}: disk full (test)")
        real(self, rgb, pts)

    monkeypatch.setattr(VideoWriter, "write_rgb", failing)
    with pytest.raises(OutputError, match="disk full"):
        redact_video(clip, out_dir / "o.mp4", analyzer_options=THREADS)
    assert calls["n"] == 5  # the stage stopped at its first failure
    assert_clean(out_dir)


def test_unexpected_encoder_exception_still_ends_the_job(
    clip: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: VideoWriter, rgb: Any, pts: int | None) -> None:
        raise ZeroDivisionError("encoder bug (test)")

    monkeypatch.setattr(VideoWriter, "write_rgb", broken)
    with pytest.raises(ZeroDivisionError):
        redact_video(clip, out_dir / "o.mp4", analyzer_options=THREADS)
    assert_clean(out_dir)


def test_interrupt_in_the_detect_stage(
    clip: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or any BaseException) while detecting: the other two stages stop too."""
    real = FrameDetector.detect

    def interrupted(self: FrameDetector, frame: Any) -> Any:
        if frame.index == 12:
            raise KeyboardInterrupt
        return real(self, frame)

    monkeypatch.setattr(FrameDetector, "detect", interrupted)
    with pytest.raises(KeyboardInterrupt):
        redact_video(clip, out_dir / "o.mp4", analyzer_options=THREADS)
    assert_clean(out_dir)


def test_cli_exit_code_when_the_encoder_fails(
    clip: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mien.cli import main

    def full(self: VideoWriter, rgb: Any, pts: int | None) -> None:
        raise OutputError(f"cannot write {self.path}: No space left on device (test)")

    monkeypatch.setattr(VideoWriter, "write_rgb", full)
    code = main(["redact", str(clip), "-o", str(out_dir / "o.mp4"), "-q", "--threads", "2"])
    assert code != 0
    assert "No space left on device" in capsys.readouterr().err
    assert_clean(out_dir)


def test_encode_stage_order_errors_and_abort() -> None:
    done: list[int] = []
    stage = EncodeStage(done.append, queue_size=2)
    for k in range(50):
        stage.put(k)
    stage.close()
    assert done == list(range(50))

    def fail_at_3(k: int) -> None:
        if k == 3:
            raise OutputError("boom")

    stage = EncodeStage(fail_at_3, queue_size=1)
    with pytest.raises(OutputError, match="boom"):
        for k in range(100):
            stage.put(k)
        stage.close()
    stage.abort()
    gate = threading.Event()
    stage = EncodeStage(lambda _k: gate.wait(5), queue_size=2)
    stage.put(1)
    stage.put(2)
    gate.set()
    stage.abort()
    assert "mien-video-encode" not in stage_threads()
