"""Fuzz target: decoding still images from bytes (:func:`mien.media.image.load_image`).

Inputs of odd length are decoded with warnings turned into errors (the loader promises an
``InvalidImageError`` then, never a raw warning), the others with warnings ignored.

Expected: a :class:`mien.errors.MediaError` (the loader's documented failures), or a decoded
image that keeps the loader's contract: an ``(H, W, 3)`` uint8, C-contiguous, writable array
within the limits, a format from the allowed list and an EXIF orientation in 1..8 or None.
Anything else (another exception, a hang, memory out of proportion to the limits) is a finding.

Seeds: small versions (48 x 40 px) of real photos from ../shared/data (the bundled sample when it
is absent), re-encoded in memory as JPEG (baseline, progressive, grey, CMYK, EXIF-rotated), PNG
(RGB, RGBA, palette with transparency, 16-bit grey, 1-bit), WebP (lossy, lossless with alpha,
animated), GIF (two frames), TIFF (LZW, 16-bit, rotated), BMP, HEIC and, where this Pillow can
write it, AVIF.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from PIL import Image, features

from fuzz._common import SAMPLE, shared
from mien.errors import MediaError
from mien.media.image import ImageLimits, heif_supported, load_image

#: Small limits, so that an accepted input cannot cost more than a few tens of MB.
LIMITS: Final = ImageLimits(max_pixels=4_000_000, max_bytes=2 * 1024 * 1024, max_side=8192)

#: Longest input the mutators make.
MAX_LEN: Final = 64 * 1024

#: Seconds one input may take (decoding a 4-megapixel image takes well under one).
PER_INPUT_SECONDS: Final = 10.0

_FORMATS: Final = frozenset({"JPEG", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "HEIF", "AVIF"})

DICTIONARY: Final = (
    b"\xff\xd8\xff\xe0",  # JPEG SOI + APP0
    b"\xff\xe1",  # APP1 (EXIF)
    b"\xff\xc0",  # SOF0
    b"\xff\xc2",  # SOF2 (progressive)
    b"\xff\xda",  # SOS
    b"\xff\xd9",  # EOI
    b"Exif\x00\x00",
    b"\x89PNG\r\n\x1a\n",
    b"IHDR",
    b"IDAT",
    b"IEND",
    b"PLTE",
    b"tRNS",
    b"eXIf",
    b"acTL",
    b"RIFF",
    b"WEBP",
    b"VP8 ",
    b"VP8L",
    b"VP8X",
    b"ANIM",
    b"ANMF",
    b"GIF89a",
    b"NETSCAPE2.0",
    b"II*\x00",
    b"MM\x00*",
    b"\x12\x01",  # TIFF tag 0x0112 (orientation), little-endian
    b"BM",
    b"ftypheic",
    b"ftypavif",
    b"ftypmif1",
    b"meta",
    b"iloc",
    b"ispe",
)


def _photos() -> list[Image.Image]:
    """Two or three real photos, made small (the bundled sample when ../shared/data is absent)."""
    paths = [
        shared("pyfeat_media", "single_face.jpg"),
        shared("skimage_faces", "astronaut.png"),
        shared("pyfeat_media", "multi_face.jpg"),
    ]
    found = [p for p in paths if p is not None] or [SAMPLE]
    out = []
    for p in found:
        with Image.open(p) as im:
            out.append(im.convert("RGB").resize((48, 40), Image.Resampling.LANCZOS))
    return out


def _save(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _encodings(im: Image.Image) -> list[Callable[[], bytes]]:
    rgba = im.convert("RGBA")
    alpha = np.zeros((im.height, im.width), np.uint8)
    alpha[:, im.width // 2 :] = 255
    rgba.putalpha(Image.fromarray(alpha))
    grey16 = Image.fromarray((np.asarray(im.convert("L"), np.uint16) * 257).astype(np.uint16))
    pal = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    second = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    encs: list[Callable[[], bytes]] = [
        lambda: _save(im, "JPEG", quality=60),
        lambda: _save(im, "JPEG", quality=60, progressive=True, exif=_exif(6)),
        lambda: _save(im.convert("L"), "JPEG", quality=60),
        lambda: _save(im.convert("CMYK"), "JPEG", quality=60),
        lambda: _save(im, "PNG"),
        lambda: _save(rgba, "PNG"),
        lambda: _save(pal, "PNG", transparency=0),
        lambda: _save(grey16, "PNG"),
        lambda: _save(im.convert("1"), "PNG"),
        lambda: _save(im, "WEBP", quality=50),
        lambda: _save(rgba, "WEBP", lossless=True),
        lambda: _save(im, "WEBP", save_all=True, append_images=[second], duration=100),
        lambda: _save(pal, "GIF", save_all=True, append_images=[second.convert("P")]),
        lambda: _save(im, "TIFF", compression="tiff_lzw", exif=_exif(8)),
        lambda: _save(grey16, "TIFF"),
        lambda: _save(im, "BMP"),
    ]
    if heif_supported():
        encs.append(lambda: _save(im, "HEIF", quality=50))
    if features.check("avif"):
        encs.append(lambda: _save(im, "AVIF", quality=50))
    return encs


@functools.cache
def _seeds() -> tuple[bytes, ...]:
    out: list[bytes] = []
    for k, im in enumerate(_photos()):
        encs = _encodings(im)
        # every encoding of the first photo; a few of the others (variety, but few bytes)
        for enc in encs if k == 0 else encs[::4]:
            out.append(enc())
    return tuple(out)


def seeds() -> list[bytes]:
    """Small images in every format the loader accepts, made from real photos at run time."""
    return list(_seeds())


def fuzz_one(data: bytes) -> bool:
    """Decode ``data``: True when decoded (contract checked), False on a MediaError; anything
    else raised is a finding."""
    try:
        with warnings.catch_warnings():
            # The loader promises an InvalidImageError, never a raw warning, even when the
            # process turns warnings into errors: inputs of odd length are read that way.
            warnings.simplefilter("error" if len(data) % 2 else "ignore")
            img = load_image(data, name="<fuzz>", limits=LIMITS)
    except MediaError:
        return False
    rgb = img.rgb
    h, w = rgb.shape[:2]
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise AssertionError(f"decoded array is {rgb.dtype} {rgb.shape}, not (H, W, 3) uint8")
    if not (rgb.flags["C_CONTIGUOUS"] and rgb.flags["WRITEABLE"]):
        raise AssertionError("decoded array is not C-contiguous and writable")
    if h * w > LIMITS.max_pixels or max(h, w) > LIMITS.max_side or h == 0 or w == 0:
        raise AssertionError(f"decoded {w}x{h} image is outside the limits")
    if img.format not in _FORMATS:
        raise AssertionError(f"decoded an image of format {img.format!r}, not an allowed one")
    if img.orientation is not None and not 1 <= img.orientation <= 8:
        raise AssertionError(f"orientation {img.orientation} is not 1..8")
    if (img.width, img.height) != (w, h):
        raise AssertionError("width/height disagree with the array")
    return True
