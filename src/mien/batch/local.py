"""The local engine: worker processes on this machine, each loading the models once.

Workers are started with ``forkserver`` (``spawn`` where that is missing), never ``fork``, so
no thread pool or model session of the driver is copied into them. Each gets its thread budget
(``threads``) before it loads the models. Items are sent one by one, with a bounded number in
flight, and come back in order.

Workers end with the driver: each watches the driver process and exits as soon as it is gone,
also when it was killed with SIGKILL (with ``forkserver`` a worker's parent is the fork server,
not the driver, and the workers themselves keep the fork server alive, so nothing else would
stop them).

A worker that dies (killed by the out-of-memory killer, or a crash in native code on a hostile
file) does not stop the batch: the files that were in flight are retried one at a time in a
fresh single worker; a file that kills that worker too gets a ``WorkerCrashed`` error record,
and the others their normal records. Only when workers keep dying is the run stopped.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mien.batch.inputs import BatchItem
from mien.batch.worker import THREAD_ENV, Worker, WorkerConfig, limit_threads
from mien.errors import WorkerCrashedError

__all__ = ["MAX_CRASHES", "TICK", "run_local"]

log = logging.getLogger("mien")

#: Worker deaths tolerated in one run before it is stopped (the rerun resumes).
MAX_CRASHES = 20

#: While the next record is not back, :func:`run_local` yields ``None`` this often (seconds), so
#: the driver can commit a shard on time even while one slow file holds the others back.
TICK = 1.0

_WORKER: Worker | None = None

Record = dict[str, Any]


def _init(config: WorkerConfig, driver: int) -> None:
    global _WORKER
    # Ctrl-C reaches the whole process group: the driver handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(driver)
    limit_threads(config.threads)
    _WORKER = Worker(config)


def _die_with(driver: int) -> None:
    """End this process as soon as process ``driver`` ends (a daemon thread watches it)."""
    try:
        fd = os.pidfd_open(driver)  # Linux >= 5.3: readable once the process has ended
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd: poll instead
        fd = -1
    watch = threading.Thread(target=_watch, args=(driver, fd), name="mien-driver", daemon=True)
    watch.start()


def _watch(driver: int, fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            select.select([fd], [], [])
        os._exit(1)
    while _alive(driver):
        time.sleep(0.5)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed driver not yet reaped by its parent is a zombie: it has ended
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


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
        max_workers=workers,
        mp_context=_context(),
        initializer=_init,
        initargs=(config, os.getpid()),
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


class _HeldSignals:
    """SIGINT and SIGTERM held back while the pool is driven, and delivered at safe points.

    Python raises a signal handler's exception (KeyboardInterrupt) wherever the main thread
    is; inside the locks of ``concurrent.futures`` (``Future.result``, ``submit``) that can leave
    a lock held, and the pool's shutdown then hangs for ever. So while ``run_local`` runs (also
    while it is suspended at a ``yield``), these signals are only recorded; :meth:`check`, called
    between waits (at least every :data:`TICK` seconds), restores the handlers and raises the
    first recorded signal again, so its own handler acts on it where no lock is held. Ignored
    signals stay ignored; only the main thread can do this (elsewhere nothing is held back).
    """

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> _HeldSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                    self.saved[sig] = signal.signal(sig, self._hold)
        return self

    def _hold(self, signum: int, frame: object) -> None:
        self.caught.append(signum)

    def check(self) -> None:
        if self.caught:
            self.__exit__()
            signal.raise_signal(self.caught[0])

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        self.saved.clear()


def run_local(
    items: Sequence[tuple[int, BatchItem]], config: WorkerConfig, workers: int
) -> Generator[tuple[int, Record] | None, None, None]:
    """Process ``(index, item)`` pairs; yields ``(index, record)`` per item, in their order.

    While the next record is not back, ``None`` is yielded every :data:`TICK` seconds.
    SIGINT and SIGTERM take effect at the latest :data:`TICK` seconds after they arrive.
    """
    with _HeldSignals() as held:
        yield from _run_local(items, config, workers, held)


def _run_local(
    items: Sequence[tuple[int, BatchItem]],
    config: WorkerConfig,
    workers: int,
    held: _HeldSignals,
) -> Generator[tuple[int, Record] | None, None, None]:
    work: Iterator[tuple[int, BatchItem]] = iter(items)
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
            held.check()
            while len(pending) < window:
                nxt = next(work, None)
                if nxt is None:
                    break
                pending.append((nxt[0], nxt[1], pool.submit(_process, nxt[1])))
            if not pending:
                break
            sid, _, fut = pending[0]
            try:
                rec = fut.result(timeout=TICK)
            except FutureTimeout:
                yield None
                continue
            except BrokenProcessPool:
                crashes.add()
                _stop(pool)
                log.warning(
                    "a worker process died; retrying its %d unfinished file(s) one at a time",
                    sum(1 for *_, f in pending if not _succeeded(f)),
                )
                yield from _isolate(list(pending), config, crashes, models, held)
                pending.clear()
                pool = _pool(workers, config)
                continue
            pending.popleft()
            models = models or rec.get("models", [])
            yield sid, rec
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
    held: _HeldSignals,
) -> Iterator[tuple[int, Record] | None]:
    """Finish the items of a broken pool in order: kept results, the rest alone in one worker."""
    solo: ProcessPoolExecutor | None = None
    try:
        for sid, item, fut in pending:
            if _succeeded(fut):
                yield sid, fut.result()
                continue
            solo = solo or _solo(config)
            try:
                retry = solo.submit(_process, item)
                while True:
                    held.check()
                    try:
                        rec = retry.result(timeout=TICK)
                        break
                    except FutureTimeout:
                        yield None
            except BrokenProcessPool:
                crashes.add()
                _stop(solo)
                solo = None
                rec = _crash_record(item, models)
            yield sid, rec
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
