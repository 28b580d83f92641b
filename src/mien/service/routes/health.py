"""``GET /health`` (liveness, and whether the store can be trusted) and ``GET /health/ready``
(a write and a read of the store and of the media folder); the only routes without an API key."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from mien import __version__
from mien.service import faults
from mien.service.problem import Problem, responses
from mien.service.routes.common import in_thread
from mien.service.state import State
from mien.service.store import StoreFault

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    store: str
    workers: int


class Ready(BaseModel):
    status: str
    store: str
    media: str


@router.get(
    "/health",
    summary="Liveness: no API key needed; 503 while the store cannot be trusted",
    responses=responses(503),
)
def health(st: State) -> Health:
    reason = st.store.fault()
    if reason:
        raise StoreFault(reason)
    recent = st.store_errors.recent()
    if recent:
        raise Problem(
            "StoreUnavailable",
            f"the database failed within the last {int(faults.RECENT_S)} s ({recent}); "
            "the server log has the details",
        )
    return Health(
        status="ok",
        version=__version__,
        store=st.store.engine.dialect.name,
        workers=st.config.workers,
    )


@router.get(
    "/health/ready",
    summary="Readiness: writes and reads the store and the media folder; no API key needed",
    responses={
        503: {
            "description": "NotReady: `checks` says which part failed and why",
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
    },
)
async def ready(st: State) -> Ready:
    checks = await in_thread(
        faults.readiness, st.store, st.config.media_dir, st.config.max_upload_bytes
    )
    if checks["store"] != "ok" or checks["media"] != "ok":
        failed = "; ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        raise Problem("NotReady", f"not ready: {failed}", checks=checks)
    return Ready(status="ready", store=checks["store"], media=checks["media"])
