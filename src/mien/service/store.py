"""The service store: one SQLAlchemy engine on SQLite (default) or PostgreSQL, Alembic-migrated.

Every state change of a job goes through this module, so the claim of a job by a worker is one
atomic statement on both databases: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, a single
``UPDATE ... WHERE id = (SELECT ...)`` on SQLite (whose writers are serialised).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)

from mien.service import queue
from mien.service.reviewer_store import ReviewerStore
from mien.service.rows import (
    Actor,
    DecisionRow,
    JobItemRow,
    JobRow,
    ResultRow,
    ReviewRow,
    Row,
    SessionRow,
)
from mien.service.schema import (
    api_keys,
    job_items,
    jobs,
    results,
    review_decisions,
    review_sessions,
    reviewers,
)

_RowT = TypeVar("_RowT", bound=Row)
ACTIVE = ("queued", "running")
#: The largest id a request may name (SQLite's INTEGER); PostgreSQL's ``integer`` ids end at
#: 2**31 - 1, so larger ones are simply not found there.
MAX_ID = 2**63 - 1
_PG_MAX_ID = 2**31 - 1
FINAL = ("succeeded", "failed", "cancelled")
#: The decisions an item's history holds; "cleared" is the undo (the item is undecided again).
DECISIONS = ("approved", "rejected", "cleared")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest migration, or to ``revision`` (creates it on an empty
    database)."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("mien.service") / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempts: int


class StoreFault(Exception):
    """The store cannot be trusted any more (its file was deleted or replaced)."""


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class Store(ReviewerStore):
    """Data access for keys, jobs, items, results, review decisions and reviewer accounts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        #: The SQLite file, and its device and inode when the store was opened: a file deleted
        #: or replaced under the running server is detected by comparing them (:meth:`fault`).
        self.sqlite_path = (
            Path(database).absolute() if database and database != ":memory:" else None
        )
        self._identity = _identity(self.sqlite_path) if self.sqlite_path else None
        if self.sqlite_path is not None:
            event.listen(engine, "connect", self._refuse_other_file)

    def _refuse_other_file(self, _dbapi_conn: Any, _record: Any) -> None:
        """Never open a new connection to a file other than the one the store was opened on."""
        if self._identity is None and self.sqlite_path is not None:
            self._identity = _identity(self.sqlite_path)
        reason = self.fault()
        if reason:
            raise StoreFault(reason)

    def fault(self) -> str | None:
        """Why the store cannot be trusted, or ``None``: the SQLite file the server opened is
        gone or is another file now (writes would go to a deleted file and be lost)."""
        if self.sqlite_path is None or self._identity is None:
            return None
        now = _identity(self.sqlite_path)
        if now is None:
            return (
                f"the database file {self.sqlite_path.name} was deleted while the server ran; "
                "nothing more is accepted (restore it and restart the server)"
            )
        if now != self._identity:
            return (
                f"the database file {self.sqlite_path.name} was replaced while the server ran; "
                "nothing more is accepted (restart the server to use the new file)"
            )
        return None

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        engine = make_engine(url)
        if migrate_schema:
            migrate(engine)
        return cls(engine)

    def probe(self) -> None:
        """Write to the store and read it back (the readiness check); raises when it cannot.

        The write changes nothing (the schema version is set to itself) but goes through the
        database's write path: a lock, the journal or WAL, the commit.
        """
        reason = self.fault()
        if reason:
            raise StoreFault(reason)
        with self.engine.begin() as c:
            c.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
            version = c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        if not version:
            raise StoreFault("the store has no schema version")

    def close(self) -> None:
        self.engine.dispose()

    # -- keys ------------------------------------------------------------------------------

    def add_key(self, key_id: str, name: str, secret_hash: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                insert(api_keys).values(
                    id=key_id, name=name, secret_hash=secret_hash, created_at=time.time()
                )
            )

    def get_key(self, key_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        return dict(row) if row else None

    def list_keys(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self.engine.begin() as c:
            res = c.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return bool(res.rowcount)

    # -- jobs ------------------------------------------------------------------------------

    def find_idempotent(self, key_id: str, idempotency_key: str) -> JobRow | None:
        with self.engine.connect() as c:
            row = (
                c.execute(
                    select(jobs).where(
                        jobs.c.key_id == key_id, jobs.c.idempotency_key == idempotency_key
                    )
                )
                .mappings()
                .first()
            )
        return JobRow.of(row) if row else None

    def active_jobs(self, key_id: str) -> int:
        with self.engine.connect() as c:
            n = c.execute(
                select(func.count())
                .select_from(jobs)
                .where(jobs.c.key_id == key_id, jobs.c.status.in_(ACTIVE))
            ).scalar_one()
        return int(n)

    def create_job(
        self,
        *,
        job_id: str,
        key_id: str,
        kind: str,
        params: dict[str, Any],
        items: Sequence[tuple[str, str | None]],
        retention_s: int,
        request_hash: str,
        idempotency_key: str | None,
        max_active: int | None = None,
        callback_url: str | None = None,
    ) -> int | None:
        """Insert a queued job and its items (``callback_url``: where its webhooks go).

        With ``max_active``, the count of the key's queued and running jobs and the insert are
        one transaction that no other job creation of the key can interleave with (SQLite:
        ``BEGIN IMMEDIATE`` takes the write lock before the count; PostgreSQL: the key's row is
        locked ``FOR UPDATE``), so concurrent requests never exceed the limit. Returns ``None``
        when the job was inserted, else the number of active jobs that refused it.
        """
        now = time.time()
        with self.engine.connect() as c:
            if not self.is_postgres:
                c.exec_driver_sql("BEGIN IMMEDIATE")
            if max_active is not None:
                if self.is_postgres:
                    c.execute(
                        select(api_keys.c.id).where(api_keys.c.id == key_id).with_for_update()
                    )
                active = int(
                    c.execute(
                        select(func.count())
                        .select_from(jobs)
                        .where(jobs.c.key_id == key_id, jobs.c.status.in_(ACTIVE))
                    ).scalar_one()
                )
                if active >= max_active:
                    c.rollback()
                    return active
            c.execute(
                insert(jobs).values(
                    id=job_id,
                    key_id=key_id,
                    kind=kind,
                    status="queued",
                    params=json.dumps(params),
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                    total_items=len(items),
                    done_items=0,
                    failed_items=0,
                    created_at=now,
                    attempts=0,
                    retention_s=retention_s,
                    media_purged=False,
                    callback_url=callback_url,
                )
            )
            c.execute(
                insert(job_items),
                [
                    {"job_id": job_id, "idx": i, "name": n, "media_file": f, "status": "pending"}
                    for i, (n, f) in enumerate(items)
                ],
            )
            c.commit()
        return None

    def get_job(self, job_id: str, key_id: str | None = None) -> JobRow | None:
        q = select(jobs).where(jobs.c.id == job_id)
        if key_id is not None:
            q = q.where(jobs.c.key_id == key_id)
        with self.engine.connect() as c:
            row = c.execute(q).mappings().first()
        return JobRow.of(row) if row else None

    def result_count(self, job_id: str) -> int:
        with self.engine.connect() as c:
            n = c.execute(
                select(func.count()).select_from(results).where(results.c.job_id == job_id)
            ).scalar_one()
        return int(n)

    def job_items(self, job_id: str) -> list[JobItemRow]:
        with self.engine.connect() as c:
            rows = (
                c.execute(
                    select(job_items).where(job_items.c.job_id == job_id).order_by(job_items.c.idx)
                )
                .mappings()
                .all()
            )
        return [JobItemRow.of(r) for r in rows]

    def claim(self, worker: str, lease_s: float) -> Claim | None:
        """Take the oldest queued job, or a running one whose worker stopped sending heartbeats."""
        now = time.time()
        claimable = or_(
            jobs.c.status == "queued",
            and_(jobs.c.status == "running", jobs.c.heartbeat_at < now - lease_s),
        )
        values = {
            "status": "running",
            "worker": worker,
            "heartbeat_at": now,
            "started_at": func.coalesce(jobs.c.started_at, now),
            "attempts": jobs.c.attempts + 1,
        }
        with self.engine.begin() as c:
            if self.is_postgres:
                job_id = c.execute(
                    select(jobs.c.id)
                    .where(claimable)
                    .order_by(jobs.c.created_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).scalar()
                if job_id is None:
                    return None
                c.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
            else:
                sub = (
                    select(jobs.c.id)
                    .where(claimable)
                    .order_by(jobs.c.created_at)
                    .limit(1)
                    .scalar_subquery()
                )
                job_id = c.execute(
                    update(jobs)
                    .where(jobs.c.id == sub, claimable)
                    .values(**values)
                    .returning(jobs.c.id)
                ).scalar()
                if job_id is None:
                    return None
            attempts = c.execute(select(jobs.c.attempts).where(jobs.c.id == job_id)).scalar_one()
        return Claim(str(job_id), int(attempts))

    def heartbeat(self, job_id: str, worker: str) -> bool:
        """Refresh the lease; False when the job is no longer this worker's running job."""
        with self.engine.begin() as c:
            res = c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == "running")
                .values(heartbeat_at=time.time())
            )
        return bool(res.rowcount)

    def is_running_for(self, job_id: str, worker: str) -> bool:
        with self.engine.connect() as c:
            row = c.execute(select(jobs.c.status, jobs.c.worker).where(jobs.c.id == job_id)).first()
        return row is not None and row[0] == "running" and row[1] == worker

    def reset_item(self, job_id: str, idx: int) -> None:
        """Forget partial results of an item whose analysis was interrupted."""
        with self.engine.begin() as c:
            c.execute(results.delete().where(results.c.job_id == job_id, results.c.item_idx == idx))

    def add_results(self, job_id: str, idx: int, rows: Sequence[dict[str, Any]]) -> None:
        now = time.time()
        if not rows:
            return
        with self.engine.begin() as c:
            c.execute(
                insert(results),
                [
                    {
                        "job_id": job_id,
                        "item_idx": idx,
                        "seq": r["seq"],
                        "kind": r["kind"],
                        "data": json.dumps(r["data"], allow_nan=False),
                        "flags": json.dumps(r.get("flags", [])),
                        "flagged": bool(r.get("flagged", r.get("flags"))),
                        "severity": queue.severity_of(r.get("flags", [])),
                        "created_at": now,
                    }
                    for r in rows
                ],
            )

    def finish_item(
        self,
        job_id: str,
        idx: int,
        worker: str,
        *,
        error: tuple[str, str] | None = None,
        media_deleted: bool = False,
    ) -> bool:
        """Mark an item done (or failed) and count it; False when the job was taken away."""
        with self.engine.begin() as c:
            owned = c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == "running")
                .values(
                    done_items=jobs.c.done_items + 1,
                    failed_items=jobs.c.failed_items + (1 if error else 0),
                    heartbeat_at=time.time(),
                )
            ).rowcount
            if not owned:
                return False
            values: dict[str, Any] = {"status": "failed" if error else "done"}
            if error:
                values.update(error_code=error[0], error_message=error[1])
            if media_deleted:
                values["media_file"] = None
            c.execute(
                update(job_items)
                .where(job_items.c.job_id == job_id, job_items.c.idx == idx)
                .values(**values)
            )
        return True

    def finish_job(
        self, job_id: str, worker: str, status: str, error: tuple[str, str] | None = None
    ) -> bool:
        now = time.time()
        with self.engine.begin() as c:
            job = c.execute(select(jobs.c.retention_s).where(jobs.c.id == job_id)).first()
            if job is None:
                return False
            res = c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == "running")
                .values(
                    status=status,
                    finished_at=now,
                    expires_at=now + int(job[0]),
                    error_code=error[0] if error else None,
                    error_message=error[1] if error else None,
                )
            )
        return bool(res.rowcount)

    def fail_exhausted(self, job_id: str, worker: str, max_attempts: int) -> bool:
        """Mark a job failed when it has been interrupted ``max_attempts`` times."""
        return self.finish_job(
            job_id,
            worker,
            "failed",
            (
                "JobInterrupted",
                f"the job was interrupted {max_attempts} times (worker crash or restart) and "
                "was given up",
            ),
        )

    def cancel(self, job_id: str) -> None:
        now = time.time()
        with self.engine.begin() as c:
            c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status.in_(ACTIVE))
                .values(status="cancelled", finished_at=now)
            )
            c.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(media_purged=True, expires_at=func.coalesce(jobs.c.expires_at, now))
            )
            c.execute(update(job_items).where(job_items.c.job_id == job_id).values(media_file=None))

    def release(self, job_id: str, worker: str) -> None:
        """Put a job this worker holds back in the queue (graceful shutdown; not an attempt)."""
        with self.engine.begin() as c:
            c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == "running")
                .values(**_release_values())
            )

    def recover_stale(self, lease_s: float) -> int:
        """Requeue running jobs whose worker died (no heartbeat within the lease)."""
        with self.engine.begin() as c:
            res = c.execute(
                update(jobs)
                .where(jobs.c.status == "running", jobs.c.heartbeat_at < time.time() - lease_s)
                .values(status="queued", worker=None)
            )
        return int(res.rowcount)

    # -- retention -------------------------------------------------------------------------

    def expired_jobs(self, now: float) -> list[str]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(jobs.c.id).where(
                    jobs.c.media_purged.is_(False),
                    jobs.c.status.in_(FINAL),
                    jobs.c.expires_at <= now,
                )
            ).all()
        return [str(r[0]) for r in rows]

    def existing_jobs(self, job_ids: Sequence[str]) -> set[str]:
        """Those of ``job_ids`` that have a job row."""
        found: set[str] = set()
        with self.engine.connect() as c:
            for i in range(0, len(job_ids), 500):
                chunk = list(job_ids[i : i + 500])
                found.update(
                    str(r[0]) for r in c.execute(select(jobs.c.id).where(jobs.c.id.in_(chunk)))
                )
        return found

    def mark_purged(self, job_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(jobs).where(jobs.c.id == job_id).values(media_purged=True))
            c.execute(update(job_items).where(job_items.c.job_id == job_id).values(media_file=None))

    # -- results and review ----------------------------------------------------------------

    def _max_id(self) -> int:
        return _PG_MAX_ID if self.is_postgres else MAX_ID

    def results_page(
        self, job_id: str, after: int, limit: int
    ) -> tuple[list[ResultRow], int | None]:
        """Results of job ``job_id`` after id ``after``, oldest first, and the id the next page
        starts after (None: this is the last page)."""
        return self.job_rows_page(results, ResultRow, job_id, after, limit)

    def job_rows_page(
        self, table: Table, row_type: type[_RowT], job_id: str, after: int, limit: int
    ) -> tuple[list[_RowT], int | None]:
        """Keyset paging over a table with an integer ``id`` and a ``job_id`` column (results,
        webhook deliveries): rows of ``job_id`` after id ``after``, oldest first, and the id the
        next page starts after (None: this is the last page)."""
        if after >= self._max_id():
            return [], None
        with self.engine.connect() as c:
            rows = (
                c.execute(
                    select(table)
                    .where(table.c.job_id == job_id, table.c.id > after)
                    .order_by(table.c.id)
                    .limit(limit + 1)
                )
                .mappings()
                .all()
            )
        page = [row_type.of(r) for r in rows[:limit]]
        return page, (int(rows[limit - 1]["id"]) if len(rows) > limit else None)

    @staticmethod
    def _reviewable(key_ids: Sequence[str]) -> Any:
        """Results of the jobs of the API keys ``key_ids`` (the tenants a caller sees), with
        their item's name and media file and the job's media state."""
        return (
            select(results, jobs.c.media_purged, job_items.c.name, job_items.c.media_file)
            .join(jobs, jobs.c.id == results.c.job_id)
            .join(
                job_items,
                and_(job_items.c.job_id == results.c.job_id, job_items.c.idx == results.c.item_idx),
            )
            .where(jobs.c.key_id.in_(list(key_ids)))
        )

    def flagged(
        self, *, key_ids: Sequence[str], limit: int = 200, undecided_only: bool = False
    ) -> list[ReviewRow]:
        """Flagged results of the jobs of the API keys ``key_ids``."""
        q = self._reviewable(key_ids).where(results.c.flagged.is_(True))
        if undecided_only:
            q = q.where(results.c.decision.is_(None))
        with self.engine.connect() as c:
            rows = c.execute(q.order_by(results.c.id).limit(limit)).mappings().all()
        return [ReviewRow.of(r) for r in rows]

    def flagged_after(
        self, *, key_ids: Sequence[str], after: int, limit: int = 100
    ) -> list[ReviewRow]:
        """Flagged results of the jobs of ``key_ids`` with an id above ``after``, oldest first
        (the live review events)."""
        if after >= self._max_id():
            return []
        q = self._reviewable(key_ids).where(results.c.flagged.is_(True), results.c.id > after)
        with self.engine.connect() as c:
            found = c.execute(q.order_by(results.c.id).limit(limit)).mappings().all()
        return [ReviewRow.of(r) for r in found]

    def last_result_id(self) -> int:
        """The highest result id so far (0 without any)."""
        with self.engine.connect() as c:
            return int(c.execute(select(func.max(results.c.id))).scalar() or 0)

    def result_with_media(self, result_id: int, *, key_ids: Sequence[str]) -> ReviewRow | None:
        """One result with its job's media state, when it belongs to a job of ``key_ids``."""
        if not 0 < result_id <= self._max_id():
            return None
        q = self._reviewable(key_ids).where(results.c.id == result_id)
        with self.engine.connect() as c:
            row = c.execute(q).mappings().first()
        return ReviewRow.of(row) if row else None

    def append_decision(
        self, result_id: int, decision: str, actor: Actor, *, key_ids: Sequence[str]
    ) -> bool:
        """Append ``actor``'s decision to a flagged item of the tenants ``key_ids`` and make it
        the item's latest (one transaction); False when there is no such item."""
        return bool(self.append_decisions([result_id], decision, actor, key_ids=key_ids))

    def append_decisions(
        self, result_ids: Sequence[int], decision: str, actor: Actor, *, key_ids: Sequence[str]
    ) -> list[int]:
        """:meth:`append_decision` for several items in one transaction; returns the ids that
        were found (flagged items of ``key_ids``) and decided, in the order given."""
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        wanted = list(dict.fromkeys(r for r in result_ids if 0 < r <= self._max_id()))
        if not wanted or not key_ids:
            return []
        now = time.time()
        entry = {"decision": decision, **actor.columns(), "at": now}
        with self.engine.connect() as c:
            if not self.is_postgres:
                c.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before the reads
            q = (
                select(results.c.id)
                .join(jobs, jobs.c.id == results.c.job_id)
                .where(
                    results.c.id.in_(wanted),
                    results.c.flagged.is_(True),
                    jobs.c.key_id.in_(list(key_ids)),
                )
            )
            if self.is_postgres:
                q = q.with_for_update(of=results)  # concurrent deciders wait for each other
            found = {int(r[0]) for r in c.execute(q)}
            done = [r for r in wanted if r in found]
            if done:
                c.execute(insert(review_decisions), [{"result_id": r, **entry} for r in done])
                c.execute(_MIRROR, _mirrors(c, done, entry))  # one executemany
            c.commit()
        return done

    def history(self, result_id: int, *, key_ids: Sequence[str]) -> list[DecisionRow] | None:
        """Every decision on a flagged item of ``key_ids``, oldest first; None: no such item."""
        if self.result_with_media(result_id, key_ids=key_ids) is None:
            return None
        q = (
            select(review_decisions)
            .where(review_decisions.c.result_id == result_id)
            .order_by(review_decisions.c.id)
        )
        with self.engine.connect() as c:
            return [DecisionRow.of(r) for r in c.execute(q).mappings()]

    def decisions(self, *, key_ids: Sequence[str]) -> Iterator[ReviewRow]:
        """Flagged results of the jobs of ``key_ids`` with their decisions (for the export)."""
        q = self._reviewable(key_ids).where(results.c.flagged.is_(True)).order_by(results.c.id)
        with self.engine.connect() as c:
            for r in c.execute(q).mappings():
                yield ReviewRow.of(r)

    def review_page(
        self,
        *,
        key_ids: Sequence[str],
        status: str = "undecided",
        rule: str | None = None,
        profile: str | None = None,
        job_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        kind: str | None = None,
        sort: str = "newest",
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ReviewRow], str | None]:
        """One page of the review queue of the tenants ``key_ids`` and the cursor of the next
        (None on the last page). See :mod:`mien.service.queue` for the filters, the sorts and the
        cursor (a bad one raises :class:`~mien.service.queue.BadCursor`)."""
        if status not in queue.STATUSES or sort not in queue.SORTS:
            raise ValueError(f"unknown status {status!r} or sort {sort!r}")
        limit = max(1, min(int(limit), queue.MAX_LIMIT))
        f = queue.as_filter(
            key_ids, rule=rule, profile=profile, job_id=job_id, since=since, until=until, kind=kind
        )
        # the page's ids first (a narrow sort on an index), then their rows
        ids = (
            select(results.c.id, queue.sort_column(sort))
            .select_from(results.join(jobs, jobs.c.id == results.c.job_id))
            .where(*queue.conditions(f), queue.status_condition(status))
        )
        if cursor is not None:
            ids = ids.where(queue.after(sort, *queue.decode_cursor(cursor, sort)))
        if not f.key_ids:
            return [], None
        with self.engine.connect() as c:
            keys = c.execute(ids.order_by(*queue.order(sort)).limit(limit + 1)).all()
            wanted = [int(k[0]) for k in keys[:limit]]
            rows = c.execute(self._reviewable(f.key_ids).where(results.c.id.in_(wanted)))
            by_id = {int(r["id"]): ReviewRow.of(r) for r in rows.mappings()}
        page = [by_id[i] for i in wanted if i in by_id]
        if len(keys) <= limit:
            return page, None
        last = keys[limit - 1]
        return page, queue.encode_cursor(sort, int(last[1]), int(last[0]))

    def review_counts(
        self,
        *,
        key_ids: Sequence[str],
        rule: str | None = None,
        profile: str | None = None,
        job_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        kind: str | None = None,
    ) -> dict[str, int]:
        """How many flagged items of ``key_ids`` match the filters, by status:
        ``{"undecided", "approved", "rejected", "all"}``."""
        counts = {"undecided": 0, "approved": 0, "rejected": 0, "all": 0}
        f = queue.as_filter(
            key_ids, rule=rule, profile=profile, job_id=job_id, since=since, until=until, kind=kind
        )
        if not f.key_ids:
            return counts
        q = (
            select(results.c.decision, func.count())
            .select_from(results.join(jobs, jobs.c.id == results.c.job_id))
            .where(*queue.conditions(f))
            .group_by(results.c.decision)
        )
        with self.engine.connect() as c:
            for decision, n in c.execute(q).all():
                counts[decision or "undecided"] = counts.get(decision or "undecided", 0) + int(n)
        counts["all"] = sum(n for k, n in counts.items() if k != "all")
        return counts

    def histories(self, *, key_ids: Sequence[str]) -> dict[int, list[DecisionRow]]:
        """The decision history of every item of ``key_ids`` that has one (for the export)."""
        q = (
            select(review_decisions)
            .join(results, results.c.id == review_decisions.c.result_id)
            .join(jobs, jobs.c.id == results.c.job_id)
            .where(jobs.c.key_id.in_(list(key_ids)))
            .order_by(review_decisions.c.result_id, review_decisions.c.id)
        )
        out: dict[int, list[DecisionRow]] = {}
        with self.engine.connect() as c:
            for r in c.execute(q).mappings():
                out.setdefault(int(r["result_id"]), []).append(DecisionRow.of(r))
        return out

    # -- review-page sessions --------------------------------------------------------------

    def create_session(
        self, id_hash: str, *, reviewer_id: int, reviewer: str, csrf_token: str, ttl_s: float
    ) -> None:
        """Store a new session of a reviewer account (and drop every expired session)."""
        now = time.time()
        with self.engine.begin() as c:
            c.execute(review_sessions.delete().where(review_sessions.c.expires_at <= now))
            c.execute(
                insert(review_sessions).values(
                    id_hash=id_hash,
                    reviewer_id=reviewer_id,
                    reviewer=reviewer,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=now + ttl_s,
                )
            )

    def get_session(self, id_hash: str) -> SessionRow | None:
        """A session that has not expired and whose reviewer account is enabled, else None."""
        q = (
            select(review_sessions, reviewers.c.role)
            .join(reviewers, reviewers.c.id == review_sessions.c.reviewer_id)
            .where(
                review_sessions.c.id_hash == id_hash,
                review_sessions.c.expires_at > time.time(),
                reviewers.c.disabled_at.is_(None),
            )
        )
        with self.engine.connect() as c:
            row = c.execute(q).mappings().first()
        return SessionRow.of(row) if row else None

    def delete_session(self, id_hash: str) -> bool:
        with self.engine.begin() as c:
            res = c.execute(review_sessions.delete().where(review_sessions.c.id_hash == id_hash))
        return bool(res.rowcount)


