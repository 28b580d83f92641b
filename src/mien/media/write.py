"""Writing outputs safely: one rule for every path mien writes, and atomic commits.

**The output rule** (:func:`check_output_path`, used by every command and library function that
writes a file the caller named): mien writes only a new file or over an existing *regular* file,
never over the input itself (the same file, a hard link to it, or a link the input goes through),
a folder, a device, a FIFO (named pipe), a socket, or a symbolic link (a link at the output path is
refused: neither followed nor replaced). The check runs before any work is done, and again just
before the output is renamed into place (a path that became a link or a FIFO meanwhile is
refused then).

**Atomic commits**: an output is written to a temporary file in the target folder, then renamed
into place, so a failure (full disk, bad format, Ctrl-C) never leaves a half-written file at the
target path. Inside :func:`committed_together`, the renames wait for the end of the block and
happen together (a redaction and its report: both or neither).

**One file mode**: every file mien creates gets ``0666 & ~umask``, as a normal program's would.

Pictures are written from pixels only, so no EXIF, GPS or other metadata of the input survives.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import io
import os
import stat
import tempfile
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from mien.errors import OutputError

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

#: What the caller's inputs may be: paths (checked) or anything else (bytes, arrays: ignored).
Sources = Iterable[Any]


def output_mode() -> int:
    """The mode of a file mien creates: ``0666 & ~umask`` (the umask is read without changing
    it where /proc tells it, so other threads never see a changed umask)."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as fh,
    ):
        for line in fh:
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _identities(sources: Sources) -> set[tuple[int, int]]:
    """(device, inode) of every source that is an existing path (links followed)."""
    out: set[tuple[int, int]] = set()
    for src in sources:
        if not isinstance(src, (str, os.PathLike)) or os.fspath(src) in ("", "-"):
            continue
        with contextlib.suppress(OSError, ValueError):
            st = os.stat(src)
            out.add((st.st_dev, st.st_ino))
    return out


def _refusal(st: os.stat_result, sources: Sources, kind: str) -> str | None:
    """Why an existing entry (``lstat`` result) must not be written over, or None."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "it is a symbolic link (mien neither follows nor replaces a link at the output path)"
    if stat.S_ISDIR(mode):
        return "it is a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "it is a device"
    if stat.S_ISFIFO(mode):
        return "it is a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "it is a socket"
    if not stat.S_ISREG(mode):
        return "it is not a regular file"
    if (st.st_dev, st.st_ino) in _identities(sources):
        return f"it is the input {kind} (the same file, or a link to it)"
    return None


def _refuse_existing(path: Path, sources: Sources, kind: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    reason = _refusal(st, sources, kind)
    if reason is not None:
        raise OutputError(f"refusing to write {path}: {reason}")


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def check_output_path(
    output: str | os.PathLike[str], *, sources: Sources = (), kind: str = "file"
) -> Path:
    """``output`` as a Path when mien may write a file there (the output rule, above);
    otherwise :class:`OutputError` naming the path and why. ``sources`` are the inputs of the
    work (paths; other objects are ignored), ``kind`` names them in the message ("picture",
    "video", "file"). Call it before any work is done."""
    if os.fspath(output) == "":
        raise OutputError("cannot write an output with an empty name")
    path = Path(output)
    _refuse_existing(path, sources, kind)
    folder = _folder(path)
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: folder {folder} is not writable")
    return path


def check_output_file(
    output: str | os.PathLike[str],
    suffixes: Collection[str],
    kind: str,
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """``output`` as a Path when a ``kind`` file ("picture", "video") can be written there:
    a known suffix and :func:`check_output_path`'s rule (``source`` is the input);
    otherwise :class:`OutputError`. Checked before any work is done."""
    path = Path(output)
    if path.suffix.lower() not in suffixes:
        raise OutputError(
            f"cannot write {path}: unknown {kind} suffix {path.suffix!r}; use one of "
            f"{', '.join(sorted(suffixes))}"
        )
    return check_output_path(path, sources=() if source is None else (source,), kind=kind)


def open_in_place(path: str | os.PathLike[str], mode: str = "a+b") -> IO[Any]:
    """Open a file mien updates in place (a job's lock or ledger), creating it with the output
    mode: never through a symbolic link and never a device, FIFO or socket
    (:class:`OutputError`). ``mode`` is ``"a+b"`` (read and append) or ``"w"`` (text, not
    truncated: for a lock)."""
    if mode not in ("a+b", "w"):
        raise ValueError(f"open_in_place: mode {mode!r} is not 'a+b' or 'w'")
    access = os.O_RDWR | os.O_APPEND if mode == "a+b" else os.O_WRONLY
    flags = access | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    target = Path(path)
    _refuse_existing(target, (), "file")  # a device is not even opened
    try:
        fd = os.open(target, flags, 0o666)  # the umask applies, as for any new file
    except OSError as exc:
        with contextlib.suppress(OSError):
            st = os.lstat(target)
            reason = _refusal(st, (), "file")
            if reason is not None:
                raise OutputError(f"refusing to write {target}: {reason}") from exc
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    reason = _refusal(st, (), "file")
    if reason is not None:
        os.close(fd)
        raise OutputError(f"refusing to write {target}: {reason}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, mode)


# -- committing ------------------------------------------------------------------------------


class _Pending:
    """Temporary files waiting to be renamed into place together (see committed_together)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Path, tuple[Any, ...]]] = []

    def discard(self) -> None:
        for tmp, _target, _sources in self.items:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.items.clear()


