"""Opening input files without ever blocking: mien reads pictures, videos and rule files from
regular files only.

Opening a FIFO (named pipe) for reading blocks until a writer appears, which may be never; a
character device (``/dev/zero``, ``/dev/urandom``) never ends; a socket cannot be opened at all.
So every path mien reads is checked with :func:`os.stat` *before* it is opened (a special file
is refused without being opened), then opened with ``O_NONBLOCK`` and checked again on the
descriptor with :func:`os.fstat`, so a file swapped for a FIFO between the two steps is refused
too instead of hanging the run. Symbolic links are followed (a link to a picture is a normal
input); both checks look at what the link points to.

Live sources (``/dev/videoN``, stream URLs) do not come here: ``mien.live`` reads them.
"""

from __future__ import annotations

import os
import stat

from mien.errors import SourceNotFoundError, UnsupportedMediaError

__all__ = [
    "check_regular",
    "fd_path",
    "open_regular",
    "read_regular",
    "special_kind",
]


def special_kind(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is, when it is not a regular file (None when it is)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def _refuse(label: str, mode: int) -> None:
    kind = special_kind(mode)
    if kind is None:
        return
    if kind == "folder":
        raise SourceNotFoundError(f"{label}: is a folder, not a file")
    raise UnsupportedMediaError(
        f"{label}: not a regular file ({kind}); mien reads only regular files"
    )


def check_regular(path: str | os.PathLike[str], label: str | None = None) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed) when it is a regular file; never opens it.

    Raises :class:`~mien.errors.SourceNotFoundError` (missing, not accessible, a folder) or
    :class:`~mien.errors.UnsupportedMediaError` (FIFO, socket, device: ``not a regular file``).
    """
    name = os.fsdecode(os.fspath(path))
    label = name if label is None else label
    try:
        st = os.stat(name)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"{label}: no such file") from exc
    except (OSError, ValueError) as exc:
        raise SourceNotFoundError(f"{label}: cannot access file ({_reason(exc)})") from exc
    _refuse(label, st.st_mode)
    return st


def open_regular(path: str | os.PathLike[str], label: str | None = None) -> int:
    """A read-only descriptor of the regular file ``path`` (close it with :func:`os.close`).

    The path is checked with :func:`check_regular` first (special files are never opened), then
    opened with ``O_NONBLOCK`` (a FIFO swapped in meanwhile cannot block the open) and checked
    again on the descriptor. The descriptor is returned in blocking mode. Raises the errors of
    :func:`check_regular`.
    """
    name = os.fsdecode(os.fspath(path))
    label = name if label is None else label
    check_regular(name, label)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"{label}: no such file") from exc
    except OSError as exc:
        raise SourceNotFoundError(f"{label}: cannot be read ({_reason(exc)})") from exc
    try:
        _refuse(label, os.fstat(fd).st_mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], max_bytes: int, label: str | None = None) -> bytes:
    """At most ``max_bytes + 1`` bytes of the regular file ``path`` (so a caller sees that it
    is over ``max_bytes``); the errors of :func:`open_regular`, and
    :class:`~mien.errors.SourceNotFoundError` when reading fails."""
    name = os.fsdecode(os.fspath(path))
    label = name if label is None else label
    fd = open_regular(name, label)
    try:
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(max_bytes + 1)
    except OSError as exc:
        raise SourceNotFoundError(f"{label}: cannot read file ({_reason(exc)})") from exc
    finally:
        os.close(fd)


def fd_path(fd: int) -> str | None:
    """A path that opens the file of descriptor ``fd`` itself (``/proc/self/fd/N`` on Linux,
    ``/dev/fd/N`` elsewhere), for libraries that take a path (FFmpeg); None when the system
    has neither (the caller then falls back to the checked path)."""
    for base in ("/proc/self/fd", "/dev/fd"):
        candidate = f"{base}/{fd}"
        if os.path.exists(candidate):
            return candidate
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
