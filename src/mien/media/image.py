"""Decoding still images into 8-bit RGB numpy arrays, safely.

:func:`load_image` is the one entry point. It accepts a path, encoded bytes, a binary
file object, a numpy array or a :class:`PIL.Image.Image` and returns a
:class:`DecodedImage` whose ``rgb`` is an ``(H, W, 3)`` ``uint8`` C-contiguous array with
the EXIF orientation already applied.

Conventions (documented behaviour, relied on by callers and tests):

* Arrays are **RGB**, never BGR. An ``(H, W, 4)`` array is RGBA.
* Transparency (RGBA, LA, PA, P or L/RGB with a transparent colour) is composited over a
  **white** background.
* 16-bit data is scaled to 8 bits by the full range of the type (``v / 257``, rounded),
  never clipped. 32-bit integer grey (Pillow mode ``I``) whose values all lie in
  ``0..65535`` is treated as 16-bit data (that is how Pillow stores 16-bit PNG/PGM/TIFF);
  otherwise it is scaled by the range of ``int32``. Float images (mode ``F`` or float
  arrays) are taken as ``0..1`` (numpy input always; mode ``F`` when its maximum is at most
  1.0, else as ``0..255`` like Pillow's own conversion) and clipped; NaN becomes 0.
* Multi-frame files (GIF, TIFF, WebP, HEIF) yield their first frame / primary image.
  A PIL image passed in is used as it is (its current frame).
* Pillow may emit ``UserWarning`` about damaged metadata while decoding pixels; those
  raised while parsing the header are silenced. If the process turns warnings into
  errors, such a file is reported as InvalidImageError (never as a raw warning).
* Limits (:class:`ImageLimits`) are checked against the header *before* any pixel is
  decoded, so a decompression bomb costs almost nothing. They apply to every kind of
  source, arrays included.
* Every failure is a :class:`mien.errors.MediaError` subclass whose message names the
  source; the original exception, if any, is kept as ``__cause__``. No raw Pillow
  exception escapes.

Thread safety: no global state is changed per call. The only process-wide changes are
the one-time, lazy registration of the ``pillow_heif`` HEIF opener (and, when Pillow lacks
native AVIF support, ``pillow_heif``'s AVIF opener if that version has one). Pillow's own
decompression-bomb warning is turned into an error only around the header parse, inside
:func:`warnings.catch_warnings`, serialised by a module lock so concurrent calls of this
module cannot corrupt each other's warning filters.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import IO, Any, Final

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from mien.errors import (
    ImageTooLargeError,
    InvalidImageError,
    MediaError,
    SourceNotFoundError,
    UnsupportedMediaError,
)
from mien.media.regular import check_regular, read_regular

__all__ = ["DEFAULT_LIMITS", "DecodedImage", "ImageLimits", "load_image", "probe_image"]


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds on an input image, checked before decoding pixels."""

    max_pixels: int = 100_000_000
    """Largest allowed ``width * height`` (from the header); larger -> ImageTooLargeError."""
    max_bytes: int = 256 * 1024 * 1024
    """Largest allowed encoded size in bytes (file size or bytes length)."""
    max_side: int = 40_000
    """Largest allowed width or height."""


DEFAULT_LIMITS: Final = ImageLimits()


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image: 8-bit RGB pixels plus where they came from."""

    rgb: np.ndarray
    """``(H, W, 3)`` ``uint8``, C-contiguous, writable, EXIF orientation already applied.
    It never shares memory with the caller's input."""
    source: str
    """The path as given, ``"<array>"``, ``"<bytes>"``, ``"<stream>"``, ``"<image>"``
    or the caller-given ``name``."""
    format: str | None
    """Pillow's format name (``"JPEG"``, ``"PNG"``, ``"WEBP"``, ``"BMP"``, ``"TIFF"``, ``"GIF"``,
    ``"HEIF"``, ``"AVIF"``); multi-picture JPEGs (Pillow's ``"MPO"``) are reported as
    ``"JPEG"``. None for arrays; a PIL image's own ``format`` (possibly None) otherwise."""
    orientation: int | None
    """The EXIF orientation tag (1..8) that was applied, or None when there was none."""

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


