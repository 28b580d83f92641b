"""Tests of mien.media: image decoding (load_image) and input discovery (iter_inputs)."""

from __future__ import annotations

import io
import os
import random
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, features

from mien.errors import (
    ImageTooLargeError,
    InvalidImageError,
    MediaError,
    SourceNotFoundError,
    UnsupportedMediaError,
)
from mien.media import (
    DEFAULT_LIMITS,
    IMAGE_SUFFIXES,
    DecodedImage,
    ImageLimits,
    avif_supported,
    heif_supported,
    iter_inputs,
    load_image,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

RED = (255, 0, 0)
WHITE = (255, 255, 255)


# ----------------------------------------------------------------------------------------
# Helpers.


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def make_png(
    width: int,
    height: int,
    *,
    bit_depth: int,
    color_type: int,
    raw: bytes | None = None,
    level: int = 6,
) -> bytes:
    """A PNG built by hand (for modes Pillow cannot write, and for bombs).

    ``raw`` is the unfiltered scanline data without filter bytes; None means all zeros.
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row_bytes = (width * channels * bit_depth + 7) // 8
    if raw is None:
        scanlines = bytes((1 + row_bytes) * height)
    else:
        assert len(raw) == row_bytes * height
        scanlines = b"".join(
            b"\x00" + raw[r * row_bytes : (r + 1) * row_bytes] for r in range(height)
        )
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(scanlines, level))
        + _png_chunk(b"IEND", b"")
    )


def marked_image(width: int = 64, height: int = 32, block: int = 16) -> Image.Image:
    """White image with a red block in the top-left corner (block aligned for JPEG)."""
    arr = np.full((height, width, 3), 255, np.uint8)
    arr[:block, :block] = RED
    return Image.fromarray(arr)


def encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def assert_rgb(decoded: DecodedImage, height: int, width: int) -> None:
    assert isinstance(decoded, DecodedImage)
    assert decoded.rgb.shape == (height, width, 3)
    assert decoded.rgb.dtype == np.uint8
    assert decoded.rgb.flags["C_CONTIGUOUS"]
    assert decoded.rgb.flags["WRITEABLE"]


def assert_close(actual: np.ndarray, expected: tuple[int, ...], tol: int) -> None:
    diff = np.abs(actual.reshape(-1, 3).astype(int) - np.array(expected)).max()
    assert diff <= tol, f"max channel difference {diff} > {tol}"


def expect_error(exc_type: type[MediaError], code: str, source: object, label: str, **kw):
    with pytest.raises(exc_type) as info:
        load_image(source, **kw)
    assert type(info.value) is exc_type
    assert info.value.code == code
    assert label in str(info.value)
    return info.value


# ----------------------------------------------------------------------------------------
# Formats.

# (format, save kwargs, tolerance on the decoded colours)
FORMATS = [
    ("JPEG", {"quality": 95}, 40),
    ("PNG", {}, 0),
    ("WEBP", {"lossless": True}, 0),
    ("BMP", {}, 0),
    ("TIFF", {}, 0),
    ("GIF", {}, 0),
    ("HEIF", {"quality": 95}, 60),
    ("AVIF", {"quality": 95}, 60),
]

SUFFIX = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "GIF": ".gif",
    "HEIF": ".heic",
    "AVIF": ".avif",
}


def _skip_unavailable(fmt: str) -> None:
    if fmt == "HEIF":
        if not heif_supported():
            pytest.skip("pillow_heif is not installed: HEIC cannot be decoded")
        import pillow_heif

        pillow_heif.register_heif_opener()  # so that Pillow can also *write* HEIF here
    if fmt == "AVIF" and not (avif_supported() and features.check("avif")):
        pytest.skip("this Pillow build has no AVIF codec (features.check('avif') is False)")


@pytest.mark.parametrize(("fmt", "kwargs", "tol"), FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_decodes_from_path_with_colours(tmp_path, fmt, kwargs, tol):
    _skip_unavailable(fmt)
    path = tmp_path / f"marked{SUFFIX[fmt]}"
    marked_image().save(path, fmt, **kwargs)

    decoded = load_image(path)

    assert_rgb(decoded, 32, 64)
    assert decoded.format == fmt
    assert decoded.source == str(path)
    assert decoded.orientation is None
    assert_close(decoded.rgb[2:14, 2:14], RED, tol)
    assert_close(decoded.rgb[20:30, 30:60], WHITE, tol)


def test_gif_with_two_frames_returns_the_first(tmp_path):
    first = Image.new("RGB", (20, 10), RED)
    second = Image.new("RGB", (20, 10), (0, 0, 255))
    path = tmp_path / "anim.gif"
    first.save(path, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 2

    decoded = load_image(path)

    assert_rgb(decoded, 10, 20)
    assert decoded.format == "GIF"
    assert_close(decoded.rgb, RED, 0)


def test_multipage_tiff_returns_the_first_page(tmp_path):
    path = tmp_path / "pages.tiff"
    Image.new("RGB", (12, 8), (0, 200, 0)).save(
        path, "TIFF", save_all=True, append_images=[Image.new("RGB", (30, 30), RED)]
    )
    decoded = load_image(path)
    assert_rgb(decoded, 8, 12)
    assert_close(decoded.rgb, (0, 200, 0), 0)


def test_heic_written_by_pillow_heif_directly(tmp_path):
    if not heif_supported():
        pytest.skip("pillow_heif is not installed")
    import pillow_heif

    arr = np.zeros((24, 40, 3), np.uint8)
    arr[:, 20:] = (0, 0, 255)
    path = tmp_path / "direct.heic"
    pillow_heif.from_bytes(mode="RGB", size=(40, 24), data=arr.tobytes()).save(path, quality=95)

    decoded = load_image(path)

    assert decoded.format == "HEIF"
    assert_rgb(decoded, 24, 40)
    assert_close(decoded.rgb[4:20, 2:16], (0, 0, 0), 40)
    assert_close(decoded.rgb[4:20, 24:38], (0, 0, 255), 60)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heif_and_avif_orientation_is_applied_once(fmt):
    _skip_unavailable(fmt)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(marked_image(), fmt, quality=95, exif=exif.tobytes())

    decoded = load_image(data)

    assert decoded.orientation == 6
    assert_rgb(decoded, 64, 32)  # 64x32 rotated to portrait
    assert_close(decoded.rgb[2:14, -14:-2], RED, 60)  # top-left went to top-right
    assert_close(decoded.rgb[2:14, 2:14], WHITE, 60)


# ----------------------------------------------------------------------------------------
# Kinds of sources.


def test_every_kind_of_source_gives_the_same_pixels(tmp_path):
    im = marked_image(40, 24, 8)
    path = tmp_path / "src.png"
    im.save(path)
    data = path.read_bytes()
    expected = np.asarray(im)

    with open(path, "rb") as fh:
        from_file = load_image(fh)
    cases = {
        str(path): load_image(str(path)),
        "Path": load_image(path),
        "<bytes>": load_image(data),
        "bytearray": load_image(bytearray(data)),
        "memoryview": load_image(memoryview(data)),
        "<stream>": load_image(io.BytesIO(data)),
        "file": from_file,
        "<image>": load_image(Image.open(io.BytesIO(data))),
        "<array>": load_image(expected),
    }
    for key, decoded in cases.items():
        assert np.array_equal(decoded.rgb, expected), key
    assert cases["Path"].source == str(path)
    assert cases["<bytes>"].source == "<bytes>"
    assert cases["bytearray"].source == "<bytes>"
    assert cases["<stream>"].source == "<stream>"
    assert cases["file"].source == str(path)
    assert cases["<image>"].source == "<image>"
    assert cases["<image>"].format == "PNG"
    assert cases["<array>"].source == "<array>"
    assert cases["<array>"].format is None
    assert load_image(data, name="upload.png").source == "upload.png"


def test_array_result_does_not_alias_the_input():
    arr = np.zeros((4, 5, 3), np.uint8)
    decoded = load_image(arr)
    decoded.rgb[0, 0] = 7
    assert arr[0, 0, 0] == 0


def test_unsupported_source_type_and_text_stream():
    expect_error(InvalidImageError, "InvalidImage", 12345, "<int>")
    expect_error(InvalidImageError, "InvalidImage", io.StringIO("abc"), "text mode")


# ----------------------------------------------------------------------------------------
# EXIF orientation.


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    [(6, "top-right"), (8, "bottom-left")],
)
def test_jpeg_exif_orientation_swaps_size_and_moves_the_mark(tmp_path, orientation, red_corner):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"orient{orientation}.jpg"
    marked_image(64, 32, 16).save(path, "JPEG", quality=95, exif=exif.tobytes())

    decoded = load_image(path)

    assert decoded.orientation == orientation
    assert_rgb(decoded, 64, 32)  # width and height swapped
    corners = {
        "top-left": decoded.rgb[2:14, 2:14],
        "top-right": decoded.rgb[2:14, -14:-2],
        "bottom-left": decoded.rgb[-14:-2, 2:14],
        "bottom-right": decoded.rgb[-14:-2, -14:-2],
    }
    for corner, pixels in corners.items():
        assert_close(pixels, RED if corner == red_corner else WHITE, 40)
    with Image.open(path) as reference:
        expected = np.asarray(ImageOps.exif_transpose(reference).convert("RGB"))
    assert np.array_equal(decoded.rgb, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation):
    rng = np.random.default_rng(orientation)
    im = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(im, "PNG", exif=exif.tobytes())

    decoded = load_image(data)

    with Image.open(io.BytesIO(data)) as reference:
        expected = np.asarray(ImageOps.exif_transpose(reference))
    assert decoded.orientation == orientation
    assert np.array_equal(decoded.rgb, expected)


def test_invalid_orientation_value_is_ignored():
    exif = Image.Exif()
    exif[0x0112] = 9
    decoded = load_image(encode(marked_image(), "PNG", exif=exif.tobytes()))
    assert decoded.orientation is None
    assert_rgb(decoded, 32, 64)


# ----------------------------------------------------------------------------------------
# Modes.


def test_grey_png_becomes_three_equal_channels():
    grey = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    decoded = load_image(encode(Image.fromarray(grey, "L"), "PNG"))
    assert_rgb(decoded, 4, 6)
    for c in range(3):
        assert np.array_equal(decoded.rgb[..., c], grey)


def test_16bit_grey_png_is_scaled_by_257_not_clipped():
    values = np.array([[0, 257, 1000, 32896, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode.startswith("I")  # really 16 bits on disk and in Pillow

    decoded = load_image(data)

    assert decoded.rgb[0, :, 0].tolist() == [0, 1, 4, 128, 255]
    assert np.array_equal(decoded.rgb[..., 0], decoded.rgb[..., 2])


def test_16bit_grey_big_endian_and_mode_i_images():
    values = np.array([[0, 32896, 65535]], dtype=">u2")
    im16b = Image.frombytes("I;16B", (3, 1), values.tobytes())
    assert load_image(im16b).rgb[0, :, 1].tolist() == [0, 128, 255]

    as_i = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.int32))
    assert as_i.mode == "I"
    assert load_image(as_i).rgb[0, :, 0].tolist() == [0, 128, 255]

    wide = Image.fromarray(np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32))
    assert load_image(wide).rgb[0, :, 0].tolist() == [0, 128, 255]


def test_16bit_rgb_png():
    raw = np.array([[[65535, 32896, 0], [0, 0, 65535]]], dtype=">u2").tobytes()
    data = make_png(2, 1, bit_depth=16, color_type=2, raw=raw)
    decoded = load_image(data)
    assert decoded.format == "PNG"
    assert_rgb(decoded, 1, 2)
    assert decoded.rgb[0, 0].tolist() == [255, 128, 0]
    assert decoded.rgb[0, 1].tolist() == [0, 0, 255]


def test_float_mode_f_images():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert load_image(unit).rgb[0, :, 0].tolist() == [0, 128, 255]
    wide = Image.fromarray(np.array([[0.0, 100.0, 300.0]], dtype=np.float32))
    assert load_image(wide).rgb[0, :, 0].tolist() == [0, 100, 255]


def test_rgba_transparent_pixel_becomes_white():
    arr = np.zeros((2, 3, 4), np.uint8)
    arr[..., :3] = (10, 20, 30)
    arr[0, 0, 3] = 0  # fully transparent
    arr[0, 1, 3] = 255  # opaque
    arr[0, 2, 3] = 128  # half
    decoded = load_image(encode(Image.fromarray(arr, "RGBA"), "PNG"))
    assert decoded.rgb[0, 0].tolist() == [255, 255, 255]
    assert decoded.rgb[0, 1].tolist() == [10, 20, 30]
    half = decoded.rgb[0, 2].astype(int)
    expected = np.array([10, 20, 30]) * 128 / 255 + 255 * 127 / 255
    assert np.abs(half - expected).max() <= 1


def test_rgb_png_with_a_transparent_colour_key():
    im = Image.new("RGB", (2, 1), (0, 255, 0))
    im.putpixel((1, 0), (1, 2, 3))
    decoded = load_image(encode(im, "PNG", transparency=(1, 2, 3)))
    assert decoded.rgb[0].tolist() == [[0, 255, 0], [255, 255, 255]]


def test_la_image_over_white():
    arr = np.array([[[0, 0], [0, 255]]], dtype=np.uint8)
    decoded = load_image(encode(Image.fromarray(arr, "LA"), "PNG"))
    assert decoded.rgb[0].tolist() == [[255, 255, 255], [0, 0, 0]]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency(fmt):
    im = Image.new("P", (4, 2), 0)
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putpixel((1, 0), 1)
    im.putpixel((2, 0), 2)
    data = encode(im, fmt, transparency=0)
    decoded = load_image(data)
    assert decoded.rgb[0, 0].tolist() == [255, 255, 255]  # index 0 is transparent
    assert decoded.rgb[0, 1].tolist() == [255, 0, 0]
    assert decoded.rgb[0, 2].tolist() == [0, 0, 255]


def test_palette_without_transparency():
    im = Image.new("P", (2, 1), 1)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    decoded = load_image(encode(im, "PNG"))
    assert decoded.rgb.tolist() == [[[0, 255, 0], [0, 255, 0]]]


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_bilevel_images(fmt):
    im = Image.new("1", (9, 3), 0)
    im.putpixel((4, 1), 1)
    decoded = load_image(encode(im, fmt))
    assert_rgb(decoded, 3, 9)
    assert decoded.rgb[1, 4].tolist() == [255, 255, 255]
    assert int(decoded.rgb.sum()) == 255 * 3


@pytest.mark.parametrize(("fmt", "tol"), [("JPEG", 12), ("TIFF", 0)])
def test_cmyk_images(fmt, tol):
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red in CMYK
    data = encode(im, fmt)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"
    decoded = load_image(data)
    assert_rgb(decoded, 16, 16)
    assert_close(decoded.rgb, RED, tol)


def test_ycbcr_image():
    im = Image.new("RGB", (3, 2), (200, 100, 50)).convert("YCbCr")
    decoded = load_image(im)
    assert_close(decoded.rgb, (200, 100, 50), 3)


# ----------------------------------------------------------------------------------------
# Numpy inputs.


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 128, 255]], np.uint8), [[0] * 3, [128] * 3, [255] * 3]),
        (np.array([[[0], [128], [255]]], np.uint8), [[0] * 3, [128] * 3, [255] * 3]),
        (np.array([[[1, 2, 3], [250, 251, 252]]], np.uint8), [[1, 2, 3], [250, 251, 252]]),
        (np.array([[0, 32896, 65535]], np.uint16), [[0] * 3, [128] * 3, [255] * 3]),
        (np.array([[[65535, 0, 257]]], np.uint16), [[255, 0, 1]]),
        (np.array([[0.0, 0.5, 1.0]], np.float32), [[0] * 3, [128] * 3, [255] * 3]),
        (np.array([[[-0.5, 0.25, 2.0]]], np.float64), [[0, 64, 255]]),
        (np.array([[np.nan, 1.0]], np.float64), [[0] * 3, [255] * 3]),
        (np.array([[True, False]]), [[255] * 3, [0] * 3]),
        (
            np.array([[[10, 20, 30, 255], [10, 20, 30, 0]]], np.uint8),
            [[10, 20, 30], [255, 255, 255]],
        ),
        (np.array([[[0.0, 0.0, 0.0, 0.0]]], np.float32), [[255, 255, 255]]),
    ],
    ids=[
        "grey-u8",
        "grey-hw1",
        "rgb-u8",
        "grey-u16",
        "rgb-u16",
        "grey-f32",
        "rgb-f64-clipped",
        "nan-to-zero",
        "bool",
        "rgba-u8",
        "rgba-f32-transparent",
    ],
)
def test_numpy_inputs(array, expected):
    decoded = load_image(array)
    assert decoded.rgb.dtype == np.uint8
    assert decoded.rgb.flags["C_CONTIGUOUS"]
    assert decoded.rgb.reshape(-1, 3).tolist() == expected
    assert decoded.orientation is None


def test_numpy_non_contiguous_and_big_endian():
    base = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    view = base[:, ::2]
    assert not view.flags["C_CONTIGUOUS"]
    assert np.array_equal(load_image(view).rgb, view)
    be = np.array([[65535, 32896]], dtype=">u2")
    assert load_image(be).rgb[0, :, 0].tolist() == [255, 128]


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((2, 2, 2, 3), np.uint8), "shape"),
        (np.zeros(5, np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "no pixels"),
        (np.zeros((3, 0), np.uint8), "no pixels"),
        (np.zeros((3, 3, 2), np.uint8), "channels"),
        (np.zeros((3, 3, 5), np.uint8), "channels"),
        (np.full((2, 2), np.nan, np.float32), "NaN"),
        (np.zeros((2, 2), np.int64), "dtype"),
        (np.zeros((2, 2), np.uint32), "dtype"),
        (np.zeros((2, 2), np.complex64), "dtype"),
        (np.array([[None, 1]], dtype=object), "dtype"),
    ],
    ids=[
        "4d",
        "1d",
        "zero-height",
        "zero-width",
        "2-channels",
        "5-channels",
        "nan-only",
        "int64",
        "uint32",
        "complex",
        "object",
    ],
)
def test_bad_numpy_inputs(array, fragment):
    err = expect_error(InvalidImageError, "InvalidImage", array, "<array>")
    assert fragment in str(err)


def test_numpy_input_respects_limits_and_name():
    err = expect_error(
        ImageTooLargeError,
        "ImageTooLarge",
        np.zeros((20, 20), np.uint8),
        "frame-7",
        name="frame-7",
        limits=ImageLimits(max_pixels=100),
    )
    assert "20x20" in str(err)


# ----------------------------------------------------------------------------------------
# Limits and decompression bombs.


def test_png_header_claiming_200000x200000_is_refused_without_decoding(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 200_000, 200_000, 1, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )
    path = tmp_path / "claims_huge.png"
    path.write_bytes(data)
    err = expect_error(ImageTooLargeError, "ImageTooLarge", path, str(path))
    assert "limit" in str(err)


def test_real_bilevel_bomb_20000x20000(tmp_path):
    data = make_png(20_000, 20_000, bit_depth=1, color_type=0, level=9)
    assert len(data) < 200_000  # a few KB on disk, 400 M pixels decoded
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    err = expect_error(
        ImageTooLargeError,
        "ImageTooLarge",
        path,
        "bomb.png",
        limits=ImageLimits(max_pixels=10_000_000),
    )
    assert "limit" in str(err)


def test_bomb_below_pillow_threshold_is_caught_by_our_own_limit():
    data = make_png(5_000, 3_000, bit_depth=1, color_type=0)
    err = expect_error(
        ImageTooLargeError,
        "ImageTooLarge",
        data,
        "<bytes>",
        limits=ImageLimits(max_pixels=10_000_000),
    )
    assert "5000x3000" in str(err)
    assert "10000000" in str(err)


def test_small_image_over_a_small_pixel_limit(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(path)
    err = expect_error(
        ImageTooLargeError,
        "ImageTooLarge",
        path,
        str(path),
        limits=ImageLimits(max_pixels=100),
    )
    assert "20x10" in str(err)
    assert "200 pixels" in str(err)
    assert "limit 100" in str(err)
    assert_rgb(load_image(path, limits=ImageLimits(max_pixels=200)), 10, 20)


def test_max_side_limit():
    data = encode(Image.new("L", (300, 2)), "PNG")
    err = expect_error(
        ImageTooLargeError, "ImageTooLarge", data, "<bytes>", limits=ImageLimits(max_side=299)
    )
    assert "299" in str(err)


def test_max_bytes_limit_for_path_bytes_and_stream(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64), RED).save(path)
    size = path.stat().st_size
    limits = ImageLimits(max_bytes=size - 1)
    for source, label in [
        (path, str(path)),
        (path.read_bytes(), "<bytes>"),
        (io.BytesIO(path.read_bytes()), "<stream>"),
    ]:
        err = expect_error(ImageTooLargeError, "ImageTooLarge", source, label, limits=limits)
        assert str(size) in str(err)
        assert str(size - 1) in str(err)
    assert_rgb(load_image(path, limits=ImageLimits(max_bytes=size)), 64, 64)


def test_pillow_bomb_warning_becomes_an_error_without_leaking_filters(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    data = encode(Image.new("L", (40, 40)), "PNG")  # 1600 px: above the warning level
    before = list(warnings.filters)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Our limit is stricter than Pillow's: the warning is turned into an error.
        err = expect_error(
            ImageTooLargeError,
            "ImageTooLarge",
            data,
            "<bytes>",
            limits=ImageLimits(max_pixels=1_000),
        )
        assert "decompression bomb" in str(err)
        assert isinstance(err.__cause__, Image.DecompressionBombWarning)
        # Our limit is looser: our own check governs, and no warning is emitted.
        assert_rgb(load_image(data), 40, 40)
        # Above twice Pillow's limit Pillow raises; that becomes ImageTooLargeError.
        big = encode(Image.new("L", (50, 50)), "PNG")
        expect_error(ImageTooLargeError, "ImageTooLarge", big, "<bytes>")
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert list(warnings.filters) == before


def test_default_limits():
    assert ImageLimits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.max_pixels == 100_000_000
    assert DEFAULT_LIMITS.max_bytes == 256 * 1024 * 1024
    assert DEFAULT_LIMITS.max_side == 40_000


# ----------------------------------------------------------------------------------------
# Broken and non-image inputs.


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(
        tmp_path / "full.jpg", quality=90
    )
    data = (tmp_path / "full.jpg").read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    err = expect_error(InvalidImageError, "InvalidImage", path, str(path))
    assert "truncated" in str(err)
    assert err.__cause__ is not None


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(1)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    for cut in (len(data) // 2, 40):
        path = tmp_path / f"cut{cut}.png"
        path.write_bytes(data[:cut])
        err = expect_error(InvalidImageError, "InvalidImage", path, str(path))
        assert err.__cause__ is not None


@pytest.mark.parametrize(
    ("content", "exc_type", "code", "fragment"),
    [
        (b"hello, this is plain text\n" * 20, InvalidImageError, "InvalidImage", "not an image"),
        (b"", InvalidImageError, "InvalidImage", "empty"),
        (
            bytes(random.Random(7).getrandbits(8) for _ in range(4096)),
            InvalidImageError,
            "InvalidImage",
            "not an image",
        ),
        (
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
            UnsupportedMediaError,
            "UnsupportedMedia",
            "PDF",
        ),
        (
            b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(64),
            UnsupportedMediaError,
            "UnsupportedMedia",
            "MP4",
        ),
        (
            b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + bytes(64),
            UnsupportedMediaError,
            "UnsupportedMedia",
            "QuickTime",
        ),
        (
            b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + bytes(64),
            UnsupportedMediaError,
            "UnsupportedMedia",
            "WebM",
        ),
        (
            b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(64),
            UnsupportedMediaError,
            "UnsupportedMedia",
            "AVI",
        ),
        (
            b"PK\x03\x04\x14\x00\x00\x00" + bytes(64),
            UnsupportedMediaError,
            "UnsupportedMedia",
            "ZIP",
        ),
        (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
            UnsupportedMediaError,
            "UnsupportedMedia",
            "SVG",
        ),
    ],
    ids=["text", "empty", "random", "pdf", "mp4", "mov", "webm", "avi", "zip", "svg"],
)
def test_non_image_files(tmp_path, content, exc_type, code, fragment):
    path = tmp_path / "input.jpg"  # the suffix lies; the content decides
    path.write_bytes(content)
    err = expect_error(exc_type, code, path, str(path))
    assert fragment in str(err)
    expect_error(exc_type, code, content, "upload", name="upload")


def test_directory_and_missing_path(tmp_path):
    err = expect_error(SourceNotFoundError, "NotFound", tmp_path, str(tmp_path))
    assert "directory" in str(err)
    missing = tmp_path / "nope" / "missing.jpg"
    err = expect_error(SourceNotFoundError, "NotFound", missing, str(missing))
    assert "no such file" in str(err)
    assert isinstance(err.__cause__, FileNotFoundError)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(path)
    path.chmod(0)
    try:
        expect_error(SourceNotFoundError, "NotFound", path, str(path))
    finally:
        path.chmod(0o644)


def test_read_error_is_not_found(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    Image.new("RGB", (2, 2)).save(path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("mien.media.regular.os.open", refuse)  # the loader's only open
    err = expect_error(SourceNotFoundError, "NotFound", path, str(path))
    assert isinstance(err.__cause__, PermissionError)


def test_stream_read_error_is_wrapped():
    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("device went away")

    err = expect_error(SourceNotFoundError, "NotFound", Broken(), "<stream>")
    assert "device went away" in str(err)


def test_avif_without_a_decoder_is_unsupported(monkeypatch):
    _skip_unavailable("AVIF")
    data = encode(marked_image(), "AVIF")
    monkeypatch.setattr(
        "mien.media.image._open_formats", lambda: ("JPEG", "PNG", "GIF", "WEBP", "TIFF")
    )
    err = expect_error(
        UnsupportedMediaError, "UnsupportedMedia", data, "shot.avif", name="shot.avif"
    )
    assert "AVIF" in str(err)


def test_warnings_as_errors_never_escape_raw(tmp_path):
    """Even with every warning turned into an error, only MediaErrors come out."""
    im = Image.new("L", (40, 40))
    data = encode(im, "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_rgb(load_image(data), 40, 40)
        expect_error(
            ImageTooLargeError, "ImageTooLarge", data, "<bytes>", limits=ImageLimits(max_pixels=10)
        )


@pytest.mark.filterwarnings("ignore:.*:UserWarning:PIL")  # Pillow's damaged-metadata notes
def test_fuzzed_files_only_raise_media_errors():
    """Random corruption of every format gives a decoded image or a MediaError, never more."""
    rng = random.Random(1234)
    arr = np.random.default_rng(5).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    seeds = [
        encode(im, "JPEG"),
        encode(im, "PNG"),
        encode(im, "GIF"),
        encode(im, "WEBP"),
        encode(im, "BMP"),
        encode(im, "TIFF"),
    ]
    limits = ImageLimits(max_pixels=1_000_000)
    outcomes = {"ok": 0, "error": 0}
    for seed in seeds:
        for _ in range(40):
            data = bytearray(seed)
            if rng.random() < 0.3:
                data = data[: rng.randrange(1, len(data))]
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                decoded = load_image(bytes(data), limits=limits)
            except MediaError as exc:
                assert "<bytes>" in str(exc)
                outcomes["error"] += 1
            else:
                assert decoded.rgb.ndim == 3 and decoded.rgb.shape[2] == 3
                assert decoded.rgb.dtype == np.uint8
                outcomes["ok"] += 1
    assert outcomes["error"] > 0


def test_concurrent_loads_are_consistent():
    rng = np.random.default_rng(9)
    images = [rng.integers(0, 256, (16, 16 + i, 3), dtype=np.uint8) for i in range(4)]
    payloads = [encode(Image.fromarray(a), "PNG") for a in images]
    bomb = make_png(4_000, 4_000, bit_depth=1, color_type=0)
    failures: list[str] = []
    before = list(warnings.filters)

    def work(k: int) -> None:
        for j in range(20):
            idx = (k + j) % len(payloads)
            if not np.array_equal(load_image(payloads[idx]).rgb, images[idx]):
                failures.append(f"thread {k} image {idx}")
            try:
                load_image(bomb, limits=ImageLimits(max_pixels=1_000_000))
            except ImageTooLargeError:
                pass
            else:
                failures.append(f"thread {k}: bomb accepted")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert list(warnings.filters) == before


# ----------------------------------------------------------------------------------------
# Real photos.


def _real_photos() -> list[Path]:
    folder = SHARED_DATA / "dlib_examples_faces"
    if not folder.is_dir():
        pytest.skip(f"real photo folder {folder} is absent")
    photos = sorted(folder.rglob("*.jpg"))
    if not photos:
        pytest.skip(f"no .jpg files under {folder}")
    return photos


def test_real_photos_decode_to_their_size():
    for photo in _real_photos():
        with Image.open(photo) as reference:
            reference = ImageOps.exif_transpose(reference)
            width, height = reference.size
        decoded = load_image(photo)
        assert_rgb(decoded, height, width)
        assert decoded.format == "JPEG"
        assert decoded.source == str(photo)
        assert decoded.rgb.std() > 5  # a real picture, not a flat fill


def test_real_photo_tree_is_discovered():
    photos = _real_photos()
    found = list(iter_inputs([SHARED_DATA / "dlib_examples_faces"]))
    assert sorted(found) == sorted(str(p) for p in photos)


# ----------------------------------------------------------------------------------------
# Discovery.


def _touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_iter_inputs_walks_a_tree(tmp_path):
    root = tmp_path / "photos"
    for rel in [
        "img10.jpg",
        "img2.JPG",
        "img1.png",
        "b/z.heic",
        "b/deeper/a.avif",
        "a.webp",
        "notes.txt",
        "clip.mp4",
        "noext",
        ".hidden.jpg",
        ".cache/inside.jpg",
        "c/.d/x.png",
        "c/y.TIFF",
    ]:
        _touch(root / rel)
    missing = tmp_path / "missing.jpg"
    single = _touch(tmp_path / "README.md")

    found = list(iter_inputs([root, str(missing), "-", single]))

    expected_tree = [
        root / "a.webp",
        root / "b" / "deeper" / "a.avif",
        root / "b" / "z.heic",
        root / "c" / "y.TIFF",
        root / "img1.png",
        root / "img2.JPG",
        root / "img10.jpg",
    ]
    assert found == [str(p) for p in expected_tree] + [str(missing), "-", str(single)]
    assert all(isinstance(p, str) for p in found)


def test_iter_inputs_not_recursive(tmp_path):
    _touch(tmp_path / "top.png")
    _touch(tmp_path / "sub" / "deep.png")
    assert list(iter_inputs([tmp_path], recursive=False)) == [str(tmp_path / "top.png")]
    assert list(iter_inputs([tmp_path])) == [
        str(tmp_path / "sub" / "deep.png"),
        str(tmp_path / "top.png"),
    ]


def test_iter_inputs_order_is_stable_and_natural(tmp_path):
    names = ["frame_100.png", "Frame_9.png", "frame_10.png", "frame_1.png", "frame_9.png"]
    for name in names:
        _touch(tmp_path / name)
    found = [Path(p).name for p in iter_inputs([str(tmp_path)])]
    assert found == ["frame_1.png", "Frame_9.png", "frame_9.png", "frame_10.png", "frame_100.png"]
    assert found == [Path(p).name for p in iter_inputs([str(tmp_path)])]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
def test_iter_inputs_survives_symlink_loops(tmp_path):
    root = tmp_path / "root"
    _touch(root / "a.jpg")
    _touch(root / "sub" / "b.jpg")
    try:
        os.symlink(root, root / "sub" / "loop")
        os.symlink(root / "sub", root / "also_sub")
    except OSError:
        pytest.skip("cannot create symlinks here")
    found = list(iter_inputs([root]))
    assert len(found) == 2
    assert sorted(Path(p).name for p in found) == ["a.jpg", "b.jpg"]


def test_iter_inputs_suffixes():
    for suffix in (
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".webp",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".gif",
        ".heic",
        ".heif",
        ".avif",
    ):
        assert suffix in IMAGE_SUFFIXES
    assert ".txt" not in IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


def test_discovered_files_feed_the_loader(tmp_path):
    Image.new("RGB", (5, 4), RED).save(tmp_path / "ok.png")
    _touch(tmp_path / "broken.jpg", b"not really a jpeg")
    results: dict[str, str] = {}
    for path in iter_inputs([tmp_path, tmp_path / "gone.png"]):
        try:
            load_image(path)
            results[Path(path).name] = "ok"
        except MediaError as exc:
            results[Path(path).name] = exc.code
    assert results == {"broken.jpg": "InvalidImage", "gone.png": "NotFound", "ok.png": "ok"}
