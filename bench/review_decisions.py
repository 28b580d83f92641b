"""Review decisions as history: what appending costs, with 10,000 flagged items in the store.

Seeds a fresh store (SQLite file, and PostgreSQL when ``--pg-url`` or
``$MIEN_TEST_POSTGRES_URL`` names a server: a throw-away database is created and dropped) with
``--items`` flagged results of one API key, then measures, in the app's own process (FastAPI's
``TestClient``, so the times are the server's with no network):

* ``decision``: ``POST /v1/review/items/{id}/decision`` with the key (append to the history,
  update the latest decision), on ``--decisions`` random items, p50/p95 in ms;
* the peer, in the same run on the same store: the overwrite that the store did before issue 18
  (one ``UPDATE results`` of the latest decision, no history), through the store's engine, and
  ``store.append_decision`` through the same engine; ``ratio`` = append / overwrite (what the
  history costs per decision in the store);
* ``bulk``: ``POST /v1/review/decisions`` with 500 ids (one transaction), wall ms per request;
* ``history``: ``GET /v1/review/items/{id}/history``;
* ``export``: ``GET /v1/review/export`` (JSON, every item with its history), once.

    .venv/bin/python bench/review_decisions.py                      # 10,000 items
    .venv/bin/python bench/review_decisions.py --items 2000 --decisions 50   # smoke run

Results: ``bench/results/review_decisions.json`` and ``.md``. The timings are only meaningful
on an otherwise idle machine: the JSON records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from common_pose import RESULTS, command_line, machine_info, markdown_table, write_json
from mien.service.app import create_app
from mien.service.config import ServiceConfig
from mien.service.keys import create_key
from mien.service.rows import Actor
from mien.service.schema import jobs, results
from mien.service.store import Store

FLAG = [{"rule": "one-face", "message": "exactly one face is required", "severity": "error"}]


@contextmanager
def postgres(admin: str) -> Iterator[str]:
    import psycopg

    name = f"mien_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(store: Store, key_id: str, n: int) -> list[int]:
    """``n`` flagged image results of one job of ``key_id`` (bulk inserts)."""
    job_id = uuid.uuid4().hex
    store.create_job(
        job_id=job_id,
        key_id=key_id,
        kind="images",
        params={},
        items=[(f"photo-{i}.jpg", None) for i in range(n)],
        retention_s=3600,
        request_hash="bench",
        idempotency_key=None,
    )
    now = time.time()
    rows = [
        {
            "job_id": job_id,
            "item_idx": i,
            "seq": 0,
            "kind": "image",
            "data": json.dumps({"faces": []}),
            "flags": json.dumps(FLAG),
            "flagged": True,
            "created_at": now,
        }
        for i in range(n)
    ]
    with store.engine.begin() as c:
        c.execute(insert(results), rows)
        return [int(r[0]) for r in c.execute(select(results.c.id).order_by(results.c.id))]


def overwrite(store: Store, result_id: int, key_id: str) -> None:
    """The decision as the store made it before issue 18: the latest one, overwritten."""
    with store.engine.begin() as c:
        c.execute(
            update(results)
            .where(
                results.c.id == result_id,
                results.c.flagged.is_(True),
                results.c.job_id.in_(select(jobs.c.id).where(jobs.c.key_id == key_id)),
            )
            .values(decision="approved", reviewer="bench", reviewer_key=key_id,
                    decided_at=time.time())
        )  # fmt: skip


def timed(fn: Callable[[], Any], times: int) -> list[float]:
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_backend(backend: str, url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="mien-bench-review-") as tmp:
        cfg = ServiceConfig(data_dir=Path(tmp), db_url=url, workers=0, num_threads=1)
        app = create_app(cfg)
        with TestClient(app) as client:
            store: Store = app.state.mien.store
            key_id, key = create_key(store, "bench")
            auth = {"Authorization": f"Bearer {key}"}
            t0 = time.perf_counter()
            ids = seed(store, key_id, args.items)
            seeded_s = time.perf_counter() - t0

            def pick() -> int:
                return rng.choice(ids)

            def decide() -> None:
                r = client.post(
                    f"/v1/review/items/{pick()}/decision",
                    json={"decision": rng.choice(["approve", "reject"]), "reviewer": "bench"},
                    headers=auth,
                )
                assert r.status_code == 200, r.text

            def bulk() -> None:
                body = {"item_ids": rng.sample(ids, 500), "decision": "reject", "reviewer": "b"}
                r = client.post("/v1/review/decisions", json=body, headers=auth)
                assert r.status_code == 200 and len(r.json()["decided"]) == 500, r.text

            def history() -> None:
                r = client.get(f"/v1/review/items/{pick()}/history", headers=auth)
                assert r.status_code == 200, r.text

            def append() -> None:
                actor = Actor("key", "bench", key_id=key_id)
                assert store.append_decision(pick(), "approved", actor, key_ids=[key_id])

            timed(decide, 5)  # warm-up
            route = timed(decide, args.decisions)
            old = timed(lambda: overwrite(store, pick(), key_id), args.decisions)
            new = timed(append, args.decisions)
            bulks = timed(bulk, args.bulk)
            hist = timed(history, args.decisions)
            export = timed(lambda: client.get("/v1/review/export", headers=auth), 1)[0]
        return {
            "backend": backend,
            "items": args.items,
            "seed_s": round(seeded_s, 2),
            "decision_route_ms": {"p50": pct(route, 0.5), "p95": pct(route, 0.95)},
            "store_overwrite_ms": {"p50": pct(old, 0.5), "p95": pct(old, 0.95)},
            "store_append_ms": {"p50": pct(new, 0.5), "p95": pct(new, 0.95)},
            "append_over_overwrite_p50": statistics.median(new) / statistics.median(old),
            "bulk_500_ms": {"p50": pct(bulks, 0.5), "max": max(bulks)},
            "history_route_ms": {"p50": pct(hist, 0.5), "p95": pct(hist, 0.95)},
            "export_json_ms": export,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--decisions", type=int, default=200)
    ap.add_argument("--bulk", type=int, default=5)
    ap.add_argument("--pg-url", default=os.environ.get("MIEN_TEST_POSTGRES_URL"))
    ap.add_argument("--out", type=Path, default=RESULTS / "review_decisions.json")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    runs = [run_backend("sqlite", None, args)]
    if args.pg_url:
        with postgres(args.pg_url) as url:
            runs.append(run_backend("postgresql", url, args))
    report = {
        "command": command_line(),
        "machine": machine_info(()),
        "load_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "runs": runs,
    }
    write_json(args.out, report)
    rows = [
        [
            r["backend"],
            r["items"],
            f"{r['decision_route_ms']['p50']:.1f} / {r['decision_route_ms']['p95']:.1f}",
            f"{r['store_overwrite_ms']['p50']:.2f}",
            f"{r['store_append_ms']['p50']:.2f}",
            f"{r['append_over_overwrite_p50']:.2f}",
            f"{r['bulk_500_ms']['p50']:.0f}",
            f"{r['history_route_ms']['p50']:.1f}",
            f"{r['export_json_ms']:.0f}",
        ]
        for r in runs
    ]
    header = [
        "store", "items", "decision route p50/p95 ms", "overwrite (before) p50 ms",
        "append (now) p50 ms", "ratio", "bulk 500 ms", "history p50 ms", "export JSON ms",
    ]  # fmt: skip
    table = markdown_table(header, rows)
    md = f"`{report['command']}`\n\n1-min load {load_before:.1f} before, "
    md += f"{report['load_1min']['after']:.1f} after.\n\n{table}\n"
    args.out.with_suffix(".md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
