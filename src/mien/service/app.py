"""The FastAPI application of ``mien serve``.

:func:`create_app` opens (and migrates) the store, starts the worker processes, the retention
purger and the webhook sender for the app's lifetime, and mounts the routes. Every error is
problem+json, and every response carries the security headers of :mod:`mien.service.security`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mien import __version__
from mien.service import faults, problem
from mien.service.config import ServiceConfig
from mien.service.routes import (
    analyze,
    apidocs,
    health,
    jobs,
    review,
    review_decisions,
    review_login,
    review_media,
)
from mien.service.security import SAFE_METHODS, BrowserGuard
from mien.service.slots import SlotPool
from mien.service.state import AppState
from mien.service.store import Store
from mien.service.supervisor import Supervisor
from mien.service.uploads import BodyLimit
from mien.service.webhook_sender import WebhookSender

log = logging.getLogger("mien.service")

DESCRIPTION = """Self-hosted face analysis: where faces are, landmarks, head pose, quality and
observable attributes, for photos (`/v1/faces:analyze`), redaction (`/v1/redact`) and jobs for
videos and image batches (`/v1/jobs`). Every route except `/health` needs an API key
(`mien keys create`), sent as `Authorization: Bearer <key>` or `X-API-Key: <key>` (never as a
cookie). Errors are RFC 9457 `application/problem+json` with a stable `code`.

mien never infers who a person is or what group they belong to: asking for ethnicity, race,
gender, age, emotion or identity answers 422 `RefusedAttribute`."""


CROSS_SITE_RESPONSE: dict[str, Any] = {
    "description": "CrossSiteRequest: a browser sent the request for another site (Origin or "
    "Sec-Fetch-Site)",
    "content": {problem.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def create_app(config: ServiceConfig | None = None, *, start_workers: bool = True) -> FastAPI:
    """The app for ``config``; workers run while the app's lifespan is active."""
    cfg = config or ServiceConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cfg.media_dir.mkdir(exist_ok=True, mode=0o700)
        store = Store.open(cfg.database_url)
        slots = SlotPool(
            cfg.analysis_slots,
            cfg.wait_queue,
            cfg.request_time_s,
            num_threads=cfg.num_threads,
            max_pixels=cfg.max_pixels,
            device=cfg.device,
        )
        app.state.mien = AppState(config=cfg, store=store, slots=slots)
        supervisor = Supervisor(cfg, store) if start_workers else None
        app.state.supervisor = supervisor
        if supervisor is not None:
            supervisor.start()
        sender = WebhookSender(cfg, store)
        sender.start()
        try:
            yield
        finally:
            sender.stop()
            slots.close()
            if supervisor is not None:
                supervisor.stop()
            store.close()

    app = FastAPI(
        title="mien",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs is our own page without scripts or external assets (apidocs)
        redoc_url=None,
    )
    problem.install(app)
    faults.install(app)
    app.add_middleware(BodyLimit, limit=cfg.max_upload_bytes)
    app.include_router(health.router)
    app.include_router(analyze.router)
    app.include_router(jobs.router)
    app.include_router(review.router)
    app.include_router(review_login.router)
    app.include_router(review_decisions.router)
    app.include_router(review.api)
    app.include_router(review_media.routes)
    app.include_router(review_decisions.api)
    app.include_router(apidocs.router)

    # The guard goes around the whole stack, Starlette's error handler included, so that a 500
    # carries the security headers too (app.add_middleware would put it inside that handler).
    build_stack = app.build_middleware_stack

    def guarded_stack() -> Any:
        return BrowserGuard(build_stack())

    app.build_middleware_stack = guarded_stack  # type: ignore[method-assign]

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
            problem.PROBLEM_SCHEMA
        )
        # every state-changing operation may be refused by the cross-site check (BrowserGuard)
        for item in schema.get("paths", {}).values():
            for method, op in item.items():
                if method.upper() not in SAFE_METHODS and isinstance(op, dict):
                    op.setdefault("responses", {}).setdefault("403", CROSS_SITE_RESPONSE)
        problem.document_errors(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the app (what ``docs/openapi.json`` must equal)."""
    return create_app(ServiceConfig(data_dir=Path("/nonexistent")), start_workers=False).openapi()
