"""The committed OpenAPI document (docs/openapi.json) is the app's: change one, change both."""

from __future__ import annotations

import json

import pytest

from .conftest import REPO

pytest.importorskip("fastapi", reason="the service tests need the 'service' extra")


def test_committed_openapi_matches_the_app() -> None:
    from mien.service.openapi import render

    committed = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    current = render()
    assert json.loads(committed) == json.loads(current), (
        "the API changed: regenerate with `python -m mien.service.openapi docs/openapi.json`, "
        "review the diff and commit it"
    )
    assert committed == current


def test_openapi_describes_every_route_and_problems() -> None:
    from mien.service.app import openapi_document

    doc = openapi_document()
    assert set(doc["paths"]) >= {
        "/health",
        "/v1/faces:analyze",
        "/v1/redact",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/results",
        "/v1/review/items",
        "/v1/review/items/{result_id}/decision",
        "/v1/review/export",
    }
    assert "delete" in doc["paths"]["/v1/jobs/{job_id}"]
    problem = doc["components"]["schemas"]["Problem"]
    assert "RefusedAttribute" in problem["properties"]["code"]["enum"]
    analyze = doc["paths"]["/v1/faces:analyze"]["post"]
    assert "application/problem+json" in analyze["responses"]["422"]["content"]
    assert "multipart/form-data" in analyze["requestBody"]["content"]
    schemes = doc["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)
