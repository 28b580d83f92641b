"""Review queue at volume: server time of the first queue page and of one decision with 10,000
flagged items in the store, on SQLite and on PostgreSQL (issue 18; target <= 150 ms each on the
2-core machine).

For each database: a fresh store, one API key, 10,000 flagged items written straight into it by
tests/review_seed.py (photo items and video segment rows of 100 jobs of 100; varied rules,
severities and profiles), then ``ANALYZE`` (what autovacuum does on PostgreSQL shortly after a
bulk load; SQLite's planner needs no statistics for these queries). The app runs in this
process (``create_app``, no job workers) and is called through Starlette's in-process
``TestClient``: the time of a request is the server's (routing, the API key, the store,
the JSON answer) without a network. Each request is repeated ``--repeat`` times; p50 and p95.

Requests timed (API key header, 50 items a page):
  * first page: ``GET /v1/review/items?status=undecided`` (newest first; counts included)
  * severity page: the same with ``sort=severity``
  * next page: the page after the first (its cursor)
  * filtered page: ``rule=mask&kind=segment``
  * decision: ``POST /v1/review/items/{id}/decision`` (a new undecided item each time)
  * bulk decision of 20 items: ``POST /v1/review/decisions``
Beside them, the store call the old page made (``Store.flagged(limit=500)``, no filters, no
counts) as the baseline; ``ratio`` is the p50 / the 150 ms target.

    .venv/bin/python bench/review.py --postgres postgresql://postgres@127.0.0.1:PORT/postgres
    .venv/bin/python bench/review.py --items 2000 --repeat 10        # smoke run, SQLite only

Results: bench/results/review.json and review.md. The JSON records the load average: the
machine is shared, so the numbers are upper bounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.review_seed import seed_queue

from common_pose import RESULTS, command_line, machine_info, markdown_table, write_json
from mien.service.app import create_app
from mien.service.config import ServiceConfig
from mien.service.keys import create_key

TARGET_MS = 150.0


@contextmanager
def _database(kind: str, admin_url: str | None) -> Iterator[str | None]:
    """A fresh database URL (None: SQLite in the data folder); dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    import psycopg

    assert admin_url
    name = f"mien_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rpartition("/")[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _times(fn: Callable[[int], Any], repeat: int) -> dict[str, float]:
    ms = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    p50 = statistics.median(ms)
    return {
        "p50_ms": round(p50, 1),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
        "ratio_to_target": round(p50 / TARGET_MS, 3),
    }


def run(kind: str, admin_url: str | None, items: int, repeat: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory() as tmp, _database(kind, admin_url) as url:
        cfg = ServiceConfig(data_dir=Path(tmp), db_url=url, workers=0)
        app = create_app(cfg)
        with TestClient(app) as client:
            store = app.state.mien.store
            key_id, key = create_key(store, "bench")
            t0 = time.perf_counter()
            seed_queue(store, key_id, items)
            seed_s = time.perf_counter() - t0
            with store.engine.begin() as c:
                c.execute(text("ANALYZE"))
            auth = {"X-API-Key": key}
            client.get("/v1/review/items", headers=auth)  # the key's first check (hashing)

            def get(**params: Any) -> dict[str, Any]:
                r = client.get("/v1/review/items", params=params, headers=auth)
                assert r.status_code == 200, r.text
                return dict(r.json())

            first = get(status="undecided")
            assert len(first["items"]) == 50 and first["counts"]["all"] == items
            undecided = [
                it["id"] for it in get(status="undecided", sort="oldest", limit=200)["items"]
            ]

            def decide(i: int) -> None:
                r = client.post(
                    f"/v1/review/items/{undecided[i]}/decision",
                    json={"decision": "approve" if i % 2 else "reject", "reviewer": "bench"},
                    headers=auth,
                )
                assert r.status_code == 200, r.text

            bulk_ids = [it["id"] for it in get(status="undecided", limit=200)["items"]]

            def bulk(i: int) -> None:
                ids = bulk_ids[i * 20 % 180 : i * 20 % 180 + 20]
                r = client.post(
                    "/v1/review/decisions",
                    json={"item_ids": ids, "decision": "reject", "reviewer": "bench"},
                    headers=auth,
                )
                assert r.status_code == 200 and len(r.json()["decided"]) == 20, r.text

            cursor = first["next_cursor"]
            timings = {
                "first page": _times(lambda _: get(status="undecided"), repeat),
                "severity page": _times(lambda _: get(status="undecided", sort="severity"), repeat),
                "next page": _times(lambda _: get(status="undecided", cursor=cursor), repeat),
                "filtered page": _times(lambda _: get(rule="mask", kind="segment"), repeat),
                "decision": _times(decide, min(repeat, len(undecided))),
                "bulk decision (20)": _times(bulk, repeat),
                "baseline: old page query": _times(
                    lambda _: store.flagged(key_ids=(key_id,), limit=500), repeat
                ),
            }
    return {"database": kind, "items": items, "seed_s": round(seed_s, 1), "timings": timings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--postgres", help="admin URL of a PostgreSQL server (else SQLite only)")
    ap.add_argument("--out", type=Path, default=RESULTS / "review.json")
    args = ap.parse_args()
    runs = [run("sqlite", None, args.items, args.repeat)]
    if args.postgres:
        runs.append(run("postgresql", args.postgres, args.items, args.repeat))
    report = {
        "command": command_line(),
        "machine": machine_info(("mien", "sqlalchemy", "psycopg", "fastapi")),
        "target_ms": TARGET_MS,
        "runs": runs,
    }
    write_json(args.out, report)
    header = ["request", *(f"{r['database']} p50 / p95 ms (ratio)" for r in runs)]
    rows = []
    for name in runs[0]["timings"]:
        cells = [name]
        for r in runs:
            t = r["timings"][name]
            cells.append(f"{t['p50_ms']} / {t['p95_ms']} ({t['ratio_to_target']})")
        rows.append(cells)
    md = (
        f"Review queue, {args.items} flagged items, {args.repeat} requests each; "
        f"ratio = p50 / {TARGET_MS:.0f} ms target.\n\n`{report['command']}`\n\n"
        + markdown_table(header, rows)
        + f"\n\nload average at the end: {report['machine'].get('load_average')}\n"
    )
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
