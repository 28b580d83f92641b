"""The HTTP service of mien (``mien serve``): FastAPI on uvicorn, SQLite or PostgreSQL store.

A thin layer over the library: ``POST /v1/faces:analyze`` answers the CLI's JSON, jobs run in
worker processes claimed from the store, uploads are deleted when their retention ends, and a
review page shows flagged results. Needs the ``service`` extra (``pip install 'mien[service]'``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:  # lazy: importing mien.service must not need FastAPI
    if name == "create_app":
        from mien.service.app import create_app

        return create_app
    if name == "ServiceConfig":
        from mien.service.config import ServiceConfig

        return ServiceConfig
    raise AttributeError(name)
