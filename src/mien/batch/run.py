"""Running a batch job: list the inputs, skip those committed shards hold, commit the rest.

Shards are cut as the records come back: a shard is committed once it holds ``shard_size``
files, or ``shard_seconds`` after its first record arrived (local engine), whichever comes
first, so a long job keeps its progress at least every ``shard_seconds`` whatever the speed of
the machine or the size of the photos.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mien.batch.inputs import BatchItem, input_digest, list_items
from mien.batch.job import JobFolder, ShardEntry
from mien.batch.worker import Task, WorkerConfig
from mien.options import AnalyzerOptions

__all__ = [
    "SHARD_SECONDS",
    "SHARD_SIZE",
    "BatchOptions",
    "BatchSummary",
    "default_workers",
    "run_batch",
]

Engine = Literal["local", "ray"]
Format = Literal["jsonl", "parquet"]

#: Default files per shard, and seconds after its first record before a shard is committed
#: (local engine): on a 2-core machine a shard is committed at least about every 30 s.
SHARD_SIZE = 64
SHARD_SECONDS = 30.0


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BatchOptions:
    """One batch job.

    * ``input``: a folder (walked recursively), a glob, or a ``.txt``/``.csv`` manifest.
    * ``output``: the job folder (created; a rerun with the same options resumes in it).
    * ``task``: ``"analyze"`` (records as ``mien analyze``) or ``"redact"`` (redacted copies
      under ``OUT_DIR/redacted`` plus one report record per image).
    * ``engine``: ``"local"`` (worker processes) or ``"ray"`` (Ray Data).
    * ``workers``: processes / actors (None: the cores of this machine).
    * ``threads``: intra-op threads per worker (None: cores // workers, at least 1).
    * ``shard_size``: most items per shard (the unit of commit and resume).
    * ``shard_seconds``: a shard is committed at the latest this long after its first record
      came back, even with fewer than ``shard_size`` items (local engine; Ray cuts shards of
      ``shard_size`` items before it starts). Neither changes the records.
    * ``format``: ``"jsonl"``, or ``"parquet"`` for a Parquet table next to each JSON Lines shard.
    """

    input: str
    output: str
    task: Task = "analyze"
    engine: Engine = "local"
    workers: int | None = None
    threads: int | None = None
    shard_size: int = SHARD_SIZE
    shard_seconds: float = SHARD_SECONDS
    format: Format = "jsonl"
    analyzer: AnalyzerOptions = field(default_factory=AnalyzerOptions)
    redact: Any = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.task not in ("analyze", "redact"):
            raise ValueError(f"task must be 'analyze' or 'redact', got {self.task!r}")
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if self.format not in ("jsonl", "parquet"):
            raise ValueError(f"format must be 'jsonl' or 'parquet', got {self.format!r}")
        if self.format == "parquet" and self.task != "analyze":
            raise ValueError("--format parquet is for --task analyze (redaction reports are JSON)")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")
        if not 1 <= self.shard_size <= 1_000_000:
            raise ValueError("shard size must lie in [1, 1000000]")
        if not 0 < self.shard_seconds <= 86_400:
            raise ValueError("shard seconds must lie in (0, 86400]")
        if self.ray_address and self.engine != "ray":
            raise ValueError("--ray-address needs --engine ray")

    def params(self) -> dict[str, Any]:
        """What decides the content of the output: a rerun must match these to resume."""
        a = self.analyzer
        out: dict[str, Any] = {
            "input": os.path.abspath(self.input),
            "task": self.task,
            "format": self.format,
            "features": list(a.features),
            "threshold": a.threshold,
            "min_face": a.min_face,
            "max_faces": a.max_faces,
            "upscale": a.upscale,
            "tiling": a.tiling,
            "rotation_search": a.rotation_search,
            "mesh_min_face": a.mesh_min_face,
            "max_pixels": a.max_pixels,
        }
        if self.task == "redact":
            r = self.redact
            out["redact"] = {
                "method": r.method,
                "shape": r.shape,
                "scale": r.scale,
                "color": list(r.color),
                "blocks": r.blocks,
            }
        return out


@dataclass(frozen=True)
class BatchSummary:
    """What one run did; ``skipped`` counts files of shards committed by earlier runs."""

    output: str
    total: int
    done: int
    failed: int
    skipped: int
    faces: int
    seconds: float
    shards_committed: int
    interrupted: bool = False
    failed_total: int = 0

    @property
    def files_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "faces": self.faces,
            "seconds": round(self.seconds, 3),
            "files_per_second": round(self.files_per_second, 3),
            "shards_committed": self.shards_committed,
            "failed_total": self.failed_total,
            "interrupted": self.interrupted,
        }


def pending_runs(n_items: int, done: dict[int, ShardEntry]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive inputs that no committed shard holds."""
    runs, at = [], 0
    for shard in sorted(done):
        if shard > at:
            runs.append((at, shard))
        at = max(at, shard + done[shard].files)
    if at < n_items:
        runs.append((at, n_items))
    return runs


def cut_shards(runs: Sequence[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The runs cut into ``(start, stop)`` pieces of at most ``size`` inputs (Ray's shards)."""
    return [(a, min(a + size, b)) for start, b in runs for a in range(start, b, size)]


def run_batch(
    options: BatchOptions,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_commit: Callable[[ShardEntry], None] | None = None,
) -> BatchSummary:
    """Run (or resume) the job; returns its summary. Ctrl-C keeps every committed shard.

    ``log`` receives the one-line notices (default: stderr); ``on_commit`` is called after
    each shard is committed (progress hooks, benchmarks).
    """
    say = log or (lambda msg: print(f"mien: {msg}", file=sys.stderr))
    _require_extras(options)
    if options.task == "redact":
        from mien.redact.image import redaction_analyzer_options
        from mien.redact.options import RedactOptions

        options = _with(
            options,
            redact=options.redact or RedactOptions(),
            analyzer=redaction_analyzer_options(options.analyzer),
        )
    items = list_items(options.input, exclude=options.output)
    workers = options.workers or default_workers()
    threads = options.threads or max(1, default_workers() // workers)
    config = WorkerConfig(
        task=options.task,
        analyzer=_with_threads(options.analyzer, threads),
        threads=threads,
        out_dir=os.path.abspath(options.output),
        redact=options.redact,
    )
    with JobFolder(options.output, parquet=options.format == "parquet", n_items=len(items)) as job:
        resumed = job.check_or_start(options.params(), input_digest(items), len(items))
        done = job.done()
        runs = pending_runs(len(items), done)
        skipped = sum(e.files for e in done.values())
        if resumed:
            say(
                f"resuming {options.output}: {skipped} of {len(items)} file(s) already done "
                f"in {len(done)} shard(s)"
            )
        t0 = time.perf_counter()
        entries: list[ShardEntry] = []
        interrupted = False
        bar = _bar(len(items), skipped, progress and bool(runs))
        try:
            for entry in _commit_stream(job, options, items, runs, config, workers, bar):
                entries.append(entry)
                done[entry.shard] = entry
                if on_commit is not None:
                    on_commit(entry)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        failed_total = job.write_errors(done)
        summary = BatchSummary(
            output=options.output,
            total=len(items),
            done=sum(e.files for e in entries),
            failed=sum(e.failed for e in entries),
            skipped=skipped,
            faces=sum(e.faces for e in entries),
            seconds=seconds,
            shards_committed=len(done),
            interrupted=interrupted,
            failed_total=failed_total,
        )
        job.write_summary(
            {**summary.to_dict(), "engine": options.engine, "workers": workers, "threads": threads}
        )
    return summary


def _commit_stream(
    job: JobFolder,
    options: BatchOptions,
    items: Sequence[BatchItem],
    runs: Sequence[tuple[int, int]],
    config: WorkerConfig,
    workers: int,
    bar: Any,
) -> Iterator[ShardEntry]:
    """Process the pending runs and commit their records shard by shard, in input order."""
    if not runs:
        return
    commit = _Committer(job, options)
    if options.engine == "ray":
        from mien.batch.ray_engine import run_ray

        shards = [(a, items[a:b]) for a, b in cut_shards(runs, options.shard_size)]
        with contextlib.closing(
            run_ray(shards, config, workers, address=options.ray_address)
        ) as stream:
            for start, records in stream:
                bar.update(len(records))
                yield commit(start, records)
        return
    from mien.batch.local import run_local

    work = [(i, items[i]) for a, b in runs for i in range(a, b)]
    ends = {b for _, b in runs}
    with contextlib.closing(run_local(work, config, workers)) as stream:
        yield from _cut(stream, commit, ends, options.shard_size, options.shard_seconds, bar)


class _Committer:
    """Commits one shard: its JSON Lines file, and its Parquet table with --format parquet."""

    def __init__(self, job: JobFolder, options: BatchOptions) -> None:
        self.job = job
        self.options = options

    def __call__(self, start: int, records: list[dict[str, Any]]) -> ShardEntry:
        table = None
        if self.options.format == "parquet":
            from mien.batch.parquet import analysis_table

            table = analysis_table(records, self.options.analyzer.features)
        return self.job.commit(start, records, table)


def _cut(
    stream: Iterator[tuple[int, dict[str, Any]] | None],
    commit: Callable[[int, list[dict[str, Any]]], ShardEntry],
    ends: set[int],
    size: int,
    seconds: float,
    bar: Any,
) -> Iterator[ShardEntry]:
    """Group the in-order records of the local engine into shards and commit each.

    A shard is committed when it holds ``size`` records, when ``seconds`` have passed since its
    first record came (the engine sends a ``None`` tick at least every ``TICK`` seconds, so this
    also happens while a slow file holds the next record back), and at the end of a run of
    pending inputs (a shard never spans a shard committed earlier). On Ctrl-C or SIGTERM the
    records that came back so far are committed before the run stops.
    """
    start, since = 0, 0.0
    got: list[dict[str, Any]] = []
    try:
        for event in stream:
            if event is not None:
                index, record = event
                if not got:
                    start, since = index, time.monotonic()
                if index != start + len(got):  # never commit a shard with a gap in it
                    raise RuntimeError(f"record {index} came back out of order")
                got.append(record)
                bar.update(1)
            if got and (
                len(got) >= size or start + len(got) in ends or time.monotonic() - since >= seconds
            ):
                entry = commit(start, got)
                got = []
                yield entry
    except KeyboardInterrupt:
        if got:  # complete records of the inputs before the stop: keep them
            yield commit(start, got)
        raise


def _require_extras(options: BatchOptions) -> None:
    """``MissingExtra`` before any work is done (not after the first shard), as the CLI's exit 3."""
    if options.format == "parquet":
        from mien.extras import require_extra

        require_extra("parquet", "mien batch --format parquet")
    if options.engine == "ray":
        from mien.batch.ray_engine import _import_ray

        _import_ray()


def _bar(total: int, initial: int, show: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="file",
        disable=not show,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def _with(options: BatchOptions, **changes: Any) -> BatchOptions:
    from dataclasses import replace

    return replace(options, **changes)


def _with_threads(options: AnalyzerOptions, threads: int) -> AnalyzerOptions:
    from dataclasses import replace

    return replace(options, num_threads=threads)
