"""Synchronous analyses (``/v1/faces:analyze``, ``/v1/redact``) with a bounded cost each.

* **Slots.** Each of the ``slots`` analyses that may run at once runs in a process of its own
  (:mod:`mien.service.slot_worker`), started when first needed; it loads the default models
  (and runs them once) before it takes a request, and that start is not counted in any
  request's time budget. The server itself never decodes a picture, so its memory does not
  grow with the pictures it is sent (it only parses headers,
  :func:`mien.media.image.probe_image`, and holds the bodies of the requests in slots).
* **Stopping work.** While a picture is analysed the server watches the client's connection and
  the clock. When the client disconnects, or the request's time budget (``request_time_s``) runs
  out, the slot's process is killed at once (SIGKILL: whatever it was doing stops, its memory
  goes back to the system) and a fresh one is started for the next request.
* **Backpressure.** At most ``slots + queue_limit`` requests are admitted at a time (running or
  waiting for a slot, in arrival order); one more is answered ``503 Overloaded`` with a
  ``Retry-After`` header at once, before its body is read. A waiting request whose client
  disconnects leaves the queue.

All of this runs on the event loop (one thread), so the counters need no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mien.service.problem import Problem

_POLL_S = 0.1  # how often a waiting or running request checks its client's connection
_START_S = 300.0  # most time a slot process may take to start and load its default models


class _Slot:
    """One analysis process (or none yet) and the server's end of its socket pair."""

    def __init__(self, index: int, num_threads: int, max_pixels: int, device: str) -> None:
        self.index = index
        self.num_threads = num_threads
        self.device = device
        self.max_pixels = max_pixels
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.ready = False  # its ("ready", pid) message has been read

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        self.kill()
        ours, theirs = socket.socketpair()
        try:
            fd = theirs.fileno()
            cmd = [
                sys.executable, "-m", "mien.service.slot_worker",
                str(fd), str(self.num_threads), str(self.max_pixels), self.device,
            ]  # fmt: skip
            self.proc = subprocess.Popen(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.ready = False

    def kill(self) -> None:
        """Stop the process now (it holds no state worth keeping) and reap it."""
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
            self.conn = None
        self.ready = False
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
            self.proc = None


class SlotPool:
    """The analysis slots of one server, their wait queue and the time budget of a request."""

    def __init__(
        self,
        slots: int,
        queue_limit: int,
        time_budget_s: float,
        *,
        num_threads: int = 0,
        max_pixels: int = 40_000_000,
        device: str = "cpu",
    ) -> None:
        self.size = max(1, slots)
        self.queue_limit = max(0, queue_limit)
        self.time_budget_s = time_budget_s
        self._slots = [_Slot(i, num_threads, max_pixels, device) for i in range(self.size)]
        self._idle: asyncio.Queue[_Slot] | None = None
        self.admitted = 0  # requests admitted and not finished (running + waiting)
        self.stats: Counter[str] = Counter()
        self._mean_s = 1.0  # moving mean of a request's time in a slot, for Retry-After

    # -- admission ------------------------------------------------------------------------------

    def retry_after(self) -> int:
        """Seconds until a slot is likely free for one more request (1..120)."""
        waiting = max(0, self.admitted - self.size)
        return max(1, min(120, math.ceil(self._mean_s * (waiting + 1) / self.size)))

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Hold a place among the ``slots + queue_limit`` admitted requests, or answer 503."""
        if self.admitted >= self.size + self.queue_limit:
            self.stats["overloaded"] += 1
            wait = self.retry_after()
            raise Problem(
                "Overloaded",
                f"the server is busy: {self.size} analyses are running and {self.queue_limit} "
                f"requests are waiting; try again in about {wait} s",
                headers={"Retry-After": str(wait)},
            )
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    # -- running --------------------------------------------------------------------------------

    def pids(self) -> list[int]:
        """Process ids of the slot processes now running (for tests and diagnostics)."""
        return [s.pid for s in self._slots if s.alive() and s.pid is not None]

    def _queue(self) -> asyncio.Queue[_Slot]:
        if self._idle is None:
            # the slot used last is reused first (its process is warm; under light load the
            # others are never started); waiting requests are still served in arrival order
            self._idle = asyncio.LifoQueue()
            for slot in self._slots:
                self._idle.put_nowait(slot)
        return self._idle

    async def _acquire(self, request: Request) -> _Slot:
        """The next free slot, in arrival order; gives up when the client disconnects."""
        idle = self._queue()
        getter = asyncio.ensure_future(idle.get())
        try:
            while True:
                done, _ = await asyncio.wait({getter}, timeout=_POLL_S)
                if done:
                    return getter.result()
                if await request.is_disconnected():
                    self.stats["gone_waiting"] += 1
                    raise _client_gone()
        except BaseException:
            getter.cancel()
            try:
                got = await getter
            except asyncio.CancelledError:
                pass
            else:  # it got a slot just as we gave up: hand it back
                idle.put_nowait(got)
            raise

    async def run(
        self, request: Request, kind: str, make_args: Callable[[], tuple[Any, ...]]
    ) -> Any:
        """Run one task in a slot and return its value; a task error raises :class:`Problem`.

        ``make_args`` (run in a thread once a slot is free) gives the task's arguments: the
        upload is read into memory only then, so waiting requests hold no picture in memory."""
        slot = await self._acquire(request)
        try:
            args = await run_in_threadpool(make_args)
            return await self._call(slot, request, kind, args)
        finally:
            self._queue().put_nowait(slot)

    async def _reply(
        self, conn: Connection, request: Request, deadline: float, on_timeout: Problem
    ) -> Any:
        """The next message from a slot process; stops waiting at ``deadline`` (raising
        ``on_timeout``) or when the client disconnects."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, _set_once, ready)
        try:
            while not ready.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise on_timeout
                await asyncio.wait({ready}, timeout=min(_POLL_S, left))
                if not ready.done() and await request.is_disconnected():
                    self.stats["gone_running"] += 1
                    raise _client_gone()
        finally:
            loop.remove_reader(fd)
        return await run_in_threadpool(conn.recv)

    async def _call(self, slot: _Slot, request: Request, kind: str, args: tuple[Any, ...]) -> Any:
        if not slot.alive():
            slot.spawn()
        conn = slot.conn
        assert conn is not None
        finished = False
        try:
            if not slot.ready:  # starting a process and loading models is not the request's cost
                cannot_start = Problem(
                    "InternalError", "the analysis process did not start in time", status=500
                )
                hello = await self._reply(conn, request, time.monotonic() + _START_S, cannot_start)
                slot.ready = hello[0] == "ready"
            started = time.monotonic()
            await run_in_threadpool(conn.send, (kind, args))
            too_long = Problem(
                "TimeBudgetExceeded",
                f"the analysis took longer than the server's time budget of "
                f"{self.time_budget_s:g} s per request and was stopped; send a smaller picture "
                "or try again when the server is less busy",
                headers={"Retry-After": str(self.retry_after())},
            )
            reply = await self._reply(conn, request, started + self.time_budget_s, too_long)
            finished = True
        except Problem as exc:
            if exc.code == "TimeBudgetExceeded":
                self.stats["time_budget"] += 1
            raise
        except (EOFError, OSError):
            self.stats["crashed"] += 1
            raise Problem(
                "InternalError",
                "the analysis process stopped unexpectedly (out of memory?); try again",
                status=500,
            ) from None
        finally:
            if not finished:  # stopped, failed or cancelled: the process's state is unknown
                slot.kill()
                slot.spawn()  # loads its models while no request waits for it
        status, value, recycle = reply
        if recycle:
            slot.kill()  # it exits by itself; the next request starts a fresh one
        self.stats["done"] += 1
        self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - started)
        if status == "ok":
            return value
        code, message, extra = value
        raise Problem(code, message, status=500 if code == "InternalError" else None, **extra)

    def close(self) -> None:
        for slot in self._slots:
            slot.kill()


def _client_gone() -> Problem:
    return Problem(
        "ClientClosedRequest", "the client closed the connection; the work was stopped", status=499
    )


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
