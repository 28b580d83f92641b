"""The local engine: worker processes on this machine, each loading the models once.

Workers are started with ``forkserver`` (``spawn`` where that is missing), never ``fork``, so
no thread pool or model session of the driver is copied into them. Each gets its thread budget
(``threads``) before it loads the models. Items are sent one by one, with a bounded number in
flight, and come back in order.

A worker that dies (killed by the out-of-memory killer, or a crash in native code on a hostile
file) does not stop the batch: the files that were in flight are retried one at a time in a
fresh single worker; a file that kills that worker too gets a ``WorkerCrashed`` error record,
and the others their normal records. Only when workers keep dying is the run stopped.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mien.batch.inputs import BatchItem
from mien.batch.worker import THREAD_ENV, Worker, WorkerConfig, limit_threads
from mien.errors import MienError

__all__ = ["MAX_CRASHES", "WorkerCrashedError", "run_local"]

log = logging.getLogger("mien")

#: Worker deaths tolerated in one run before it is stopped (the rerun resumes).
MAX_CRASHES = 20

_WORKER: Worker | None = None

Record = dict[str, Any]


class WorkerCrashedError(MienError):
    """Worker processes keep dying; the shards committed so far are kept."""

    code = "WorkerCrashed"


def _init(config: WorkerConfig) -> None:
    global _WORKER
    # Ctrl-C reaches the whole process group: the driver handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads(config.threads)
    _WORKER = Worker(config)


def _process(item: BatchItem) -> Record:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.process(item)


def _ping() -> bool:
    return True


def _solo(config: WorkerConfig) -> ProcessPoolExecutor:
    """One fresh worker, known to start (its models load)."""
    pool = _pool(1, config)
    try:
        pool.submit(_ping).result()
    except BrokenProcessPool as exc:
        _stop(pool)
        raise WorkerCrashedError(
            "worker processes fail to start (see the message above); nothing more was done"
        ) from exc
    return pool


def _context() -> Any:
    methods = mp.get_all_start_methods()
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def _pool(workers: int, config: WorkerConfig) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_init, initargs=(config,)
    )


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: queued items are dropped, running ones abandoned."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=10)


class _Crashes:
    def __init__(self) -> None:
        self.count = 0

    def add(self) -> None:
        self.count += 1
        if self.count > MAX_CRASHES:
            raise WorkerCrashedError(
                f"worker processes died {self.count} times (out of memory, or crashes in "
                "native code); the shards committed so far are kept: rerun the same command "
                "to resume, with fewer --workers if memory is short"
            )


def run_local(
    shards: Sequence[tuple[int, Sequence[BatchItem]]], config: WorkerConfig, workers: int
) -> Generator[tuple[int, list[Record]], None, None]:
    """Process the items of ``shards``; yields ``(shard, [record])`` per item, in order."""
    work: Iterator[tuple[int, BatchItem]] = ((sid, item) for sid, items in shards for item in items)
    # Children inherit the environment at start: cap their thread pools from the first import.
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    limit_threads(config.threads)
    crashes = _Crashes()
    pool = _pool(workers, config)
    try:
        pending: deque[tuple[int, BatchItem, Future[Record]]] = deque()
        window = workers * 4
        models: list[Any] = []
        while True:
            while len(pending) < window:
                nxt = next(work, None)
                if nxt is None:
                    break
                pending.append((nxt[0], nxt[1], pool.submit(_process, nxt[1])))
            if not pending:
                break
            sid, _, fut = pending[0]
            try:
                rec = fut.result()
            except BrokenProcessPool:
                crashes.add()
                _stop(pool)
                log.warning(
                    "a worker process died; retrying its %d unfinished file(s) one at a time",
                    sum(1 for *_, f in pending if not _succeeded(f)),
                )
                yield from _isolate(list(pending), config, crashes, models)
                pending.clear()
                pool = _pool(workers, config)
                continue
            pending.popleft()
            models = models or rec.get("models", [])
            yield sid, [rec]
    except BaseException:
        _stop(pool)
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        pool.shutdown(wait=True, cancel_futures=True)


def _succeeded(fut: Future[Record]) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None


def _isolate(
    pending: list[tuple[int, BatchItem, Future[Record]]],
    config: WorkerConfig,
    crashes: _Crashes,
    models: list[Any],
) -> Iterator[tuple[int, list[Record]]]:
    """Finish the items of a broken pool in order: kept results, the rest alone in one worker."""
    solo: ProcessPoolExecutor | None = None
    try:
        for sid, item, fut in pending:
            if _succeeded(fut):
                yield sid, [fut.result()]
                continue
            solo = solo or _solo(config)
            try:
                rec = solo.submit(_process, item).result()
            except BrokenProcessPool:
                crashes.add()
                _stop(solo)
                solo = None
                rec = _crash_record(item, models)
            yield sid, [rec]
    finally:
        if solo is not None:
            _stop(solo)


def _crash_record(item: BatchItem, models: list[Any]) -> Record:
    return {
        "key": item.key,
        "source": item.path or item.key,
        "width": 0,
        "height": 0,
        "models": models,
        "error": {
            "code": "WorkerCrashed",
            "message": "the worker process died while processing this file, also when it was "
            "retried alone (a crash in native code, or out of memory)",
        },
    }