# --------------------------------------------------------------------------------------
# Optional decoders (HEIF / AVIF), registered once, lazily.

_PLUGIN_LOCK = threading.Lock()
_plugins_ready = False
_heif_available = False

# Serialises our use of warnings.catch_warnings (which mutates the process-wide filter
# list) so that concurrent calls cannot restore each other's saved filter state.
_WARNINGS_LOCK = threading.Lock()


def _ensure_plugins() -> None:
    """Register pillow_heif's opener(s) once; a missing pillow_heif is not an error."""
    global _plugins_ready, _heif_available
    if _plugins_ready:
        return
    with _PLUGIN_LOCK:
        if _plugins_ready:
            return
        pillow_heif: Any = None
        try:
            pillow_heif = importlib.import_module("pillow_heif")
        except Exception:  # pragma: no cover - depends on the environment
            pillow_heif = None
        if pillow_heif is not None:
            try:
                pillow_heif.register_heif_opener()
                _heif_available = True
            except Exception:  # pragma: no cover - broken install
                _heif_available = False
            if not _avif_native():
                register_avif = getattr(pillow_heif, "register_avif_opener", None)
                if register_avif is not None:  # pragma: no cover - older pillow_heif
                    with contextlib.suppress(Exception):
                        register_avif()
        Image.init()
        _plugins_ready = True


def _avif_native() -> bool:
    try:
        return bool(features.check("avif"))
    except Exception:  # pragma: no cover - defensive
        return False


def avif_supported() -> bool:
    """True when this installation can decode AVIF (natively or via pillow_heif)."""
    _ensure_plugins()
    return "AVIF" in Image.OPEN


def heif_supported() -> bool:
    """True when this installation can decode HEIC/HEIF (via pillow_heif)."""
    _ensure_plugins()
    return "HEIF" in Image.OPEN


# The formats we let Pillow try, in this order. Pillow knows many more (EPS, which runs
# Ghostscript, PSD, ICNS...); we deliberately do not expose them to untrusted input.
_ALLOWED_FORMATS: Final = (
    "JPEG",
    "MPO",  # multi-picture JPEG from many phones/cameras; first picture is a JPEG
    "PNG",
    "WEBP",
    "BMP",
    "DIB",
    "TIFF",
    "GIF",
    "HEIF",
    "AVIF",
)


def _open_formats() -> tuple[str, ...]:
    _ensure_plugins()
    return tuple(f for f in _ALLOWED_FORMATS if f in Image.OPEN)


# --------------------------------------------------------------------------------------
# Sniffing files that are clearly something else.

_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis", b"avio"})
_IMAGE_BRANDS: Final = _HEIF_BRANDS | _AVIF_BRANDS


