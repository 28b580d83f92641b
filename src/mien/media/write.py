"""Writing outputs safely: to a temporary file in the target folder, then renamed into place.

A failure (full disk, bad format, Ctrl-C) never leaves a half-written file at the target path.
Pictures are written from pixels only, so no EXIF, GPS or other metadata of the input survives.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt
from PIL import Image

from mien.errors import MienError


class OutputError(MienError):
    """The output path cannot be written."""

    code = "OutputError"


#: Picture suffix -> Pillow format: pictures are written in the format of their suffix.
OUTPUT_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def check_output_file(
    output: str | os.PathLike[str],
    suffixes: Collection[str],
    kind: str,
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """``output`` as a Path when a ``kind`` file ("picture", "video") can be written there:
    a known suffix, an existing writable folder, not a folder itself and not ``source``;
    otherwise :class:`OutputError`. Checked before any work is done."""
    path = Path(output)
    if path.suffix.lower() not in suffixes:
        raise OutputError(
            f"cannot write {path}: unknown {kind} suffix {path.suffix!r}; use one of "
            f"{', '.join(sorted(suffixes))}"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {path}: folder {folder} is not writable")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if source is not None:
        with contextlib.suppress(OSError):
            if os.path.samefile(source, path):
                raise OutputError(f"cannot write {path}: it is the input {kind}")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[bytes]]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_image(
    path: str | os.PathLike[str], rgb: npt.NDArray[np.uint8], quality: int = 92
) -> None:
    """Write an RGB array as JPEG/PNG/WebP/BMP/TIFF (by suffix), without any metadata."""
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(OUTPUT_FORMATS))
        raise OutputError(f"cannot write {path}: unknown picture suffix; use one of {known}")
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    params: dict[str, int] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    try:
        with atomic_output(path) as fh:
            img.save(fh, format=fmt, **params)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc
