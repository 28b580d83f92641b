"""Expanding command-line style input arguments (files, folders, ``-``) into image paths."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "is_video_path", "iter_inputs", "natural_key"]

IMAGE_SUFFIXES: Final[frozenset[str]] = frozenset(
    {
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
    }
)
"""Lower-case suffixes of the files picked up when walking a directory."""

VIDEO_SUFFIXES: Final[frozenset[str]] = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".wmv",
        ".flv",
        ".3gp",
        ".ogv",
    }
)
"""Lower-case suffixes of videos (picked up when walking a directory with ``videos=True``)."""

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[list[str | int], str]:
    """Sort key for "natural" order: ``img2`` < ``img10``, case-insensitive, then exact.

    ``re.split`` with a capturing group alternates text and digit runs, always starting
    with text, so the key lists compare element by element with matching types.
    """
    parts: list[str | int] = []
    for i, part in enumerate(_DIGITS.split(name)):
        parts.append(int(part) if i % 2 else part.casefold())
    return parts, name


def _has_image_suffix(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a video by its suffix (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_SUFFIXES


def iter_inputs(
    paths: Iterable[str | os.PathLike[str]], *, recursive: bool = True, videos: bool = False
) -> Iterator[str]:
    """Expand input arguments into the paths to load, in a stable order.

    * ``"-"`` is yielded as is (stdin; the caller handles it).
    * A directory is walked (recursively unless ``recursive=False``): files whose
      suffix is in :data:`IMAGE_SUFFIXES` (case-insensitive) are yielded in natural
      order (``2.jpg`` before ``10.jpg``), entry by entry, so a sub-folder's files come
      where the sub-folder sorts. Hidden files and folders (name starting with ``.``) are
      skipped. Symlinked folders are followed, but each real folder is walked once, so
      symlink loops end. A sub-folder that cannot be listed is yielded itself so the
      caller records an error for it. With ``videos=True`` files whose suffix is in
      :data:`VIDEO_SUFFIXES` are yielded too. Entries with such a suffix that are not
      regular files (a FIFO, socket, device or broken link) are yielded as well, so the
      loader records an error for each instead of skipping it silently; the loaders never
      open them.
    * Anything else (a file of any suffix, a path that does not exist) is yielded as
      given, so the loader decides and a missing path becomes an error entry while the
      batch goes on.
    """
    for raw in paths:
        path = os.fsdecode(os.fspath(raw))
        if path != "-" and os.path.isdir(path):
            yield from _walk(path, recursive, set(), videos)
        else:
            yield path


def _walk(
    directory: str, recursive: bool, seen: set[tuple[int, int]], videos: bool = False
) -> Iterator[str]:
    try:
        st = os.stat(directory)
    except OSError:
        yield directory
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return
    seen.add(key)
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: natural_key(e.name))
    except OSError:
        yield directory
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        full = os.path.join(directory, entry.name)
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            if recursive:
                yield from _walk(full, recursive, seen, videos)
            continue
        if not (_has_image_suffix(entry.name) or (videos and is_video_path(entry.name))):
            continue
        # Every other entry with a picture/video suffix is yielded: a broken link becomes a
        # NotFound error, a FIFO, socket or device an UnsupportedMedia error (the loaders
        # refuse them without opening them), so none of them is skipped silently.
        yield full