def _ftyp_brands(data: bytes) -> list[bytes] | None:
    """Major + compatible brands of an ISO-BMFF ``ftyp`` box at offset 0, else None."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    size = struct.unpack(">I", data[0:4])[0]
    end = min(len(data), size if size >= 16 else 16, 4096)
    brands = [data[8:12]]
    for off in range(16, end - 3, 4):
        brands.append(data[off : off + 4])
    return brands


def _iso_image_kind(data: bytes) -> str | None:
    """``"AVIF"``/``"HEIF"`` when ``data`` is an ISO-BMFF still-image file, else None."""
    brands = _ftyp_brands(data)
    if not brands:
        return None
    if brands[0] in _AVIF_BRANDS:
        return "AVIF"
    if brands[0] in _HEIF_BRANDS:
        return "HEIF"
    if any(b in _AVIF_BRANDS for b in brands[1:]):
        return "AVIF"
    if any(b in _HEIF_BRANDS for b in brands[1:]):
        return "HEIF"
    return None


def other_media_kind(data: bytes) -> str | None:
    """A description of a clearly non-image (or unsupported image) file kind, else None."""
    head = data[:64]
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "a ZIP archive (or a ZIP-based document)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "a 7-Zip archive"
    if head.startswith(b"Rar!\x1a\x07"):
        return "a RAR archive"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a Matroska/WebM video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI video"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "a WAV audio file"
    brands = _ftyp_brands(data)
    if brands is not None and _iso_image_kind(data) is None:
        return f"an MP4/QuickTime video (brand {brands[0].decode('latin-1')!r})"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide"):
        return "a QuickTime video"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "an ASF/WMV video"
    if head.startswith(b"FLV\x01"):
        return "an FLV video"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "an MPEG program stream video"
    if len(data) > 376 and data[0] == data[188] == data[376] == 0x47:
        return "an MPEG transport stream video"
    if head.startswith(b"OggS"):
        return "an Ogg media file"
    if head.startswith(b"ID3") or head.startswith(b"fLaC"):
        return "an audio file"
    if head.startswith(b"8BPS"):
        return "a Photoshop PSD file (unsupported image format)"
    if head.startswith(b"%!PS") or head.startswith(b"\xc5\xd0\xd3\xc6"):
        return "a PostScript/EPS file (unsupported image format)"
    text_head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if (text_head.startswith(b"<?xml") or text_head.startswith(b"<svg")) and (b"<svg" in text_head):
        return "an SVG vector image (unsupported image format)"
    return None


# --------------------------------------------------------------------------------------
# Public entry point.


def load_image(
    source: Any,
    *,
    name: str | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
    draft: tuple[int, int] | None = None,
) -> DecodedImage:
    """Decode ``source`` into an 8-bit RGB image with EXIF orientation applied.

    ``draft`` (encoded JPEG sources only: a path, bytes or a stream) asks for a cheaper, reduced
    decode: the JPEG is decoded at 1/2, 1/4 or 1/8 of its size, the smallest of those still at
    least ``draft`` = (width, height) in the file's stored orientation (Pillow's ``draft``), so
    the result may be smaller than the picture. Limits are checked on the full size. Other
    formats are decoded at full size. Use it only where full detail is not needed (thumbnails).

    ``source`` may be a path (``str`` or :class:`os.PathLike`), encoded file content
    (``bytes``/``bytearray``/``memoryview``), a binary file-like object, a numpy array
    (RGB, see the module docstring) or a :class:`PIL.Image.Image`. ``name`` overrides the
    label used in :attr:`DecodedImage.source` and in error messages.

    Raises :class:`~mien.errors.SourceNotFoundError` (missing/unreadable path or a
    directory), :class:`~mien.errors.ImageTooLargeError` (over ``limits``, decompression
    bombs), :class:`~mien.errors.UnsupportedMediaError` (clearly another kind of file:
    PDF, video, archive...; or a path that is not a regular file: a FIFO, socket or device,
    refused without blocking) and :class:`~mien.errors.InvalidImageError` (anything else
    that cannot be decoded: corrupt, truncated, not an image, bad array).
    """
    if isinstance(source, np.ndarray):
        label = name if name is not None else "<array>"
        return DecodedImage(
            rgb=_array_to_rgb(source, label, limits), source=label, format=None, orientation=None
        )
    if isinstance(source, Image.Image):
        label = name if name is not None else "<image>"
        return _decode_pil(source, label, limits, owned=False)
    if isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(source))
        label = name if name is not None else path
        data = _read_path(path, label, limits)
        return _decode_bytes(data, label, limits, draft)
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name if name is not None else "<bytes>"
        data = bytes(source)
        _check_byte_size(len(data), label, limits)
        return _decode_bytes(data, label, limits, draft)
    if hasattr(source, "read"):
        if name is not None:
            label = name
        else:
            stream_name = getattr(source, "name", None)
            label = stream_name if isinstance(stream_name, str) else "<stream>"
        data = _read_stream(source, label, limits)
        return _decode_bytes(data, label, limits, draft)
    label = name if name is not None else f"<{type(source).__name__}>"
    raise InvalidImageError(
        f"{label}: cannot load an image from a {type(source).__name__!r}; pass a path, "
        "bytes, a binary file object, a numpy array or a PIL image"
    )


# --------------------------------------------------------------------------------------
# Reading bytes.


def _check_byte_size(size: int, label: str, limits: ImageLimits) -> None:
    if size > limits.max_bytes:
        raise ImageTooLargeError(
            f"{label}: file is too large ({size} bytes, limit {limits.max_bytes} bytes)"
        )


def _read_path(path: str, label: str, limits: ImageLimits) -> bytes:
    """The bytes of the regular file ``path``; a FIFO, socket or device is refused before it
    is opened and the descriptor is checked again (see :mod:`mien.media.regular`)."""
    st = check_regular(path, label)
    _check_byte_size(st.st_size, label, limits)
    data = read_regular(path, limits.max_bytes, label)
    _check_byte_size(len(data), label, limits)  # the file may have grown since stat
    return data


def _read_stream(stream: IO[bytes], label: str, limits: ImageLimits) -> bytes:
    try:
        data = stream.read(limits.max_bytes + 1)
    except OSError as exc:
        raise SourceNotFoundError(f"{label}: cannot read stream ({exc})") from exc
    except Exception as exc:
        raise InvalidImageError(f"{label}: cannot read stream ({exc})") from exc
    if isinstance(data, str):
        raise InvalidImageError(f"{label}: stream is opened in text mode; open it with 'rb'")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImageError(f"{label}: stream.read() returned {type(data).__name__}")
    data = bytes(data)
    _check_byte_size(len(data), label, limits)
    return data


# --------------------------------------------------------------------------------------
# Decoding with Pillow.


def _too_large_message(label: str, width: int, height: int, limits: ImageLimits) -> str | None:
    pixels = width * height
    if pixels > limits.max_pixels:
        return (
            f"{label}: image is too large ({width}x{height} = {pixels} pixels, "
            f"limit {limits.max_pixels} pixels)"
        )
    if max(width, height) > limits.max_side:
        return (
            f"{label}: image is too large ({width}x{height}, "
            f"limit {limits.max_side} pixels per side)"
        )
    return None


def _check_size(im: Image.Image, label: str, limits: ImageLimits) -> None:
    width, height = im.size
    msg = _too_large_message(label, width, height, limits)
    if msg is not None:
        raise ImageTooLargeError(msg)
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{label}: image has no pixels ({width}x{height})")


def _bomb_error(label: str, exc: BaseException, limits: ImageLimits) -> ImageTooLargeError:
    """Pillow's own bomb check fired (callers raise this ``from exc``)."""
    return ImageTooLargeError(
        f"{label}: image is too large, refused as a possible decompression bomb ({exc}); "
        f"limit {limits.max_pixels} pixels"
    )


