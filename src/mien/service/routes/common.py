"""OpenAPI request bodies and helpers shared by the routes."""

from __future__ import annotations

from typing import Any

from fastapi import Query
from starlette.concurrency import run_in_threadpool

BINARY = {"type": "string", "format": "binary"}

#: The ``features`` and ``profile`` query parameters of the routes that analyse.
FEATURES: Any = Query(None, description="comma-separated feature names, or 'all'")
PROFILE: Any = Query(None, description="a rules profile, e.g. 'id-photo'")


def upload_body(file_fields: dict[str, Any], text_fields: list[str]) -> dict[str, Any]:
    """``openapi_extra`` describing a raw media body or a multipart form."""
    props: dict[str, Any] = dict(file_fields)
    props.update({name: {"type": "string"} for name in text_fields})
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": {"type": "object", "properties": props}},
                "image/*": {"schema": BINARY},
                "video/*": {"schema": BINARY},
                "application/octet-stream": {"schema": BINARY},
            },
        }
    }


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await run_in_threadpool(fn, *args, **kwargs)
