"""What a batch reads: a folder, a glob or a manifest, expanded into sorted, keyed items.

Every item has a ``key``: a stable, unique name for the image inside the job (the path relative
to the input folder, to the glob's fixed leading folders, or the manifest line as written). Items
are sorted by key in natural order, so the same input always gives the same list and the same
shards, which is what lets a rerun resume.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from mien.errors import BatchInputError, MienError
from mien.media.discover import iter_inputs, natural_key
from mien.media.regular import open_regular, special_kind

__all__ = ["BatchItem", "input_digest", "list_items"]

_GLOB_CHARS = frozenset("*?[")
_MANIFEST_SUFFIXES = frozenset({".txt", ".csv"})
_PATH_COLUMNS = ("path", "uri", "file", "filename")


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch.

    * ``key``: unique within the job; records and the redacted copy are named by it.
    * ``path``: the local file to read, or ``None`` when the entry cannot be read by mien (a
      URI with a scheme other than ``file://``); ``problem`` then says why.
    """

    key: str
    path: str | None
    problem: str | None = None


def list_items(spec: str, *, exclude: str | os.PathLike[str] | None = None) -> list[BatchItem]:
    """Expand ``spec`` (folder, glob or ``.txt``/``.csv`` manifest) into sorted items.

    Files under ``exclude`` (the job's output folder) are left out, so a job writing inside
    its own input folder does not feed on its output.
    """
    if os.path.isdir(spec):
        items = _from_folder(spec)
    elif os.path.isfile(spec) and Path(spec).suffix.lower() in _MANIFEST_SUFFIXES:
        items = _from_manifest(spec)
    elif _GLOB_CHARS & set(spec):
        items = _from_glob(spec)
    elif os.path.isfile(spec):
        raise BatchInputError(
            f"{spec}: a batch input is a folder, a glob (quoted, e.g. 'photos/**/*.jpg') or a "
            "manifest (.txt with one path per line, or .csv with a 'path' column)"
        )
    elif kind := _special(spec):  # a FIFO, socket or device: never opened (it could block)
        raise BatchInputError(
            f"{spec}: not a regular file ({kind}); a batch input is a folder, a glob or a "
            "manifest file"
        )
    else:
        raise BatchInputError(f"{spec}: no such folder, manifest or matching glob")
    if exclude is not None:
        ex = os.path.abspath(exclude) + os.sep
        items = [i for i in items if i.path is None or not os.path.abspath(i.path).startswith(ex)]
    unique: dict[str, BatchItem] = {}
    for item in items:
        unique.setdefault(item.key, item)  # a manifest may list a file twice: keep the first
    return sorted(unique.values(), key=lambda i: natural_key(i.key))


def _special(path: str) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a folder."""
    try:
        kind = special_kind(os.stat(path).st_mode)
    except (OSError, ValueError):
        return None
    return None if kind == "folder" else kind


def input_digest(items: Iterable[BatchItem]) -> str:
    """sha256 over the keys and paths, in order: equal digests mean the same work list."""
    h = hashlib.sha256()
    for item in items:
        h.update(item.key.encode("utf-8", "surrogateescape") + b"\0")
        h.update((item.path or "").encode("utf-8", "surrogateescape") + b"\0")
        h.update((item.problem or "").encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


def _posix_rel(path: str, base: str) -> str:
    return PurePosixPath(*Path(os.path.relpath(path, base)).parts).as_posix()


def _from_folder(folder: str) -> list[BatchItem]:
    root = os.path.abspath(folder)
    out = []
    for p in iter_inputs([root], recursive=True):
        full = os.path.abspath(p)
        out.append(BatchItem(key=_posix_rel(full, root), path=full))
    return out


def _glob_base(pattern: str) -> str:
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return os.path.abspath(os.path.join(*fixed)) if fixed else os.path.abspath(".")


def _from_glob(pattern: str) -> list[BatchItem]:
    base = _glob_base(pattern)
    out = []
    for p in glob.iglob(pattern, recursive=True):
        full = os.path.abspath(p)
        if os.path.isdir(full):
            continue
        out.append(BatchItem(key=_posix_rel(full, base), path=full))
    return out


def _manifest_entries(manifest: str) -> Iterator[str]:
    try:
        fd = open_regular(manifest)  # a FIFO swapped in after isfile() cannot block the open
    except MienError as exc:
        reason = exc.message.removeprefix(f"{manifest}: ")
        raise BatchInputError(f"{manifest}: cannot read the manifest: {reason}") from exc
    try:
        with open(fd, newline="", encoding="utf-8-sig") as fh:
            if manifest.lower().endswith(".csv"):
                reader = csv.DictReader(fh)
                fields = [f.strip().lower() for f in reader.fieldnames or []]
                column = next((c for c in _PATH_COLUMNS if c in fields), None)
                if column is None:
                    raise BatchInputError(
                        f"{manifest}: a CSV manifest needs a 'path' column "
                        f"(found: {', '.join(fields) or 'no header'})"
                    )
                name = (reader.fieldnames or [])[fields.index(column)]
                for row in reader:
                    value = (row.get(name) or "").strip()
                    if value:
                        yield value
            else:
                for line in fh:
                    value = line.strip()
                    if value and not value.startswith("#"):
                        yield value
    except OSError as exc:
        raise BatchInputError(f"{manifest}: cannot read the manifest: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise BatchInputError(f"{manifest}: the manifest is not UTF-8 text: {exc}") from exc


def _from_manifest(manifest: str) -> list[BatchItem]:
    base = os.path.dirname(os.path.abspath(manifest))
    out = []
    for entry in _manifest_entries(manifest):
        scheme = urlparse(entry).scheme if "://" in entry else ""
        if scheme == "file":
            parsed = urlparse(entry)
            if parsed.netloc not in ("", "localhost"):
                out.append(BatchItem(entry, None, f"file:// URI on another host: {entry}"))
                continue
            out.append(BatchItem(entry, os.path.abspath(unquote(parsed.path))))
        elif scheme:
            out.append(
                BatchItem(
                    entry,
                    None,
                    f"'{scheme}://' sources are not read by mien batch; "
                    "list local paths or file:// URIs (copy or mount remote storage first)",
                )
            )
        else:
            out.append(BatchItem(entry, os.path.abspath(os.path.join(base, entry))))
    return out
