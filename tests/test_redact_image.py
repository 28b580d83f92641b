"""Redacting real pictures: every face covered, the rest untouched, metadata gone, atomic."""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mien.errors import InvalidImageError, MediaError, SourceNotFoundError, UnsupportedMediaError
from mien.media.image import load_image
from mien.media.write import OutputError
from mien.options import AnalyzerOptions
from mien.redact import RedactOptions, redact_array, redact_image, region_mask
from mien.redact.image import redaction_analyzer_options
from tests.conftest import SAMPLE, shared

# Photos of facemask_kaggle_voc whose faces are all >= 25 px wide (the first 8 in name order
# with at least two faces).
PHOTOS = (
    "maksssksksss114.jpg",
    "maksssksksss118.jpg",
    "maksssksksss135.jpg",
    "maksssksksss138.jpg",
    "maksssksksss140.jpg",
    "maksssksksss141.jpg",
    "maksssksksss146.jpg",
    "maksssksksss15.jpg",
)


def _facemask_boxes() -> dict[str, np.ndarray]:
    rows: dict[str, list[list[float]]] = defaultdict(list)
    with open(shared("facemask_kaggle_voc", "annotations.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["image"]].append([float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
    return {k: np.array(v) for k, v in rows.items()}


def _box_share(mask: np.ndarray, box: np.ndarray) -> float:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return float(mask[y1:y2, x1:x2].mean())


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
def test_every_labelled_face_is_covered(tmp_path: Path, method: str) -> None:
    gt = _facemask_boxes()
    opts = RedactOptions(method=method)  # type: ignore[arg-type]
    for name in PHOTOS:
        src = shared("facemask_kaggle_voc", "images", name)
        out = tmp_path / f"{Path(name).stem}.png"
        report = redact_image(src, out, options=opts)
        before = load_image(src).rgb.astype(int)
        after = load_image(out).rgb.astype(int)
        boxes = np.array([r.box for r in report.regions]).reshape(-1, 4)
        mask = region_mask(before.shape[:2], boxes, opts)
        for box in gt[name]:
            share = _box_share(mask, box)
            assert share >= 0.9, f"{name}: face {box.tolist()} only {share:.2f} covered"
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            diff = np.abs(after[y1:y2, x1:x2] - before[y1:y2, x1:x2]).mean()
            assert diff > 6, f"{name}: face {box.tolist()} barely changed ({diff:.1f})"
        # Every pixel outside the covered area is exactly the input's (PNG is lossless).
        assert np.array_equal(after[~mask], before[~mask])
        assert (~mask).mean() > 0.1  # and that is a good part of the picture


def test_astronaut_face_blurred_rest_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "astronaut.png"
    report = redact_image(SAMPLE, out)
    assert report.counts["regions"] == 1 and report.kind == "image"
    assert report.threshold == pytest.approx(0.25)
    before, after = load_image(SAMPLE).rgb.astype(int), load_image(out).rgb.astype(int)
    x1, y1, x2, y2 = (int(v) for v in report.regions[0].box)
    face_b, face_a = (
        before[y1 + 10 : y2 - 10, x1 + 10 : x2 - 10],
        after[y1 + 10 : y2 - 10, x1 + 10 : x2 - 10],
    )
    grad = lambda a: np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
    assert grad(face_a) < 0.3 * grad(face_b)
    mask = region_mask(before.shape[:2], np.array([report.regions[0].box]), RedactOptions())
    assert np.array_equal(after[~mask], before[~mask])  # everything else untouched (PNG)
    assert (~mask).mean() > 0.7 and not mask[:, :100].any() and not mask[350:].any()


def test_redact_array_returns_copy_and_report() -> None:
    rgb = load_image(SAMPLE).rgb
    out, report = redact_array(rgb, options=RedactOptions(method="fill"))
    assert out is not rgb and not np.array_equal(out, rgb)
    assert report.output == "" and report.width == 512 and len(report.regions) == 1
    with pytest.raises(ValueError):
        redact_array(rgb[..., 0])


def test_analyzer_options_keep_detector_settings_drop_features() -> None:
    assert redaction_analyzer_options().threshold == 0.25
    o = redaction_analyzer_options(AnalyzerOptions(threshold=0.6, features="detection,mesh"))
    assert o.threshold == 0.6 and o.features == ("detection",)


# -- metadata ---------------------------------------------------------------------------------

GPS_IFD = 0x8825


def _jpeg_with_metadata(path: Path) -> None:
    """A non-square JPEG with EXIF (camera, GPS, orientation 6), XMP, ICC and a comment."""
    rgb = load_image(SAMPLE).rgb[:, 40:440]  # 512 x 400 -> stored turned, shown upright
    stored = np.ascontiguousarray(np.rot90(rgb, 1))  # orientation 6 turns it back clockwise
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = 6  # Orientation
    exif[0x927C] = b"maker-note-with-preview"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>'
        b"<Person>Jane Doe</Person></rdf:RDF></x:xmpmeta>"
    )
    img.save(
        path, exif=exif.tobytes(), icc_profile=icc, xmp=xmp, comment=b"shot at home", quality=95
    )


def test_metadata_stripped_by_default(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jpg", tmp_path / "out.jpg"
    _jpeg_with_metadata(src)
    with Image.open(src) as im:  # the input really has it all
        assert im.getexif().get_ifd(GPS_IFD) and "icc_profile" in im.info and "xmp" in im.info
    report = redact_image(src, out)
    assert report.metadata_kept is False
    data = out.read_bytes()
    for needle in (b"Exif", b"SecretCam", b"Jane Doe", b"shot at home", b"maker-note"):
        assert needle not in data
    with Image.open(out) as im:
        assert not im.getexif()
        assert "icc_profile" not in im.info and "xmp" not in im.info and "comment" not in im.info
        assert im.size == (400, 512)  # the orientation was applied to the pixels


def test_keep_metadata_keeps_exif_with_orientation_applied(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jpg", tmp_path / "out.jpg"
    _jpeg_with_metadata(src)
    report = redact_image(src, out, keep_metadata=True)
    assert report.metadata_kept is True
    with Image.open(out) as im:
        exif = im.getexif()
        assert exif[0x010F] == "SecretCam"
        assert exif.get(0x0112, 1) == 1  # upright pixels, so no turn left to apply
        assert exif.get_ifd(GPS_IFD)[1] == "N"
        assert 0x927C not in exif.get_ifd(0x8769) and 0x927C not in exif  # no maker note
        assert "icc_profile" in im.info
        assert "xmp" not in im.info  # XMP can name the people shown: never copied
        assert im.size == (400, 512)
    assert b"Jane Doe" not in out.read_bytes()


def test_png_and_webp_outputs(tmp_path: Path) -> None:
    for suffix in (".png", ".webp", ".bmp", ".tif"):
        out = tmp_path / f"o{suffix}"
        redact_image(SAMPLE, out)
        with Image.open(out) as im:
            assert im.size == (512, 512) and not im.getexif().get_ifd(GPS_IFD)


# -- failures: clear errors, nothing left behind ----------------------------------------------


def _left(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", InvalidImageError),
        (b"not an image at all, just text\n" * 10, InvalidImageError),
        (b"%PDF-1.4\n%...\n", UnsupportedMediaError),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40, InvalidImageError),  # corrupt JPEG
    ],
)
def test_bad_inputs_raise_and_write_nothing(tmp_path: Path, content: bytes, error: type) -> None:
    src = tmp_path / "bad.jpg"
    src.write_bytes(content)
    with pytest.raises(error):
        redact_image(src, tmp_path / "out.jpg")
    assert _left(tmp_path) == ["bad.jpg"]


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    src = tmp_path / "cut.jpg"
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError):
        redact_image(src, tmp_path / "out.jpg")
    assert _left(tmp_path) == ["cut.jpg"]


