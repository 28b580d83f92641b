"""The command line: JSON Lines that follow the schema, exit codes, annotate, models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from .conftest import SAMPLE, shared

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "src/mien/schema/output.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def mien(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mien", *args], capture_output=True, input=stdin, timeout=300
    )


def lines(out: bytes) -> list[dict]:
    records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    for rec in records:
        VALIDATOR.validate(rec)
    return records


def test_analyze_sample_follows_the_schema() -> None:
    proc = mien("analyze", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    (rec,) = lines(proc.stdout)
    assert rec["source"] == str(SAMPLE) and (rec["width"], rec["height"]) == (512, 512)
    (face,) = rec["faces"]
    assert set(face) == {"box", "score", "landmarks", "head_pose", "quality", "attributes"}
    assert "mesh" not in face  # only when asked for
    assert {m["name"] for m in rec["models"]} == {
        "centerface",
        "mediapipe-face-mesh",
        "mediapipe-iris",
    }


def test_mesh_only_when_asked_and_detection_only() -> None:
    (rec,) = lines(mien("analyze", str(SAMPLE), "--features", "mesh").stdout)
    assert len(rec["faces"][0]["mesh"]) == 478
    (rec,) = lines(mien("analyze", str(SAMPLE), "--features", "detection").stdout)
    assert set(rec["faces"][0]) == {"box", "score", "attributes"}
    assert [m["name"] for m in rec["models"]] == ["centerface"]


def test_folder_batch_with_bad_files_goes_on(tmp_path) -> None:
    folder = tmp_path / "in" / "nested"
    folder.mkdir(parents=True)
    shutil.copy(SAMPLE, folder / "a.jpg")
    (folder / "b.jpg").write_bytes(SAMPLE.read_bytes()[:2000])  # truncated
    (tmp_path / "in" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # corrupt
    (tmp_path / "in" / "notes.txt").write_text("skipped: not an image suffix")
    out = tmp_path / "out.jsonl"
    proc = mien("analyze", str(tmp_path / "in"), str(tmp_path / "missing.jpg"), "-o", str(out))
    assert proc.returncode == 1
    recs = lines(out.read_bytes())
    by_name = {Path(r["source"]).name: r for r in recs}
    assert set(by_name) == {"a.jpg", "b.jpg", "c.png", "missing.jpg"}
    assert len(by_name["a.jpg"]["faces"]) == 1
    assert by_name["b.jpg"]["error"]["code"] == "InvalidImage"
    assert by_name["c.png"]["error"]["code"] == "InvalidImage"
    assert by_name["missing.jpg"]["error"]["code"] == "NotFound"
    assert b"missing.jpg" in proc.stderr
    assert proc.stdout == b""
    assert not list(tmp_path.glob(".out.jsonl*.part"))


def test_stdin_and_pretty() -> None:
    proc = mien("analyze", "-", "--pretty", stdin=SAMPLE.read_bytes())
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    VALIDATOR.validate(rec)
    assert rec["source"] == "<stdin>" and len(rec["faces"]) == 1


def test_unwritable_output_exits_3(tmp_path) -> None:
    proc = mien("analyze", str(SAMPLE), "-o", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert proc.returncode == 3
    assert b"OutputError" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["analyze"],
        ["analyze", "x.jpg", "--threshold", "2"],
        ["frobnicate"],
        ["analyze", "x.jpg", "--features", "sparkle"],
    ],
)
def test_usage_errors_exit_2(args) -> None:
    assert mien(*args).returncode == 2


def test_annotate_writes_a_picture_without_metadata(tmp_path) -> None:
    src = tmp_path / "with_gps.jpg"
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}  # GPS IFD
    Image.open(SAMPLE).save(src, exif=exif.tobytes())
    out = tmp_path / "annotated.jpg"
    proc = mien("annotate", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    img = Image.open(out)
    assert img.size == (512, 512)
    assert len(img.getexif()) == 0
    # Something was drawn: the annotated picture differs from the input around the face.
    a = Image.open(src).convert("RGB").crop((170, 40, 290, 200))
    b = img.convert("RGB").crop((170, 40, 290, 200))
    assert a.tobytes() != b.tobytes()


def test_annotate_labels_wrap_inside_a_narrow_picture() -> None:
    import numpy as np

    from mien.render.annotate import annotate, label_lines
    from mien.types import AttributeColumn, Faces

    words = ["0.93", "y+5 p+2 r+2", "sharp 0.47", "eyeglasses", "mask:worn", "headwear"]
    lines = label_lines(words, 120, 0.4)
    assert len(lines) > 1 and " ".join(lines) == " ".join(words)  # wrapped, nothing lost
    assert label_lines(words, 10_000, 0.4) == [" ".join(words)]
    # a face at the right edge of a narrow picture: the label stays inside it, wrapped
    rgb = np.full((200, 160, 3), 128, np.uint8)
    faces = Faces(
        boxes=np.array([[100, 120, 155, 190]], np.float32),
        scores=np.array([0.93], np.float32),
        attributes={
            name: AttributeColumn(values=(True,), confidence=np.array([0.9]), reasons=(None,))
            for name in ("eyeglasses", "sunglasses", "smile", "headwear")
        },
    )
    out = annotate(rgb, faces)
    black = np.all(out == 0, axis=2)
    rows = np.nonzero(black.any(axis=1))[0]
    # shifted left of the box (x 100) rather than cut off at the right; experimental attributes
    # end in "?" (since issue 17), which changes where the lines wrap, so the widest line no
    # longer spans the whole picture
    cols = np.nonzero(black.any(axis=0))[0]
    assert rows.size and cols.min() < 100 - 40 and cols.max() <= 159
    assert rows.min() < 120 - 2 * 12  # more than one line above the box


def test_annotate_bad_input(tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    proc = mien("annotate", str(bad), "-o", str(tmp_path / "o.jpg"))
    assert proc.returncode == 1 and b"InvalidImage" in proc.stderr
    assert not (tmp_path / "o.jpg").exists()


def test_models_lists_verified_cards() -> None:
    proc = mien("models")
    assert proc.returncode == 0
    cards = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    names = {c["name"] for c in cards}
    assert {"centerface", "mediapipe-face-mesh", "mediapipe-iris", "mien-attr-smile"} <= names
    assert all(c["verified"] and len(c["sha256"]) == 64 for c in cards)


def test_shared_photos_follow_the_schema(tmp_path) -> None:
    folder = shared("dlib_examples_faces", "images")
    proc = mien("analyze", str(folder), "--features", "all", "-q")
    assert proc.returncode == 0, proc.stderr
    recs = lines(proc.stdout)
    assert len(recs) == len(list(folder.glob("*.jpg")))
    assert sum(len(r["faces"]) for r in recs) >= 36


def test_analyze_folder_in_worker_processes_gives_the_one_process_records(tmp_path: Path) -> None:
    """``mien analyze DIR`` runs pictures in the batch engine's worker processes by default:
    the same JSON Lines, in the same order, as ``--workers 1`` (this process)."""
    for name in ("2008_001322.jpg", "2009_004587.jpg", "dogs.jpg"):
        shutil.copy(shared("dlib_examples_faces", "images", name), tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    pooled = mien("analyze", str(tmp_path), "--features", "detection", "--workers", "2", "-q")
    single = mien("analyze", str(tmp_path), "--features", "detection", "--workers", "1", "-q")
    assert pooled.returncode == single.returncode == 1, pooled.stderr  # broken.jpg: exit 1
    assert pooled.stdout == single.stdout
    records = lines(pooled.stdout)
    assert [Path(r["source"]).name for r in records] == sorted(p.name for p in tmp_path.iterdir())
    assert sum("error" in r for r in records) == 1 and len(records[1]["faces"]) >= 1