def _open(
    data: bytes, label: str, limits: ImageLimits, stream: IO[bytes] | None = None
) -> Image.Image:
    """Parse the header (lazy: no pixel is decoded here); from ``stream`` when given (then
    ``data`` is only its first bytes, for error messages)."""
    formats = _open_formats()
    pil_limit = Image.MAX_IMAGE_PIXELS
    # Pillow warns above MAX_IMAGE_PIXELS. Make that an error when our own limit is at
    # least as strict anyway; ignore it when the caller allowed more (our check governs).
    action: Any = "error" if pil_limit is None or limits.max_pixels <= pil_limit else "ignore"
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter(action, Image.DecompressionBombWarning)
            # Pillow's metadata warnings about a damaged header are noise in a batch.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            return Image.open(io.BytesIO(data) if stream is None else stream, formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(label, exc, limits) from exc
    except UnidentifiedImageError as exc:
        iso_kind = _iso_image_kind(data)
        if iso_kind is not None and iso_kind not in formats:
            raise UnsupportedMediaError(
                f"{label}: {iso_kind} images cannot be decoded by this installation "
                f"({'Pillow with AVIF support' if iso_kind == 'AVIF' else 'pillow-heif'} "
                "is required)"
            ) from exc
        raise InvalidImageError(f"{label}: not an image or unsupported format") from exc
    except MemoryError as exc:
        raise ImageTooLargeError(f"{label}: out of memory while reading the header") from exc
    except Exception as exc:
        raise InvalidImageError(
            f"{label}: corrupt or truncated image header ({type(exc).__name__}: {exc})"
        ) from exc


