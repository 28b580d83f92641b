"""Every read is bounded: FIFOs, devices and unknown video codecs as inputs (issue 14).

A FIFO opened for reading blocks until a writer comes, which here is never; these inputs used
to hang ``mien analyze``, ``mien redact`` and ``mien check --rules``. Each CLI case runs the real
command in a subprocess with a timeout, so a hang fails the test instead of hanging the suite.
Library-level cases run the call in a thread and, if it blocks, release it by opening the FIFO
for writing, then fail.

The unknown-codec clip is made here: a shared clip remuxed to MKV (stream copy) whose CodecID
``V_MPEG4/ISO/AVC`` is patched to the same-length ``V_MIEN/UNKNOWN!``, which FFmpeg has no
codec for; it used to raise AttributeError and lose the rest of a folder run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from mien.errors import InvalidVideoError, MienError, RuleError, UnsupportedMediaError
from tests.conftest import shared

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")

#: Seconds one CLI run may take (models load in each); a hang on a FIFO exceeds it.
CLI_TIMEOUT = 240
#: Seconds a library call may take before it counts as blocked.
CALL_TIMEOUT = 20


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``mien ARGS`` as a user runs it; a run past CLI_TIMEOUT (a hang) fails the test."""
    cmd = [sys.executable, "-m", "mien", *map(str, args)]
    try:
        return subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"mien {' '.join(map(str, args))} hung (no end in {CLI_TIMEOUT} s)")


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_source(recs: list[dict[str, Any]], source: Path, kind: str | None = None) -> dict[str, Any]:
    found = [r for r in recs if r["source"] == str(source) and r.get("kind") == kind]
    assert len(found) == 1, f"{source}: {len(found)} record(s) of kind {kind}"
    return found[0]