def test_missing_input_and_folder_input(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError):
        redact_image(tmp_path / "nope.jpg", tmp_path / "out.jpg")
    with pytest.raises(SourceNotFoundError):
        redact_image(tmp_path, tmp_path / "out.jpg")
    assert _left(tmp_path) == []


def test_bad_outputs_fail_before_work(tmp_path: Path) -> None:
    for bad in (tmp_path / "out.gif", tmp_path / "missing" / "out.jpg", tmp_path):
        with pytest.raises(OutputError):
            redact_image(SAMPLE, bad)
    copy = tmp_path / "same.jpg"
    copy.write_bytes(SAMPLE.read_bytes())
    with pytest.raises(OutputError, match="input"):
        redact_image(copy, copy)
    assert copy.read_bytes() == SAMPLE.read_bytes()
    assert _left(tmp_path) == ["same.jpg"]


def test_failure_while_writing_leaves_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jpg"
    out.write_bytes(b"previous result")

    def broken_save(self: Image.Image, fp: io.BufferedWriter, *a: object, **k: object) -> None:
        fp.write(b"\xff\xd8 half a picture")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="No space left"):
        redact_image(SAMPLE, out)
    assert out.read_bytes() == b"previous result"
    assert _left(tmp_path) == ["out.jpg"]  # no .part file left either


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000)).save(src)
    with pytest.raises(MediaError):
        redact_image(src, tmp_path / "o.png", analyzer_options=AnalyzerOptions(max_pixels=10**6))
    assert not (tmp_path / "o.png").exists()
    assert os.listdir(tmp_path) == ["big.png"]


def test_png_text_chunks_and_icc_stripped(tmp_path: Path) -> None:
    from PIL import ImageCms, PngImagePlugin

    src, out = tmp_path / "in.png", tmp_path / "out.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe")
    info.add_itxt("Location", "12 Secret Street")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.open(SAMPLE).save(src, pnginfo=info, icc_profile=icc)
    redact_image(src, out)
    data = out.read_bytes()
    assert b"Jane Doe" not in data and b"Secret Street" not in data
    assert b"iCCP" not in data and b"tEXt" not in data and b"iTXt" not in data
