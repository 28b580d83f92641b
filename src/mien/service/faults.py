"""Store and disk faults: the service says so (problem+json) instead of failing silently.

* :class:`StoreGuard` (ASGI middleware): once the SQLite file the server opened is deleted or
  replaced (:meth:`Store.fault`), every route but ``/health*`` answers 503
  ``StoreUnavailable`` with the reason, so no work is accepted into a file that is gone.
* :func:`install`: database errors answer 503 ``StoreUnavailable`` and are remembered for
  ``/health``; any other unexpected error answers 500 ``InternalError``; both problem+json.
* :func:`readiness`: writes and reads the store and the media folder (``/health/ready``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from mien.service.problem import problem_response
from mien.service.store import Store, StoreFault

log = logging.getLogger("mien.service")

#: How long a database error makes ``/health`` answer 503.
RECENT_S = 60.0
_OPEN = ("/health", "/health/ready")


class StoreErrors:
    """The database errors of the last :data:`RECENT_S` seconds (for ``/health``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[float, str] | None = None
        self.count = 0

    def note(self, exc: BaseException) -> None:
        with self._lock:
            self._last = (time.monotonic(), type(exc).__name__)
            self.count += 1

    def recent(self) -> str | None:
        with self._lock:
            if self._last is None or time.monotonic() - self._last[0] > RECENT_S:
                return None
            return self._last[1]


def store_problem(exc: BaseException, instance: str | None = None) -> JSONResponse:
    if isinstance(exc, StoreFault):
        detail = str(exc)
    else:  # never the SQL, its parameters or the database's address: the log has them
        detail = (
            f"the service's database failed ({type(exc).__name__}); nothing was changed by "
            "this request; the server log has the details"
        )
    return problem_response(
        "StoreUnavailable", detail, instance=instance, headers={"Retry-After": "30"}
    )


class StoreGuard:
    """Answer 503 ``StoreUnavailable`` to everything but ``/health*`` while the store is faulty."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in _OPEN:
            mien = getattr(scope["app"].state, "mien", None)
            reason = mien.store.fault() if mien is not None else None
            if reason:
                await store_problem(StoreFault(reason), scope.get("path"))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Database errors -> 503 ``StoreUnavailable``; anything unexpected -> 500 problem+json."""

    async def on_store(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DataError):
            # the request's own data cannot be stored (a NUL character, a number out of the
            # column's range): the caller's fault, and no sign that the store is failing
            log.info("refused data on %s %s: %s", request.method, request.url.path, exc.orig)
            return problem_response(
                "InvalidParameter",
                "a value of this request cannot be stored (e.g. a NUL character)",
                instance=request.url.path,
            )
        if not isinstance(exc, StoreFault):
            log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
        mien = getattr(request.app.state, "mien", None)
        if mien is not None:
            mien.store_errors.note(exc)
        return store_problem(exc, request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, (SQLAlchemyError, StoreFault)):
            return await on_store(request, exc)
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(
            "InternalError",
            f"the server failed on this request ({type(exc).__name__}); the server log has "
            "the details",
            instance=request.url.path,
        )

    app.add_exception_handler(SQLAlchemyError, on_store)
    app.add_exception_handler(StoreFault, on_store)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_middleware(StoreGuard)


def probe_media(media_dir: Path, min_free: int) -> str | None:
    """Write a small file into the media folder, read it back, delete it; why not, or None."""
    name = media_dir / f".ready-{os.getpid()}-{secrets.token_hex(4)}"
    data = secrets.token_bytes(4096)
    try:
        media_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if name.read_bytes() != data:
            return "the media folder did not read back what was written"
        free = shutil.disk_usage(media_dir).free
    except OSError as exc:
        return f"the media folder cannot be written ({exc.strerror or type(exc).__name__})"
    finally:
        with contextlib.suppress(OSError):
            name.unlink(missing_ok=True)
    if free < min_free:
        return f"the media folder has {free} bytes free, less than one upload ({min_free})"
    return None


def probe_store(store: Store) -> str | None:
    try:
        store.probe()
    except StoreFault as exc:
        return str(exc)
    except SQLAlchemyError as exc:
        log.error("readiness: the database failed", exc_info=exc)
        return f"the database cannot be written and read ({type(exc).__name__})"
    return None


def readiness(store: Store, media_dir: Path, min_free: int) -> dict[str, Any]:
    """``{"store": reason or "ok", "media": reason or "ok"}``."""
    return {
        "store": probe_store(store) or "ok",
        "media": probe_media(media_dir, min_free) or "ok",
    }