def _decode_bytes(
    data: bytes, label: str, limits: ImageLimits, draft: tuple[int, int] | None = None
) -> DecodedImage:
    if not data:
        raise InvalidImageError(f"{label}: empty file, not an image")
    kind = other_media_kind(data)
    if kind is not None:
        raise UnsupportedMediaError(f"{label}: unsupported media: this is {kind}, not an image")
    im = _open(data, label, limits)
    if draft is not None and im.format in ("JPEG", "MPO"):
        try:
            _check_size(im, label, limits)  # the limits are on the full size
            im.draft("RGB", (max(1, int(draft[0])), max(1, int(draft[1]))))
        except BaseException:
            im.close()
            raise
    return _decode_pil(im, label, limits, owned=True)


def _exif_orientation(im: Image.Image) -> int | None:
    try:
        value = im.getexif().get(0x0112)
    except Exception:  # corrupt EXIF is not worth refusing the image for
        return None
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    return None


def _decode_pil(im: Image.Image, label: str, limits: ImageLimits, *, owned: bool) -> DecodedImage:
    try:
        _check_size(im, label, limits)
        fmt = "JPEG" if im.format == "MPO" else im.format  # MPO: a JPEG with extra pictures
        try:
            im.load()  # a file from Image.open is on its first frame / primary image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb_error(label, exc, limits) from exc
        except MemoryError as exc:
            raise ImageTooLargeError(f"{label}: out of memory while decoding") from exc
        except Exception as exc:
            raise InvalidImageError(
                f"{label}: corrupt or truncated image ({type(exc).__name__}: {exc})"
            ) from exc
        _check_size(im, label, limits)  # GIF/TIFF can grow while loading
        orientation = _exif_orientation(im)
        original = im.info.get("original_orientation")  # pillow_heif applied it already
        already_applied = (
            orientation in (None, 1) and isinstance(original, int) and 1 <= original <= 8
        )
        try:
            rgb = _pil_to_rgb(im, label)
        except MediaError:
            raise
        except MemoryError as exc:
            raise ImageTooLargeError(f"{label}: out of memory while converting") from exc
        except Exception as exc:
            raise InvalidImageError(
                f"{label}: cannot convert image mode {im.mode!r} to RGB ({exc})"
            ) from exc
        if already_applied:
            assert isinstance(original, int)
            orientation = original
        elif orientation is not None:
            rgb = _transpose(rgb, orientation)
        return DecodedImage(rgb=_owned_rgb(rgb), source=label, format=fmt, orientation=orientation)
    finally:
        if owned:
            im.close()


def _owned_rgb(rgb: np.ndarray) -> np.ndarray:
    """A writable, C-contiguous uint8 array (np.asarray(PIL image) is read-only)."""
    if rgb.dtype != np.uint8 or not rgb.flags["C_CONTIGUOUS"] or not rgb.flags["WRITEABLE"]:
        return np.array(rgb, dtype=np.uint8, order="C", copy=True)
    return rgb


