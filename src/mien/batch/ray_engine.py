"""The Ray engine: Ray Data ``map_batches`` over shards, with actors that hold the models.

Each pending shard is one row (one block) of a Ray dataset; a pool of ``workers`` actors
(:class:`ShardProcessor`, ``num_cpus=threads`` each) processes shard after shard with the same
:class:`~mien.batch.worker.Worker` as the local engine, and the driver commits each shard as
its records stream back. So the records are the same as the local engine's, and a killed run
resumes the same way, whichever engine ran the shards before.

Ray is an optional extra (``pip install 'mien[ray]'``) and is imported only here. Its usage
statistics are switched off (``RAY_USAGE_STATS_ENABLED=0``) unless the user set that variable.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Generator, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from mien.batch.inputs import BatchItem
from mien.batch.worker import THREAD_ENV, Worker, WorkerConfig
from mien.errors import RayJobError, RayUnavailableError
from mien.extras import require_extra

__all__ = ["ShardProcessor", "run_ray"]


class ShardProcessor:
    """A Ray Data callable class: loads the models once per actor, then processes shards."""

    def __init__(self, config: WorkerConfig) -> None:
        self.worker = Worker(config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        shards, outs = [], []
        for sid, items_json in zip(batch["shard"], batch["items"], strict=True):
            items = [BatchItem(**d) for d in json.loads(items_json)]
            records = [self.worker.process(item) for item in items]
            shards.append(int(sid))
            outs.append(json.dumps(records, allow_nan=False))
        return {"shard": np.asarray(shards, np.int64), "records": np.asarray(outs, dtype=object)}


def _import_ray() -> Any:
    """Ray, with its usage statistics off; ``MissingExtra`` when the ``ray`` extra is absent."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    require_extra("ray", "mien batch --engine ray")
    import ray
    import ray.data

    return ray


def run_ray(
    shards: Sequence[tuple[int, Sequence[BatchItem]]],
    config: WorkerConfig,
    workers: int,
    *,
    address: str | None = None,
) -> Generator[tuple[int, list[dict[str, Any]]], None, None]:
    """Process ``shards`` on Ray; yields ``(shard, records)`` per finished shard."""
    if not shards:
        return
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        env = {k: str(config.threads) for k in THREAD_ENV}
        env["RAY_USAGE_STATS_ENABLED"] = os.environ["RAY_USAGE_STATS_ENABLED"]
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,
            "runtime_env": {"env_vars": env},
        }
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                cores = os.cpu_count() or 1
                ray.init(num_cpus=max(cores, workers * config.threads), **kwargs)
        except Exception as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise RayUnavailableError(f"cannot start or join {where}: {exc}") from exc
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        for name in ("enable_operator_progress_bars", "print_on_execution_start"):
            if hasattr(ctx, name):
                setattr(ctx, name, False)
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        rows = [
            {"shard": sid, "items": json.dumps([asdict(i) for i in items])} for sid, items in shards
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                ShardProcessor,
                fn_constructor_kwargs={"config": config},
                batch_size=1,
                concurrency=workers,
                num_cpus=config.threads,
                max_restarts=0,  # a lost actor fails the run; the rerun resumes
            )
            rows_out = iter(ds.iter_rows())
            while True:
                try:
                    row = next(rows_out)
                except StopIteration:
                    break
                except Exception as exc:  # an actor died, the cluster went away...
                    raise RayJobError(
                        f"the Ray job failed ({type(exc).__name__}: {exc}); the shards "
                        "committed so far are kept: rerun the same command to resume"
                    ) from exc
                yield int(row["shard"]), json.loads(row["records"])
    finally:
        if started:
            ray.shutdown()
