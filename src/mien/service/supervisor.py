"""Runs inside the server process: keeps the worker processes alive and purges expired media.

Workers are separate OS processes (``python -m mien.service.worker``), not background tasks of
the request loop, so a slow video never stalls the API and a crashed worker loses nothing: its
job is requeued once its lease has run out (see :mod:`mien.service.worker`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading

from mien.service.config import ServiceConfig
from mien.service.media import purge_expired, remove_orphans
from mien.service.store import Store
from mien.service.worker import CONFIG_ENV

log = logging.getLogger("mien.service")


class Supervisor:
    def __init__(self, config: ServiceConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * config.workers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fault: str | None = None

    def _config_json(self) -> str:
        raw = dataclasses.asdict(self.config)
        raw["data_dir"] = str(self.config.data_dir)
        return json.dumps(raw)

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "mien.service.worker", f"w{slot}", str(os.getpid())]
        # the settings (maybe a database password) go in the environment, not on the command
        # line that `ps` shows to every user
        env = {**os.environ, CONFIG_ENV: self._config_json()}
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)

    def start(self) -> None:
        self.config.media_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        requeued = self.store.recover_stale(self.config.job_lease_s)
        if requeued:
            log.info("requeued %d job(s) whose worker stopped", requeued)
        for slot in range(self.config.workers):
            self.procs[slot] = self._spawn(slot)
        self._thread = threading.Thread(target=self._loop, name="mien-supervisor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_purge = 0.0
        import time

        while not self._stop.wait(1.0):
            fault = self.store.fault()
            if fault:  # the database file is gone: no purge, no restarts; say why (once)
                if fault != self._fault:
                    log.error("%s", fault)
                self._fault = fault
                continue
            for slot, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self._stop.is_set():
                    log.warning("worker %d exited with %s; restarting it", slot, proc.returncode)
                    self.procs[slot] = self._spawn(slot)
            if time.monotonic() >= next_purge:
                try:
                    purge_expired(self.store, self.config.media_dir)
                    remove_orphans(self.store, self.config.media_dir)
                except Exception:
                    log.exception("retention purge failed")
                next_purge = time.monotonic() + self.config.purge_interval_s

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
