"""``GET /health``: the only route that needs no API key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from mien import __version__
from mien.service.routes.common import state

router = APIRouter()


class Health(BaseModel):
    status: str
    version: str
    store: str
    workers: int


@router.get("/health", tags=["health"], summary="Liveness: no API key needed")
def health(request: Request) -> Health:
    st = state(request)
    return Health(
        status="ok",
        version=__version__,
        store=st.store.engine.dialect.name,
        workers=st.config.workers,
    )