def bounded(call: Callable[[], Any], fifos: list[Path]) -> BaseException | None:
    """Run ``call`` in a thread; return what it raised (None when it returned). If it is still
    running after CALL_TIMEOUT, open each FIFO for writing so a blocked open returns, then fail."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(CALL_TIMEOUT)
    if thread.is_alive():
        for fifo in fifos:  # unblock the reader (it then sees an empty file) and fail
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        thread.join(CALL_TIMEOUT)
        pytest.fail(f"the call blocked on {', '.join(map(str, fifos))}")
    return outcome[0]


# -- test files ----------------------------------------------------------------------------


def photo() -> Path:
    return shared("pyfeat_media", "single_face.jpg")


def remux_head(dst: Path, seconds: float = 0.5) -> Path:
    """The first ``seconds`` of the shared single-face clip, stream-copied into MKV."""
    from tests.test_video import clip_head

    return clip_head(shared("pyfeat_media", "single_face.mp4"), dst, seconds)


def patch_codec_id(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    assert len(old) == len(new)
    data = src.read_bytes()
    assert data.count(old) == 1, f"{old!r} not found once in {src}"
    dst.write_bytes(data.replace(old, new))
    return dst


def unknown_video_codec(dst: Path, work: Path) -> Path:
    """An MKV whose video CodecID FFmpeg does not know (so no decoder, no codec context)."""
    mkv = remux_head(work / "head_for_unknown.mkv")
    return patch_codec_id(mkv, dst, b"V_MPEG4/ISO/AVC", b"V_MIEN/UNKNOWN!")


def unknown_audio_codec(dst: Path, work: Path) -> Path:
    """An MKV with a good H.264 video stream and an audio stream of an unknown CodecID."""
    mkv = remux_head(work / "head_for_audio.mkv")
    data = mkv.read_bytes()
    old = next(i for i in (b"A_MPEG/L3", b"A_MPEG/L2", b"A_AAC") if data.count(i) == 1)
    return patch_codec_id(mkv, dst, old, b"A_" + b"Z" * (len(old) - 2))


def zero_size_video(dst: Path) -> Path:
    """An MJPEG MKV whose header says 0x0 px and whose frames carry no JPEG markers, so
    neither the header nor a decoded frame gives FFmpeg a frame size."""
    tmp = dst.with_name("mjpeg_src.mkv")
    with av.open(str(tmp), "w") as c:
        s: Any = c.add_stream("mjpeg", rate=5)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for k in range(3):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * k, np.uint8), format="rgb24")
            f.pts = k
            for p in s.encode(f.reformat(format="yuvj420p")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = bytearray(tmp.read_bytes())
    for element in (b"\xb0\x81", b"\xba\x81"):  # Matroska PixelWidth / PixelHeight, 1 byte
        at = data.find(element)
        assert at > 0
        data[at + 2] = 0
    cluster = data.find(b"\x1f\x43\xb6\x75")
    body = bytes(data[cluster:]).replace(b"\xff\xd8", b"\0\0").replace(b"\xff\xc0", b"\0\0")
    dst.write_bytes(bytes(data[:cluster]) + body)
    tmp.unlink()
    return dst


# -- FIFOs and devices through the CLI -----------------------------------------------------


def test_analyze_fifo_and_device_inputs_are_errors_not_hangs(tmp_path: Path) -> None:
    fifo_video, fifo_image = tmp_path / "pipe.mp4", tmp_path / "pipe.jpg"
    os.mkfifo(fifo_video)
    os.mkfifo(fifo_image)
    good, out = photo(), tmp_path / "out.jsonl"
    args = [fifo_video, fifo_image, "/dev/null", good, "--features", "detection", "-o", out]
    proc = run_cli("analyze", *args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    recs = records(out)
    video = by_source(recs, fifo_video, "video")
    assert video["error"]["code"] == "UnsupportedMedia"
    assert "not a regular file (FIFO)" in video["error"]["message"]
    image = by_source(recs, fifo_image)
    assert image["error"]["code"] == "UnsupportedMedia"
    assert "not a regular file (FIFO)" in image["error"]["message"]
    device = by_source(recs, Path("/dev/null"))
    assert device["error"]["code"] == "UnsupportedMedia"
    assert "character device" in device["error"]["message"]
    assert by_source(recs, good)["faces"]  # the regular file after them was analysed
    assert f"{fifo_video}: UnsupportedMedia" in proc.stderr


def test_analyze_folder_reports_its_fifos(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo().read_bytes())
    for name in ("b.mp4", "c.jpg", "d.txt"):
        os.mkfifo(folder / name)
    out = tmp_path / "out.jsonl"
    proc = run_cli("analyze", folder, "--features", "detection", "-o", out, "-q", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    recs = records(out)
    assert by_source(recs, folder / "a.jpg")["faces"]
    assert by_source(recs, folder / "b.mp4", "video")["error"]["code"] == "UnsupportedMedia"
    assert by_source(recs, folder / "c.jpg")["error"]["code"] == "UnsupportedMedia"
    # like any .txt file, a FIFO without a picture or video suffix is not an input
    assert not [r for r in recs if r["source"].endswith("d.txt")]
    assert len(recs) == 3


@pytest.mark.parametrize(("name", "output"), [("pipe.mp4", "out.mp4"), ("pipe", "out.mp4")])
def test_redact_fifo_input_is_an_error_not_a_hang(tmp_path: Path, name: str, output: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    report = tmp_path / "report.json"
    proc = run_cli("redact", fifo, "-o", tmp_path / output, "--report", report, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # an unreadable input, not a usage error
    assert f"{fifo}: UnsupportedMedia: " in proc.stderr and "(FIFO)" in proc.stderr
    assert not (tmp_path / output).exists()
    doc = json.loads(report.read_text())
    assert [e["code"] for e in doc["errors"]] == ["UnsupportedMedia"]


def test_redact_folder_reports_its_fifos_and_redacts_the_rest(tmp_path: Path) -> None:
    folder, dst, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo().read_bytes())
    os.mkfifo(folder / "b.mp4")
    os.mkfifo(folder / "c.png")
    proc = run_cli("redact", folder, "-o", dst, "--report", report, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert (dst / "a.jpg").is_file()
    assert not (dst / "b.mp4").exists() and not (dst / "c.png").exists()
    doc = json.loads(report.read_text())
    assert [r["source"] for r in doc["reports"]] == [str(folder / "a.jpg")]
    errors = {e["source"]: e for e in doc["errors"]}
    assert set(errors) == {str(folder / "b.mp4"), str(folder / "c.png")}
    assert all(e["code"] == "UnsupportedMedia" for e in errors.values())
    assert all("not a regular file (FIFO)" in e["message"] for e in errors.values())


def test_check_rules_fifo_is_a_rule_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    proc = run_cli("check", "--rules", fifo, photo(), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr  # invalid rules: nothing was checked
    assert f"{fifo}: cannot read the rule file: not a regular file (FIFO)" in proc.stderr
    assert proc.stdout == ""


# -- unknown codecs and zero-size streams through the CLI ----------------------------------


@pytest.fixture()
def codec_folder(tmp_path: Path) -> Path:
    """a.mkv (good), b.mkv (unknown video codec), c.mkv (0x0 px), d.mkv (unknown audio codec,
    good video), e.mkv (good)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    remux_head(folder / "a.mkv")
    unknown_video_codec(folder / "b.mkv", tmp_path)
    zero_size_video(folder / "c.mkv")
    unknown_audio_codec(folder / "d.mkv", tmp_path)
    remux_head(folder / "e.mkv")
    return folder


