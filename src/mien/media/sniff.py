"""One answer to "is this file a picture or a video?" for every part of mien.

:func:`media_kind` decides by suffix first (:data:`mien.media.discover.IMAGE_SUFFIXES` and
:data:`~mien.media.discover.VIDEO_SUFFIXES`), then, for any other suffix, by the file's content:
a file that Pillow recognises as a picture, or that FFmpeg opens with one of its still-picture
readers (SVG, JPEG 2000, ICO, PNG... FFmpeg reads single pictures as one-frame "videos"), is a
picture; a file FFmpeg opens with a video stream in a real video container is a video. Anything
else is left to the picture loader, which gives the precise error (``UnsupportedMedia``,
``InvalidImage``).

Given the first bytes of a file instead of a path (an upload, whose name is not trusted and
which is not saved yet), :func:`media_kind` answers from the container's magic numbers only:
``"video"`` for a video container, else None (the picture loader decides).
"""

from __future__ import annotations

import os
from typing import Literal

from mien.media.discover import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["MediaKind", "media_kind"]

MediaKind = Literal["image", "video"]

#: FFmpeg demuxers that read still pictures (besides ``image2`` and the ``*_pipe`` ones).
_PICTURE_DEMUXERS = frozenset({"ico", "gif", "apng", "alias_pix", "brender_pix", "jpegxl_anim"})

#: Pillow formats that are not pictures mien could load (MPEG-1 elementary video streams).
_NOT_PICTURES = frozenset({"MPEG"})


def _is_picture_demuxer(name: str) -> bool:
    return any(
        part.startswith("image2") or part.endswith("_pipe") or part in _PICTURE_DEMUXERS
        for part in name.split(",")
    )


def _pillow_knows(path: str) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only
            return im.format not in _NOT_PICTURES
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False
    except Exception:  # a Pillow plugin failing on odd bytes: not recognised
        return False


def media_kind(path: str | os.PathLike[str] | bytes) -> MediaKind | None:
    """``"image"`` or ``"video"`` for the file at ``path``, or None when it is neither a known
    suffix nor content mien recognises (also when it is missing or not a regular file: no FIFO
    or device is opened here). Single still pictures are always ``"image"``.

    ``bytes`` are a file's first bytes (4 KiB is enough): ``"video"`` when they start a video
    container (:func:`mien.media.image.other_media_kind` names one), else None."""
    if isinstance(path, bytes):
        from mien.media.image import other_media_kind

        other = other_media_kind(path)
        return "video" if other is not None and "video" in other else None
    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    from mien.errors import MediaError
    from mien.media.regular import fd_path, open_regular

    try:  # never blocks: a FIFO swapped in after a check is refused on the descriptor
        fd = open_regular(name)
    except MediaError:
        return None
    try:
        probe = fd_path(fd) or name
        if _pillow_knows(probe):
            return "image"
        import av

        with av.open(probe, metadata_errors="ignore") as container:
            if not container.streams.video:
                return None
            return "image" if _is_picture_demuxer(container.format.name) else "video"
    except Exception:  # not a media file FFmpeg reads: the picture loader decides
        return None
    finally:
        os.close(fd)
