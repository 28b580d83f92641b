"""``mien redact``: exit codes, folders, reports, and the dispatch to video and live redaction."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mien.cli import main
from mien.cli.redact import is_stream, is_video
from mien.media.image import load_image
from mien.redact import RedactionReport
from tests.conftest import SAMPLE


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_redacts_a_picture_and_writes_the_report(tmp_path: Path) -> None:
    out, rep = tmp_path / "out.jpg", tmp_path / "audit.json"
    code = main(["redact", str(SAMPLE), "-o", str(out), "--report", str(rep)])
    assert code == 0
    assert load_image(out).rgb.shape == (512, 512, 3)
    doc = json.loads(rep.read_text())
    assert doc["source"] == str(SAMPLE) and doc["output"] == str(out) and doc["kind"] == "image"
    assert doc["counts"]["regions"] == 1 and doc["counts"]["detected"] == 1
    region = doc["regions"][0]
    assert region["source"] == "detected" and 0.25 <= region["score"] <= 1.0
    x1, y1, x2, y2 = region["box"]
    assert 150 < x1 < x2 < 300 and 30 < y1 < y2 < 200  # the astronaut's face
    assert doc["options"] == {"method": "blur", "shape": "ellipse", "scale": 1.8}
    assert doc["threshold"] == 0.25 and doc["metadata_kept"] is False
    assert doc["models"][0]["name"] == "centerface"


@pytest.mark.parametrize(
    ("flags", "check"),
    [
        (["--method", "fill", "--color", "#ff0000", "--shape", "box"], (255, 0, 0)),
        (["--method", "fill", "--color", "0,0,255", "--scale", "1.0"], (0, 0, 255)),
    ],
)
def test_method_shape_colour_options(
    tmp_path: Path, flags: list[str], check: tuple[int, ...]
) -> None:
    out = tmp_path / "o.png"
    assert main(["redact", str(SAMPLE), "-o", str(out), *flags]) == 0
    rgb = load_image(out).rgb
    assert tuple(rgb[110, 225]) == check  # the middle of the face
    assert tuple(rgb[400, 20]) == tuple(load_image(SAMPLE).rgb[400, 20])


def test_pixelate_and_threshold_options(tmp_path: Path) -> None:
    out, rep = tmp_path / "o.png", tmp_path / "r.json"
    assert (
        main(
            [
                "redact",
                str(SAMPLE),
                "-o",
                str(out),
                "--method",
                "pixelate",
                "--threshold",
                "0.6",
                "--report",
                str(rep),
            ]
        )
        == 0
    )
    doc = json.loads(rep.read_text())
    assert doc["threshold"] == 0.6 and doc["options"]["method"] == "pixelate"


def test_output_into_existing_folder(tmp_path: Path) -> None:
    assert main(["redact", str(SAMPLE), "-o", str(tmp_path)]) == 0
    assert (tmp_path / SAMPLE.name).is_file()


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["redact", str(SAMPLE), "-o", str(tmp_path / "o.gif")],
        ["redact", str(SAMPLE), "-o", str(tmp_path / "o.jpg"), "--method", "smear"],
        ["redact", str(SAMPLE), "-o", str(tmp_path / "o.jpg"), "--scale", "0.2"],
        ["redact", str(SAMPLE), "-o", str(tmp_path / "o.jpg"), "--color", "red"],
        ["redact", str(SAMPLE)],
    ):
        with pytest.raises(SystemExit) as exc:
            code = main(argv)
            raise SystemExit(code)
        assert exc.value.code == 2, argv
    assert "error" in capsys.readouterr().err
    assert _listing(tmp_path) == []


def test_bad_input_exit_1_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, content in (("corrupt.jpg", b"\xff\xd8\xff garbage"), ("notes.png", b"hello")):
        src = tmp_path / name
        src.write_bytes(content)
        assert main(["redact", str(src), "-o", str(tmp_path / f"out-{name}")]) == 1
    assert main(["redact", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "o.jpg")]) == 1
    err = capsys.readouterr().err
    assert "InvalidImage" in err and "NotFound" in err
    assert _listing(tmp_path) == ["corrupt.jpg", "notes.png"]


def test_unwritable_output_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["redact", str(SAMPLE), "-o", str(tmp_path / "no" / "such" / "o.jpg")]) == 3
    assert "OutputError" in capsys.readouterr().err
    assert _listing(tmp_path) == []


def test_folder_mirrors_layout_and_goes_on_after_errors(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "astro.jpg").write_bytes(SAMPLE.read_bytes())
    Image.open(SAMPLE).save(src / "top.png")
    Image.open(SAMPLE).save(src / "anim.gif")
    (src / "broken.jpg").write_bytes(SAMPLE.read_bytes()[:300])
    (src / "readme.txt").write_text("not a picture, skipped")
    (src / ".hidden.jpg").write_bytes(SAMPLE.read_bytes())
    report = tmp_path / "audit.json"
    code = main(["redact", str(src), "-o", str(dst), "--report", str(report), "-q"])
    assert code == 1  # broken.jpg could not be read; the others were redacted
    assert _listing(dst) == ["a", "a/b", "a/b/astro.jpg", "anim.png", "top.png"]
    doc = json.loads(report.read_text())
    assert doc["kind"] == "folder" and len(doc["reports"]) == 3
    assert [e["source"] for e in doc["errors"]] == [str(src / "broken.jpg")]
    assert all(r["counts"]["regions"] == 1 for r in doc["reports"])
    # Redacted for real: the face area differs from the input.
    a = load_image(dst / "top.png").rgb.astype(int)
    b = load_image(SAMPLE).rgb.astype(int)
    assert np.abs(a[80:150, 190:260] - b[80:150, 190:260]).mean() > 10


def test_folder_output_inside_input_is_not_walked(tmp_path: Path) -> None:
    (tmp_path / "p.jpg").write_bytes(SAMPLE.read_bytes())
    dst = tmp_path / "redacted"
    assert main(["redact", str(tmp_path), "-o", str(dst), "-q"]) == 0
    assert main(["redact", str(tmp_path), "-o", str(dst), "-q"]) == 0  # again: same result
    assert _listing(dst) == ["p.jpg"]


def test_folder_input_file_output_is_usage_error(tmp_path: Path) -> None:
    f = tmp_path / "file.jpg"
    f.write_bytes(b"x")
    assert main(["redact", str(tmp_path), "-o", str(f)]) == 2


def test_keep_metadata_flag(tmp_path: Path) -> None:
    src = tmp_path / "in.jpg"
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif.get_ifd(0x8825)[1] = "N"
    Image.open(SAMPLE).save(src, exif=exif.tobytes())
    assert main(["redact", str(src), "-o", str(tmp_path / "strip.jpg")]) == 0
    assert main(["redact", str(src), "-o", str(tmp_path / "keep.jpg"), "--keep-metadata"]) == 0
    with Image.open(tmp_path / "strip.jpg") as im:
        assert not im.getexif()
    with Image.open(tmp_path / "keep.jpg") as im:
        assert im.getexif()[0x010F] == "SecretCam" and im.getexif().get_ifd(0x8825)[1] == "N"


# -- dispatch ---------------------------------------------------------------------------------


def test_stream_and_video_detection(tmp_path: Path) -> None:
    for url in ("rtsp://cam/1", "rtmp://x/y", "https://x/live.m3u8", "/dev/video0"):
        assert is_stream(url)
    for not_url in (str(SAMPLE), "clip.mp4", "https://x/photo.jpg"):
        assert not is_stream(not_url)
    assert is_video(Path("clip.MP4")) and is_video(Path("a.mkv")) and is_video(Path("a.webm"))
    assert not is_video(SAMPLE)
    odd = tmp_path / "clip.bin"  # no known suffix: PyAV probes it; text has no video stream
    odd.write_text("hello")
    assert not is_video(odd)


def test_video_input_goes_to_redact_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_redact_video(source: str, output: str, **kw: Any) -> RedactionReport:
        calls.append({"source": source, "output": output, **kw})
        return RedactionReport(source, output, "video", frames=3)

    from mien.redact.video import VideoRedactOptions

    mod = types.ModuleType("mien.redact.video")
    mod.redact_video = fake_redact_video  # type: ignore[attr-defined]
    mod.VideoRedactOptions = VideoRedactOptions  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mien.redact.video", mod)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00")
    rep = tmp_path / "r.json"
    args = [
        "redact",
        str(clip),
        "-o",
        str(tmp_path / "o.mp4"),
        "--method",
        "pixelate",
        "--threshold",
        "0.4",
        "--report",
        str(rep),
    ]
    assert main(args) == 0
    (call,) = calls
    assert call["source"] == str(clip) and call["options"].method == "pixelate"
    assert call["analyzer_options"].threshold == 0.4
    assert call["video"].on_suspect == "cover"  # the default: suspect frames are covered
    assert json.loads(rep.read_text())["kind"] == "video"


def test_stream_goes_to_live(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    # mien.live's entry point replaced by a recorder: this checks the dispatch only (mien.live
    # has its own tests).
    live_cli = pytest.importorskip("mien.cli.live")
    monkeypatch.setattr(live_cli, "run_redact", lambda args: seen.append(args) or 0)
    assert main(["redact", "rtsp://camera.local/stream", "-o", "out.mp4"]) == 0
    assert seen[0].input == "rtsp://camera.local/stream" and seen[0].output == "out.mp4"
