"""Batch jobs over many files: sharded, committed shard by shard, resumable, local or on Ray.

* :class:`BatchOptions` / :func:`run_batch` -> :class:`BatchSummary`: run or resume a job.
* ``mien.batch.inputs`` lists a folder, glob or manifest into sorted, keyed items.
* ``mien.batch.job`` owns the output folder: parameters, atomic shard commits, the ledger.
* ``mien.batch.local`` / ``mien.batch.ray_engine``: the two engines (same records).

See docs/batch.md.
"""

from __future__ import annotations

from mien.batch.run import BatchOptions, BatchSummary, default_workers, run_batch

__all__ = ["BatchOptions", "BatchSummary", "default_workers", "run_batch"]