def _actor(row: Any) -> tuple[Any, ...]:
    """Who made a decision: an account, or an API key with the name it stated."""
    if row.actor_kind == "reviewer" and row.reviewer_id is not None:
        return ("reviewer", row.reviewer_id)
    return (row.actor_kind, row.key_id, row.reviewer_name)


#: The ``results`` columns that mirror an item's history (see :func:`_mirrors`).
_MIRROR = (
    update(results)
    .where(results.c.id == bindparam("rid"))
    .values(
        decision=bindparam("decision"),
        reviewer=bindparam("reviewer"),
        reviewer_key=bindparam("reviewer_key"),
        decided_at=bindparam("decided_at"),
        decision_count=bindparam("decision_count"),
        disagreement=bindparam("disagreement"),
    )
)


def _mirrors(c: Any, result_ids: list[int], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """For each item, the ``results`` columns that mirror its history after ``entry`` was
    appended: the latest decision (none after "cleared"), the number of entries, and whether
    the actors' latest approve/reject decisions disagree (an actor's own "cleared" withdraws
    theirs). One query for all the items."""
    rows = c.execute(
        select(
            review_decisions.c.result_id,
            review_decisions.c.decision,
            review_decisions.c.actor_kind,
            review_decisions.c.reviewer_id,
            review_decisions.c.reviewer_name,
            review_decisions.c.key_id,
        )
        .where(review_decisions.c.result_id.in_(result_ids))
        .order_by(review_decisions.c.result_id, review_decisions.c.id)
    ).all()
    latest: dict[int, dict[tuple[Any, ...], str]] = {}
    count: dict[int, int] = {}
    for r in rows:
        rid = int(r.result_id)
        latest.setdefault(rid, {})[_actor(r)] = r.decision
        count[rid] = count.get(rid, 0) + 1
    cleared = entry["decision"] == "cleared"
    return [
        {
            "rid": rid,
            "decision": None if cleared else entry["decision"],
            "reviewer": None if cleared else entry["reviewer_name"],
            "reviewer_key": None if cleared else entry["key_id"],
            "decided_at": None if cleared else entry["at"],
            "decision_count": count.get(rid, 0),
            "disagreement": {"approved", "rejected"} <= set(latest.get(rid, {}).values()),
        }
        for rid in result_ids
    ]


def new_id() -> str:
    return uuid.uuid4().hex


def _release_values() -> dict[str, Any]:
    return {"status": "queued", "worker": None, "attempts": jobs.c.attempts - 1}