def test_analyze_folder_with_unknown_codec_goes_on(tmp_path: Path, codec_folder: Path) -> None:
    out = tmp_path / "results.jsonl"
    args = ["--features", "detection", "--every-n", "5", "-o", out]
    proc = run_cli("analyze", codec_folder, *args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    recs = records(out)
    unknown = by_source(recs, codec_folder / "b.mkv", "video")["error"]
    assert unknown["code"] == "UnsupportedMedia"
    assert "'V_MIEN/UNKNOWN!'" in unknown["message"]
    zero = by_source(recs, codec_folder / "c.mkv", "video")["error"]
    assert zero["code"] == "InvalidVideo" and "0x0" in zero["message"]
    for name in ("a.mkv", "d.mkv", "e.mkv"):  # before and after the bad ones: analysed
        video = by_source(recs, codec_folder / name, "video")
        assert "error" not in video and video["frames_analysed"] >= 3
        frames = [
            r for r in recs if r["source"] == str(codec_folder / name) and r.get("kind") == "frame"
        ]
        assert any(f["faces"] for f in frames)


def test_redact_folder_with_unknown_codec_goes_on(tmp_path: Path, codec_folder: Path) -> None:
    dst, report = tmp_path / "out", tmp_path / "report.json"
    proc = run_cli("redact", codec_folder, "-o", dst, "--report", report, "-q", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(report.read_text())
    errors = {Path(e["source"]).name: e for e in doc["errors"]}
    assert set(errors) == {"b.mkv", "c.mkv"}
    assert errors["b.mkv"]["code"] == "UnsupportedMedia"
    assert "'V_MIEN/UNKNOWN!'" in errors["b.mkv"]["message"]
    assert errors["c.mkv"]["code"] == "InvalidVideo"
    assert not (dst / "b.mkv").exists() and not (dst / "c.mkv").exists()
    done = {Path(r["source"]).name: r for r in doc["reports"]}
    assert set(done) == {"a.mkv", "d.mkv", "e.mkv"}
    for name in done:
        with av.open(str(dst / name)) as c:
            assert c.streams.video
    # the audio FFmpeg cannot name is dropped, and the report says so
    assert "unknown codec" in json.dumps(done["d.mkv"])


# -- the library calls ---------------------------------------------------------------------


def test_library_readers_refuse_fifos_without_blocking(tmp_path: Path) -> None:
    from mien.batch.inputs import BatchInputError, list_items
    from mien.media.image import load_image
    from mien.media.video import VideoReader, probe_video
    from mien.rules import load_rules

    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    calls: list[tuple[Callable[[], Any], type[MienError]]] = [
        (lambda: probe_video(fifo), UnsupportedMediaError),
        (lambda: VideoReader(fifo), UnsupportedMediaError),
        (lambda: load_image(fifo), UnsupportedMediaError),
        (lambda: load_rules(str(fifo)), RuleError),
        (lambda: list_items(str(fifo)), BatchInputError),
    ]
    for call, expected in calls:
        raised = bounded(call, [fifo])
        assert isinstance(raised, expected), repr(raised)
        assert "not a regular file (FIFO)" in str(raised)


def test_fifo_swapped_in_after_the_stat_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stat-then-open race: stat saw a regular file, the path is a FIFO when opened. The
    O_NONBLOCK open returns at once and the descriptor's fstat refuses it."""
    from mien.media.image import load_image
    from mien.media.video import probe_video

    fifo = tmp_path / "swapped.jpg"
    os.mkfifo(fifo)
    regular_stat = os.stat(photo())
    real_stat = os.stat

    def stat_before_swap(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) == str(fifo):
            return regular_stat
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_before_swap)
    for call in (lambda: load_image(fifo), lambda: probe_video(fifo)):
        raised = bounded(call, [fifo])
        assert isinstance(raised, UnsupportedMediaError), repr(raised)
        assert "not a regular file (FIFO)" in str(raised)


def test_probe_and_reader_name_the_unknown_codec(tmp_path: Path) -> None:
    from mien.media.video import VideoReader, probe_video

    clip = unknown_video_codec(tmp_path / "unknown.mkv", tmp_path)
    for call in (probe_video, VideoReader):
        with pytest.raises(UnsupportedMediaError, match=r"codec id 'V_MIEN/UNKNOWN!'") as info:
            call(clip)
        assert str(info.value).startswith(f"{clip}: ")
    assert av.logging.get_level() is None  # the log level borrowed to read the id is restored
    with pytest.raises(InvalidVideoError, match=r"no frame size \(0x0\)"):
        probe_video(zero_size_video(tmp_path / "zero.mkv"))
    info_ = probe_video(unknown_audio_codec(tmp_path / "audio.mkv", tmp_path))
    assert info_.codec == "h264" and info_.has_audio and info_.audio_codec == "unknown"
    # an AVI names its codec by FourCC: an unknown one is named in the message
    avi = tmp_path / "fourcc.avi"
    with av.open(str(avi), "w") as c:
        s: Any = c.add_stream("mpeg4", rate=5)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for k in range(3):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 60 * k, np.uint8), format="rgb24")
            f.pts = k
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tag = next(t for t in (b"FMP4", b"XVID", b"DIVX", b"MP4V") if t in avi.read_bytes())
    bad_avi = tmp_path / "unknown_fourcc.avi"
    bad_avi.write_bytes(avi.read_bytes().replace(tag, b"ZQZQ"))
    with pytest.raises(UnsupportedMediaError, match=r"codec tag 'ZQZQ' is not known"):
        probe_video(bad_avi)


def test_discovery_yields_special_files_with_a_media_suffix(tmp_path: Path) -> None:
    """Folder walks list a FIFO with a picture/video suffix (so it gets an error record) and
    leave out one with another suffix, like any other file of that suffix."""
    from mien.batch.inputs import list_items
    from mien.media.discover import iter_inputs

    (tmp_path / "a.jpg").write_bytes(b"x")
    for name in ("b.mp4", "c.png", "d.txt"):
        os.mkfifo(tmp_path / name)
    found = [Path(p).name for p in iter_inputs([tmp_path], videos=True)]
    assert found == ["a.jpg", "b.mp4", "c.png"]
    items = list_items(str(tmp_path))  # mien batch: pictures only
    assert [i.key for i in items] == ["a.jpg", "c.png"]  # the worker records c.png's error