def _transpose(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation (same result as PIL.ImageOps.exif_transpose)."""
    if orientation == 2:
        return rgb[:, ::-1]
    if orientation == 3:
        return rgb[::-1, ::-1]
    if orientation == 4:
        return rgb[::-1, :]
    if orientation == 5:
        return rgb.transpose(1, 0, 2)
    if orientation == 6:
        return rgb.transpose(1, 0, 2)[:, ::-1]
    if orientation == 7:
        return rgb.transpose(1, 0, 2)[::-1, ::-1]
    if orientation == 8:
        return rgb.transpose(1, 0, 2)[::-1, :]
    return rgb


def _composite_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite 8-bit ``rgb`` (H, W, 3) with 8-bit ``alpha`` (H, W) over white."""
    a = alpha.astype(np.uint32)[..., None]
    out = (rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _scale16(values: np.ndarray) -> np.ndarray:
    """Scale 0..65535 to 0..255 (v / 257, rounded)."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _pil_to_rgb(im: Image.Image, label: str) -> np.ndarray:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return np.asarray(im, dtype=np.uint8)
    if mode.startswith("I;16"):
        return _grey_to_rgb(_scale16(np.asarray(im)))
    if mode == "I":
        arr = np.asarray(im).astype(np.int64)
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo >= 0 and hi <= 0xFFFF:  # 16-bit data in a 32-bit container
            return _grey_to_rgb(_scale16(arr))
        return _grey_to_rgb(((arr + 2**31) >> 24).astype(np.uint8))  # full int32 range
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        arr = np.where(np.isnan(arr), 0.0, arr)
        finite = arr[np.isfinite(arr)]
        scale = 255.0 if finite.size and float(finite.max()) <= 1.0 else 1.0
        grey = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return _grey_to_rgb(grey)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        return _composite_white(rgba[..., :3], rgba[..., 3])
    if mode in ("L", "1", "P", "CMYK", "YCbCr", "RGBX", "HSV"):
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    try:
        converted = im.convert("RGB")
    except Exception as exc:
        raise InvalidImageError(f"{label}: unsupported image mode {mode!r}") from exc
    return np.asarray(converted, dtype=np.uint8)


# --------------------------------------------------------------------------------------
# Numpy arrays.


def _array_to_rgb(arr: np.ndarray, label: str, limits: ImageLimits) -> np.ndarray:
    if arr.dtype == object or arr.dtype.kind not in "buf":
        raise InvalidImageError(
            f"{label}: unsupported array dtype {arr.dtype}; use uint8 (0..255), uint16 "
            "(0..65535), float (0..1) or bool"
        )
    if arr.dtype.kind == "u" and arr.dtype.itemsize not in (1, 2):
        raise InvalidImageError(
            f"{label}: unsupported array dtype {arr.dtype}; use uint8 or uint16"
        )
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim != 3:
        raise InvalidImageError(
            f"{label}: array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
            f"got {arr.shape}"
        )
    height, width, channels = arr.shape
    if channels not in (1, 3, 4):
        raise InvalidImageError(
            f"{label}: array must have 1, 3 (RGB) or 4 (RGBA) channels; got shape {arr.shape}"
        )
    if height == 0 or width == 0:
        raise InvalidImageError(f"{label}: array has no pixels (shape {arr.shape})")
    msg = _too_large_message(label, width, height, limits)
    if msg is not None:
        raise ImageTooLargeError(msg)

    u8: np.ndarray
    if arr.dtype.kind == "b":
        u8 = arr.astype(np.uint8) * np.uint8(255)
    elif arr.dtype.kind == "u" and arr.dtype.itemsize == 1:
        u8 = arr.astype(np.uint8, copy=True)
    elif arr.dtype.kind == "u":
        u8 = _scale16(arr)
    else:  # float, taken as 0..1
        f = arr.astype(np.float64)
        nan = np.isnan(f)
        if nan.all():
            raise InvalidImageError(f"{label}: array contains only NaN values")
        f = np.where(nan, 0.0, f)
        u8 = np.rint(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)

    if channels == 1:
        rgb = _grey_to_rgb(u8[..., 0])
    elif channels == 3:
        rgb = u8
    else:
        rgb = _composite_white(u8[..., :3], u8[..., 3])
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def probe_image(
    source: bytes | IO[bytes], *, name: str | None = None, limits: ImageLimits = DEFAULT_LIMITS
) -> tuple[int, int, str | None]:
    """``(width, height, format)`` of an encoded picture from its header, checked against
    ``limits``; no pixel is decoded (cheap enough to run before queueing a picture for analysis).

    ``source`` is the file's content or a seekable binary file, of which only the header is read
    (it is left at position 0). Raises the same errors as :func:`load_image` for what the header
    shows (too large, not an image, another kind of media). A file that passes may still fail
    to decode later.
    """
    label = name if name is not None else "<bytes>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, stream = bytes(source), None
        size = len(data)
    else:
        stream = source
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        data = stream.read(4096)
        stream.seek(0)
    _check_byte_size(size, label, limits)
    if not data:
        raise InvalidImageError(f"{label}: empty file, not an image")
    kind = other_media_kind(data)
    if kind is not None:
        raise UnsupportedMediaError(f"{label}: unsupported media: this is {kind}, not an image")
    try:
        im = _open(data, label, limits, stream)
        try:
            _check_size(im, label, limits)
            width, height = im.size
            return int(width), int(height), "JPEG" if im.format == "MPO" else im.format
        finally:
            if stream is None:  # Pillow's close() would close the caller's file too
                im.close()
    finally:
        if stream is not None:
            stream.seek(0)
