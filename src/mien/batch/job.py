"""The output folder of a batch job: its parameters, its committed shards and its ledger.

Layout of ``OUT_DIR``::

    job.json                 parameters + input digest (written once; a rerun must match it)
    ledger.jsonl             one line per committed shard (first input, files, failed, faces,
                             errors)
    shards/shard-00042.jsonl one record per image, in key order (the commit point of a shard)
    parquet/shard-00042.parquet one row per face (with --format parquet)
    errors.jsonl             every failed file with its code and message (rebuilt each run)
    summary.json             the counts of the last run
    redacted/<key>           redacted copies (--task redact)

A shard is a run of consecutive inputs of the sorted input list: ``shard-00042`` holds the
inputs 42, 43, ... (as many as it has records). Where a run cuts its shards (after a number of
files or of seconds) may differ from run to run; the shards committed so far never overlap, and
a rerun processes exactly the inputs no committed shard holds.

A shard is committed by writing each of its files to a temporary file in the same folder,
fsyncing it and renaming it into place, the ``.jsonl`` last; the rename is atomic, so a shard is
either complete or absent, and a killed run redoes only the inputs it had not committed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mien.errors import JobLockedError, JobMismatchError, OutputError
from mien.media.write import atomic_output, open_in_place

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock against a second run
    fcntl = None  # type: ignore[assignment]

__all__ = ["JobFolder", "ShardEntry"]

#: 2: shards are named by their first input and may have any length (1: fixed-size shards).
JOB_VERSION = 2


@dataclass
class ShardEntry:
    """One committed shard, as the ledger records it: the inputs ``shard .. shard + files - 1``."""

    shard: int
    files: int
    failed: int
    faces: int
    errors: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "files": self.files,
            "failed": self.failed,
            "faces": self.faces,
            "errors": self.errors,
        }


def entry_for(shard: int, records: Sequence[Mapping[str, Any]]) -> ShardEntry:
    errors = [
        {"key": r["key"], "code": r["error"]["code"], "message": r["error"]["message"]}
        for r in records
        if r.get("error")
    ]
    faces = sum(len(r.get("faces") or r.get("regions") or ()) for r in records)
    return ShardEntry(shard, len(records), len(errors), faces, errors)


class JobFolder:
    """Opens (creating or resuming) the job in ``OUT_DIR``; use as a context manager (lock)."""

    def __init__(self, root: str | os.PathLike[str], *, parquet: bool, n_items: int) -> None:
        self.root = Path(root)
        self.shards_dir = self.root / "shards"
        self.parquet_dir = self.root / "parquet"
        self.parquet = parquet
        self.n_items = n_items
        self.width = max(5, len(str(max(n_items - 1, 0))))
        self._lock: IO[str] | None = None

    # -- opening ----------------------------------------------------------------------------

    def __enter__(self) -> JobFolder:
        if self.root.is_dir() and not (self.root / "job.json").exists():
            ours = {".lock", "shards", "parquet", "ledger.jsonl"}
            if any(p.name not in ours for p in self.root.iterdir()):
                raise JobMismatchError(
                    f"{self.root} is not empty and holds no mien batch job; "
                    "use a new or empty folder"
                )
        elif os.path.lexists(self.root) and not self.root.is_dir():
            raise JobMismatchError(f"{self.root} is not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.shards_dir.mkdir(exist_ok=True)
            if self.parquet:
                self.parquet_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the job folder {exc.filename or self.root}: {exc.strerror or exc}"
            ) from exc
        # held (locked) for the job's lifetime; never opened through a link, FIFO or device
        fh = open_in_place(self.root / ".lock", "w")
        try:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            raise JobLockedError(
                f"another mien batch is running on {self.root}; wait for it or stop it first"
            ) from exc
        self._lock = fh
        for folder in (self.shards_dir, self.parquet_dir):
            for stale in folder.glob(".*.part"):  # temp files of a killed run
                with contextlib.suppress(OSError):
                    stale.unlink()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            if fcntl is not None:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def check_or_start(self, params: Mapping[str, Any], digest: str, n_items: int) -> bool:
        """Record the job's parameters, or check them against the recorded ones.

        Returns True when the job resumes. Raises :class:`JobMismatchError` when the folder
        holds another job (other parameters or another input list).
        """
        path = self.root / "job.json"
        if path.exists():
            try:
                saved = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise JobMismatchError(f"{path} is unreadable ({exc}); use a new folder") from exc
            if saved.get("mien_batch") != JOB_VERSION:
                raise JobMismatchError(
                    f"{self.root} holds a batch job of another mien version (job format "
                    f"{saved.get('mien_batch')!r}, this mien writes {JOB_VERSION}); finish it "
                    "with the mien that started it, or use a new --output folder"
                )
            old = saved.get("params", {})
            if old != dict(params):
                diff = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k))
                detail = "; ".join(f"{k}: was {old.get(k)!r}, now {params.get(k)!r}" for k in diff)
                raise JobMismatchError(
                    f"{self.root} holds a batch job with other parameters ({detail}); rerun "
                    "with the same parameters to resume it, or use a new --output folder"
                )
            if saved.get("input_digest") != digest:
                raise JobMismatchError(
                    f"the input changed since the job in {self.root} started "
                    f"({saved.get('items')} file(s) then, {n_items} now, or other names); "
                    "restore it to resume, or use a new --output folder"
                )
            return True
        leftovers = [p for p in self.root.iterdir() if p.name not in (".lock", "shards", "parquet")]
        for folder in (self.shards_dir, self.parquet_dir):
            if folder.is_dir():
                leftovers += list(folder.iterdir())
        if leftovers:
            raise JobMismatchError(
                f"{self.root} is not empty and holds no mien batch job; use a new or empty folder"
            )
        doc = {
            "mien_batch": JOB_VERSION,
            "params": dict(params),
            "input_digest": digest,
            "items": n_items,
        }
        with atomic_output(path) as fh:
            fh.write((json.dumps(doc, indent=2) + "\n").encode())
        _fsync_dir(self.root)
        return False

    # -- shards -----------------------------------------------------------------------------

    def shard_path(self, shard: int, suffix: str = ".jsonl") -> Path:
        folder = self.parquet_dir if suffix == ".parquet" else self.shards_dir
        return folder / f"shard-{shard:0{self.width}d}{suffix}"

    def _is_committed(self, shard: int) -> bool:
        return self.shard_path(shard).exists() and (
            not self.parquet or self.shard_path(shard, ".parquet").exists()
        )

    def done(self) -> dict[int, ShardEntry]:
        """Committed shards by first input, from the ledger, reconciled with the files on disk.

        Raises :class:`JobMismatchError` if they overlap or reach past the input list (a folder
        edited by hand, or not written by this job).
        """
        entries: dict[int, ShardEntry] = {}
        for rec in self._ledger_lines():
            entries[int(rec["shard"])] = ShardEntry(
                int(rec["shard"]),
                int(rec["files"]),
                int(rec["failed"]),
                int(rec["faces"]),
                list(rec.get("errors", [])),
            )
        done = {k: v for k, v in entries.items() if self._is_committed(k)}
        # A kill between a shard's rename and its ledger line: the shard is complete, so record it.
        for p in sorted(self.shards_dir.glob("shard-*.jsonl")):
            try:
                shard = int(p.stem.split("-", 1)[1])
            except ValueError:
                continue
            if shard not in done and self._is_committed(shard):
                records = [json.loads(line) for line in p.read_text().splitlines() if line]
                done[shard] = entry_for(shard, records)
                self._append_ledger(done[shard])
        end = 0
        for shard in sorted(done):
            if shard < end or shard + done[shard].files > self.n_items or not done[shard].files:
                raise JobMismatchError(
                    f"{self.root}: the committed shard {self.shard_path(shard).name} "
                    f"({done[shard].files} file(s)) overlaps another or lies outside the "
                    f"{self.n_items} input(s); the folder was changed by hand: use a new one"
                )
            end = shard + done[shard].files
        return done

    def commit(
        self, shard: int, records: Sequence[Mapping[str, Any]], table: Any = None
    ) -> ShardEntry:
        """Write one shard's files atomically (the .jsonl last), then its ledger line.

        ``shard`` is the index of its first input; ``records`` are those of the inputs
        ``shard, shard + 1, ...``, in that order.
        """
        if table is not None:
            import pyarrow.parquet as pq

            with atomic_output(self.shard_path(shard, ".parquet")) as fh:
                pq.write_table(table, fh)
            _fsync_dir(self.parquet_dir)
        with atomic_output(self.shard_path(shard)) as fh:
            for rec in records:
                fh.write((json.dumps(rec, allow_nan=False) + "\n").encode())
        _fsync_dir(self.shards_dir)
        entry = entry_for(shard, records)
        self._append_ledger(entry)
        return entry

    # -- ledger, errors, summary ----------------------------------------------------------

    def _ledger_lines(self) -> Iterator[dict[str, Any]]:
        path = self.root / "ledger.jsonl"
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut by a kill: its shard is reconciled from disk
                continue
            if isinstance(rec, dict) and "shard" in rec:
                yield rec

    def _append_ledger(self, entry: ShardEntry) -> None:
        path = self.root / "ledger.jsonl"
        with open_in_place(path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell():  # make sure a line cut by an earlier kill does not swallow this one
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
            fh.write((json.dumps(entry.to_dict()) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())

    def write_errors(self, done: Mapping[int, ShardEntry]) -> int:
        """Rewrite errors.jsonl from the committed shards; returns the number of failed files."""
        n = 0
        with atomic_output(self.root / "errors.jsonl") as fh:
            for shard in sorted(done):
                for err in done[shard].errors:
                    fh.write((json.dumps({"shard": shard, **err}) + "\n").encode())
                    n += 1
        return n

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        with atomic_output(self.root / "summary.json") as fh:
            fh.write((json.dumps(summary, indent=2) + "\n").encode())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