_GROUP: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "mien_output_group", default=None
)


def commit_output(tmp: str | os.PathLike[str], target: Path, sources: Sources = ()) -> None:
    """Give the finished temporary file ``tmp`` the output mode and rename it to ``target``,
    after checking the rule again (a link, FIFO or device that appeared at ``target`` meanwhile
    is refused: :class:`OutputError`, ``tmp`` is left for the caller to remove). Inside
    :func:`committed_together` the rename waits for the end of the block."""
    os.chmod(tmp, output_mode())
    group = _GROUP.get()
    if group is not None:
        group.items.append((os.fspath(tmp), target, tuple(sources)))
        return
    _refuse_existing(target, sources, "file")
    os.replace(tmp, target)


@contextlib.contextmanager
def committed_together() -> Iterator[None]:
    """Outputs committed inside this block (:func:`atomic_output`, :func:`write_image`, the
    video writer) are renamed into place together when it ends without an exception, in the
    order they were finished; on an exception none is. Every target is checked again first; if
    a rename still fails, the outputs already renamed are removed: both or neither."""
    group = _Pending()
    token = _GROUP.set(group)
    try:
        yield
    except BaseException:
        group.discard()
        raise
    finally:
        _GROUP.reset(token)
    done: list[Path] = []
    try:
        for _tmp, target, sources in group.items:
            _refuse_existing(target, sources, "file")
        while group.items:
            tmp, target, _sources = group.items[0]
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
            group.items.pop(0)
            done.append(target)
    except BaseException:
        group.discard()
        for placed in done:
            with contextlib.suppress(OSError):
                os.unlink(placed)
        raise


#: errno values of a write that failed for want of room or permission (full disk, quota, file
#: size limit, read-only file system): an OutputError, also when the caller's writes raise them.
_WRITE_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS") if hasattr(errno, name)
)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], mode: str = "wb", *, sources: Sources = ()
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically
    (:func:`commit_output`: the output rule is checked again, mode ``0666 & ~umask``).

    A failed write (full disk, file size limit...), flush, close or rename is an
    :class:`OutputError`; the temporary file is removed in every failure case."""
    target = Path(path)
    folder = _folder(target)
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    written = False  # the caller's part is done: any OSError after it is about the output
    try:
        fh = os.fdopen(fd, mode)
        try:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            written = True
        finally:
            try:
                fh.close()
            except OSError:
                if written:
                    raise
        commit_output(tmp, target, sources)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if written or exc.errno in _WRITE_ERRNOS:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_picture(
    path: str | os.PathLike[str],
    img: Image.Image,
    fmt: str,
    params: dict[str, Any] | None = None,
    *,
    sources: Sources = (),
) -> None:
    """Encode ``img`` as ``fmt`` with Pillow ``params`` and write it atomically to ``path``.

    The picture is encoded in memory first: Pillow's encoders write straight to a file's
    descriptor and ignore a short write, so a full disk or a file size limit could otherwise
    leave a truncated picture that looks written. Errors are :class:`OutputError`."""
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt, **(params or {}))
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc
    with atomic_output(path, sources=sources) as fh:
        fh.write(buf.getbuffer())


def write_image(
    path: str | os.PathLike[str],
    rgb: npt.NDArray[np.uint8],
    quality: int = 92,
    *,
    sources: Sources = (),
) -> None:
    """Write an RGB array as JPEG/PNG/WebP/BMP/TIFF (by suffix), without any metadata."""
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(OUTPUT_FORMATS))
        raise OutputError(f"cannot write {path}: unknown picture suffix; use one of {known}")
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    params: dict[str, Any] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    save_picture(path, img, fmt, params, sources=sources)
