"""Pictures named on a command line, through the local engine's worker processes.

``mien analyze DIR`` uses it to put every core to work the way ``mien batch`` does (one worker
process per core, each with its own models and a share of the threads), without a job folder:
the records come back in input order, each the record one process would have written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from mien.batch.inputs import BatchItem
from mien.batch.local import run_local
from mien.batch.run import default_workers
from mien.batch.worker import Task, WorkerConfig
from mien.options import AnalyzerOptions

__all__ = ["pool_records", "worker_threads"]


def worker_threads(workers: int, threads: int = 0) -> int:
    """Intra-op threads per worker: ``threads`` when given, else the cores shared out (>= 1)."""
    return threads if threads > 0 else max(1, default_workers() // max(1, workers))


def pool_records(
    paths: Sequence[str],
    options: AnalyzerOptions,
    workers: int,
    *,
    task: Task = "analyze",
    out_dir: str = "",
    redact: Any = None,
    keys: Sequence[str] | None = None,
    keep_metadata: bool = False,
) -> Iterator[dict[str, Any]]:
    """The record of each of ``paths`` (``ImageResult.to_dict`` for analysis, the redaction
    report's ``to_dict`` for ``task="redact"``), in their order, computed by ``workers``
    processes; a file that cannot be read gives a record with ``error``, as
    :meth:`mien.analyzer.FaceAnalyzer.analyze` does with ``on_error="record"``.

    ``task="redact"`` with ``keys``: the picture ``paths[i]`` is redacted to
    ``out_dir/keys[i]`` (a relative path; ``mien redact DIR``'s layout), else to the job
    folder's ``out_dir/redacted/...``."""
    threads = worker_threads(workers, options.num_threads)
    config = WorkerConfig(
        task=task,
        analyzer=replace(options, num_threads=threads),
        threads=threads,
        out_dir=out_dir,
        redact=redact,
        redact_tree=keys is not None,
        keep_metadata=keep_metadata,
    )
    names = paths if keys is None else keys
    pairs = zip(names, paths, strict=True)  # ValueError when the lengths differ
    items = [(i, BatchItem(key=k, path=p)) for i, (k, p) in enumerate(pairs)]
    for got in run_local(items, config, workers):
        if got is not None:
            record = dict(got[1])
            del record["key"]
            yield record
