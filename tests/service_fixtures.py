"""Fixtures of the service tests: a store on SQLite or on the real PostgreSQL, a running app.

PostgreSQL comes from ``MIEN_TEST_POSTGRES_URL`` (``.ci/run`` starts one and sets it); each
fixture gets a fresh database that is dropped afterwards. Without the variable, the PostgreSQL
half of the suite skips with a message saying so.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service tests need the 'service' extra")

from fastapi.testclient import TestClient

from mien.service.app import create_app
from mien.service.config import ServiceConfig
from mien.service.keys import create_key

PG_ENV = "MIEN_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


def _admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need {PG_ENV}=postgresql://user@host:port/db (.ci/run starts a "
            "server and sets it); it is not set here"
        )
    return url


@dataclass
class Database:
    backend: str
    url: str | None  # None: the default SQLite file in the data dir
    drop: Callable[[], None]


def make_database(backend: str) -> Database:
    """A fresh, empty database of ``backend``."""
    if backend == "sqlite":
        return Database("sqlite", None, lambda: None)
    import psycopg

    admin = _admin_url()
    name = f"mien_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    url = f"{base}/{name}"

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return Database("postgresql", url, drop)


def database_fixture() -> Any:
    """A fixture factory: a fresh empty database per test, on each backend."""

    @pytest.fixture(params=BACKENDS)
    def _database(request: pytest.FixtureRequest) -> Iterator[Database]:
        db = make_database(request.param)
        yield db
        db.drop()

    return _database


@dataclass
class Service:
    """A running app (lifespan entered) with one API key."""

    client: TestClient
    config: ServiceConfig
    app: Any
    key: str
    key_id: str
    backend: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def new_key(self, name: str = "") -> tuple[str, str]:
        return create_key(self.app.state.mien.store, name)

    def wait_job(self, location: str, timeout: float = 240.0, until: tuple[str, ...] = ()) -> Any:
        """Poll a job until it is final (or in one of ``until``); fails after ``timeout``."""
        final = until or ("succeeded", "failed", "cancelled")
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(location, headers=self.auth).json()
            if job["status"] in final:
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"job {location} did not finish in {timeout} s: {job}")
            time.sleep(0.2)


def start_service(tmp: Path, backend: str, db_url: str | None, **config: Any) -> Iterator[Service]:
    values: dict[str, Any] = {
        "data_dir": tmp,
        "db_url": db_url,
        "workers": 1,
        "poll_s": 0.2,
        "heartbeat_s": 0.5,
        "job_lease_s": 3.0,
        "purge_interval_s": 0.5,
        "num_threads": 1,
    }
    values.update(config)
    cfg = ServiceConfig(**values)
    app = create_app(cfg)
    with TestClient(app) as client:
        key_id, key = create_key(app.state.mien.store, "tests")
        yield Service(client, cfg, app, key, key_id, backend)


def service_fixture(scope: str = "module", **config: Any) -> Any:
    """A fixture factory: one app per backend (SQLite, PostgreSQL) for the module."""

    @pytest.fixture(scope=scope, params=BACKENDS)  # type: ignore[call-overload]
    def _service(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Service]:
        db = make_database(request.param)
        try:
            tmp = tmp_path_factory.mktemp(f"svc-{request.param}")
            yield from start_service(tmp, request.param, db.url, **config)
        finally:
            db.drop()

    return _service


# -- answers and browsers ---------------------------------------------------------------------

PROBLEM = "application/problem+json"


def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The problem+json body of ``resp``, checked to have ``status`` and ``code``."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    return body


def browser(svc: Service, base_url: str = "http://testserver") -> TestClient:
    """A new client on the running app with an empty cookie jar (lifespan already entered)."""
    return TestClient(svc.app, base_url=base_url, follow_redirects=False)


def csrf_of(page: str) -> str:
    """The one CSRF token the forms of an HTML page carry."""
    tokens = set(re.findall(r'name="csrf_token" value="([^"]+)"', page))
    assert len(tokens) == 1, tokens
    return tokens.pop()


# -- a real `mien serve` process (tests that kill, restart or flood a server) -----------------


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_args(tmp: Path, db: Database) -> list[str]:
    """``--data-dir`` (and ``--db`` on PostgreSQL) for ``mien serve`` / ``mien keys``."""
    return ["--data-dir", str(tmp), *(["--db", db.url] if db.url else [])]


def cli_key(store: Sequence[str]) -> str:
    """A new API key, made by ``mien keys create`` on the store that ``store`` names."""
    made = subprocess.run(
        [sys.executable, "-m", "mien", "keys", "create", *store],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return made.stdout.strip()


def spawn_server(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m mien serve ARGS`` in its own process group, its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mien", "serve", *args],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path, timeout: float = 120) -> None:
    """Wait until the server at ``base`` answers ``/health`` with 200; fail the test with its
    log when it exits or does not come up within ``timeout`` seconds."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"the server did not start: {log.read_text()}")


def flagged_items(svc: Service, key_id: str, n: int = 1) -> list[int]:
    """``n`` flagged results of a new job of ``key_id``, straight in the store."""
    store = svc.app.state.mien.store
    job_id = f"{time.time_ns():032x}"[-32:]
    store.create_job(
        job_id=job_id,
        key_id=key_id,
        kind="images",
        params={"features": ["detection"]},
        items=[(f"photo-{i}.jpg", None) for i in range(n)],
        retention_s=60,
        request_hash="h",
        idempotency_key=None,
    )
    flag = {"rule": "one-face", "message": "exactly one face is required", "severity": "error"}
    for i in range(n):
        store.add_results(
            job_id, i, [{"seq": 0, "kind": "image", "data": {"faces": []}, "flags": [flag]}]
        )
    rows = [r for r in store.flagged(key_ids=[key_id], limit=10_000) if r.job_id == job_id]
    return [int(r.id) for r in rows]
