"""Running a batch job: list the inputs, shard them, skip committed shards, commit the rest."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mien.batch.inputs import BatchItem, input_digest, list_items
from mien.batch.job import JobFolder, ShardEntry
from mien.batch.worker import Task, WorkerConfig
from mien.options import AnalyzerOptions

__all__ = ["BatchOptions", "BatchSummary", "default_workers", "run_batch"]

Engine = Literal["local", "ray"]
Format = Literal["jsonl", "parquet"]


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
    * ``shard_size``: items per shard (the unit of commit and resume).
    * ``format``: ``"jsonl"``, or ``"parquet"`` for a Parquet table next to each JSON Lines shard.
    """

    input: str
    output: str
    task: Task = "analyze"
    engine: Engine = "local"
    workers: int | None = None
    threads: int | None = None
    shard_size: int = 256
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
        if self.ray_address and self.engine != "ray":
            raise ValueError("--ray-address needs --engine ray")

    def params(self) -> dict[str, Any]:
        """What decides the content of the output: a rerun must match these to resume."""
        a = self.analyzer
        out: dict[str, Any] = {
            "input": os.path.abspath(self.input),
            "task": self.task,
            "shard_size": self.shard_size,
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
    shards_total: int
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
            "shards_total": self.shards_total,
            "failed_total": self.failed_total,
            "interrupted": self.interrupted,
        }


def shard_items(items: Sequence[BatchItem], size: int) -> list[list[BatchItem]]:
    """Consecutive slices of the sorted items: shard ``i`` holds items ``i*size .. +size-1``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


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
    shards = shard_items(items, options.shard_size)
    workers = options.workers or default_workers()
    threads = options.threads or max(1, default_workers() // workers)
    config = WorkerConfig(
        task=options.task,
        analyzer=_with_threads(options.analyzer, threads),
        threads=threads,
        out_dir=os.path.abspath(options.output),
        redact=options.redact,
    )
    with JobFolder(
        options.output, parquet=options.format == "parquet", n_shards=len(shards)
    ) as job:
        resumed = job.check_or_start(options.params(), input_digest(items), len(items))
        done = job.done()
        pending = [(sid, s) for sid, s in enumerate(shards) if sid not in done]
        skipped = sum(len(shards[sid]) for sid in done if sid < len(shards))
        if resumed:
            say(f"resuming {options.output}: {len(done)} of {len(shards)} shard(s) already done")
        t0 = time.perf_counter()
        entries: list[ShardEntry] = []
        interrupted = False
        bar = _bar(len(items), skipped, progress and bool(pending))
        try:
            for entry in _commit_stream(job, options, pending, config, workers, bar):
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
            shards_total=len(shards),
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
    pending: Sequence[tuple[int, list[BatchItem]]],
    config: WorkerConfig,
    workers: int,
    bar: Any,
) -> Iterator[ShardEntry]:
    """Collect records per shard from the engine and commit each shard once it is complete."""
    if not pending:
        return
    order = {sid: {it.key: i for i, it in enumerate(items)} for sid, items in pending}
    with contextlib.closing(_engine(options, pending, config, workers)) as stream:
        yield from _collect(job, options, stream, order, bar)


def _collect(
    job: JobFolder,
    options: BatchOptions,
    stream: Iterator[tuple[int, list[dict[str, Any]]]],
    order: dict[int, dict[str, int]],
    bar: Any,
) -> Iterator[ShardEntry]:
    partial: dict[int, list[dict[str, Any]]] = {}
    for sid, records in stream:
        got = partial.setdefault(sid, [])
        got.extend(records)
        bar.update(len(records))
        if len(got) < len(order[sid]):
            continue
        del partial[sid]
        got.sort(key=lambda r: order[sid][r["key"]])
        table = None
        if options.format == "parquet":
            from mien.batch.parquet import analysis_table

            table = analysis_table(got, options.analyzer.features)
        yield job.commit(sid, got, table)
        order.pop(sid)


def _require_extras(options: BatchOptions) -> None:
    """``MissingExtra`` before any work is done (not after the first shard), as the CLI's exit 3."""
    if options.format == "parquet":
        from mien.extras import require_extra

        require_extra("parquet", "mien batch --format parquet")
    if options.engine == "ray":
        from mien.batch.ray_engine import _import_ray

        _import_ray()


def _engine(
    options: BatchOptions,
    pending: Sequence[tuple[int, list[BatchItem]]],
    config: WorkerConfig,
    workers: int,
) -> Generator[tuple[int, list[dict[str, Any]]], None, None]:
    if options.engine == "ray":
        from mien.batch.ray_engine import run_ray

        return run_ray(pending, config, workers, address=options.ray_address)
    from mien.batch.local import run_local

    return run_local(pending, config, workers)


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
