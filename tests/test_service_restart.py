"""A job survives a server restart: a real ``mien serve`` process (and its worker processes) is
killed with SIGKILL in the middle of a job, started again, and finishes the job without losing
or repeating a result. Against SQLite and against the real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from mien.service.config import ServiceConfig
from mien.service.store import Store

from .conftest import shared
from .service_fixtures import (
    Database,
    cli_key,
    database_fixture,
    free_port,
    spawn_server,
    store_args,
    wait_healthy,
)

database = database_fixture()


class Server:
    def __init__(self, tmp: Path, db: Database, port: int) -> None:
        self.args = [
            *store_args(tmp, db),
            "--port", str(port), "--workers", "1", "--job-lease", "3", "--threads", "1",
            "--log-level", "warning",
        ]  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn_server(self.args, self.log)
        wait_healthy(self.proc, self.base, self.log)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the server's whole process group (the server and its workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def test_a_running_job_survives_a_server_kill(database: Database, tmp_path: Path) -> None:
    folder = shared("dlib_examples_faces", "images")
    photos = sorted(folder.glob("*.jpg"))
    key = cli_key(store_args(tmp_path, database))
    auth = {"Authorization": f"Bearer {key}"}
    files = [
        ("files", (f"{rep}-{p.name}", p.read_bytes(), "image/jpeg"))
        for rep in range(2)
        for p in photos
    ]
    server = Server(tmp_path, database, free_port())
    server.start()
    try:
        r = httpx.post(f"{server.base}/v1/jobs", files=files, headers=auth, timeout=60)
        assert r.status_code == 202, r.text
        loc = server.base + r.headers["location"]
        deadline = time.monotonic() + 300
        while True:  # wait until the worker is in the middle of the job
            job = httpx.get(loc, headers=auth, timeout=10).json()
            if job["status"] == "running" and job["progress"]["done"] >= 1:
                break
            assert job["status"] in ("queued", "running"), job
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        server.kill(signal.SIGKILL)
        cfg = ServiceConfig(data_dir=tmp_path, db_url=database.url)
        store = Store.open(cfg.database_url, migrate_schema=False)
        stopped = store.get_job(job["id"])
        store.close()
        assert stopped is not None and stopped.status == "running"
        assert 1 <= stopped.done_items < len(files), "the job must be stopped half-way"

        server.start()  # the same data dir and database
        deadline = time.monotonic() + 600
        while True:
            job = httpx.get(loc, headers=auth, timeout=10).json()
            if job["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2 and job["progress"]["done"] == len(files)
        page = httpx.get(f"{loc}/results", params={"limit": 1000}, headers=auth, timeout=30)
        items = page.json()["items"]
        assert sorted(it["item"] for it in items) == list(range(len(files)))  # none lost or twice
        names = [it["result"]["source"] for it in items]
        assert sorted(names) == sorted(f[1][0] for f in files)
        assert all("faces" in it["result"] for it in items)
    finally:
        server.kill(signal.SIGTERM)


def test_sigterm_stops_cleanly_and_requeues(database: Database, tmp_path: Path) -> None:
    """A graceful stop hands the job back at once; the next start resumes it."""
    key = cli_key(store_args(tmp_path, database))
    auth = {"Authorization": f"Bearer {key}"}
    photos = sorted(shared("dlib_examples_faces", "images").glob("*.jpg"))
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    server = Server(tmp_path, database, free_port())
    server.start()
    try:
        r = httpx.post(f"{server.base}/v1/jobs", files=files, headers=auth, timeout=60)
        loc = server.base + r.headers["location"]
        deadline = time.monotonic() + 300
        while (job := httpx.get(loc, headers=auth, timeout=10).json())["progress"]["done"] < 1:
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.05)
        server.kill(signal.SIGTERM)
        # uvicorn shuts down (lifespan: workers hand their job back), then re-raises the signal
        assert server.proc is not None, server.log.read_text()
        assert server.proc.returncode in (0, -signal.SIGTERM), server.log.read_text()
        cfg = ServiceConfig(data_dir=tmp_path, db_url=database.url)
        store = Store.open(cfg.database_url, migrate_schema=False)
        job = store.get_job(r.json()["id"])
        store.close()
        assert job is not None and job.status in ("queued", "succeeded"), job
        server.start()
        deadline = time.monotonic() + 600
        while (job := httpx.get(loc, headers=auth, timeout=10).json())["status"] != "succeeded":
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.3)
        items = httpx.get(f"{loc}/results", headers=auth, timeout=30).json()["items"]
        assert sorted(it["item"] for it in items) == list(range(len(files)))
    finally:
        server.kill(signal.SIGTERM)
