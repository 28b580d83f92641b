"""RFC 9457 problem details (``application/problem+json``) with a stable mien ``code``.

Every error the service answers has ``type``, ``title``, ``status``, ``detail`` and ``code``
(the same code the library and the CLI use, e.g. ``InvalidImage`` or ``RefusedAttribute``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mien.errors import (
    ImageTooLargeError,
    InvalidImageError,
    MienError,
    ModelIntegrityError,
    RefusedAttributeError,
    RuleError,
    SourceNotFoundError,
    UnknownFeatureError,
    UnsupportedMediaError,
)

MEDIA_TYPE = "application/problem+json"

#: The library's errors a client of the service can be answered with: their code, HTTP
#: status and title are theirs (:mod:`mien.errors`). Any other :class:`MienError` answers 400
#: with its code as title (``MienError``'s own defaults).
SERVED: tuple[type[MienError], ...] = (
    SourceNotFoundError,
    ImageTooLargeError,
    UnsupportedMediaError,
    InvalidImageError,
    RefusedAttributeError,
    UnknownFeatureError,
    RuleError,
    ModelIntegrityError,
)

#: The codes of the HTTP layer itself (no library error stands behind them): status, title.
HTTP_ONLY: dict[str, tuple[int, str]] = {
    "BadRequest": (400, "Bad request"),
    "EmptyBody": (400, "The request has no content"),
    "InvalidCursor": (400, "Invalid cursor"),
    "Unauthorized": (401, "A valid API key is required"),
    "CrossSiteRequest": (403, "Refused: the request comes from another site"),
    "Forbidden": (403, "Refused: this needs a reviewer account with the admin role"),
    "InvalidCsrfToken": (403, "Missing or wrong CSRF token"),
    "MethodNotAllowed": (405, "Method not allowed"),
    "IdempotencyConflict": (409, "Idempotency-Key reused with a different request"),
    "MediaPurged": (410, "The media has been deleted (retention ended or job deleted)"),
    "RangeNotSatisfiable": (416, "The requested byte range is not satisfiable"),
    "InvalidParameter": (422, "Invalid parameter"),
    "CallbackRefused": (422, "The callback address is not one this server may call"),
    "TooManyJobs": (429, "Too many active jobs for this key"),
    "TooManyStreams": (429, "Too many open event streams for this key"),
    "NotAvailable": (501, "Not available in this installation"),
    "Overloaded": (503, "The server is busy; retry after the time in Retry-After"),
    "TimeBudgetExceeded": (503, "The request took longer than the server's time budget"),
    "StoreUnavailable": (503, "The service's database is unavailable or cannot be trusted"),
    "MediaUnavailable": (503, "The service cannot store uploads now"),
    "NotReady": (503, "The service is not ready"),
    "InsufficientStorage": (507, "No room left to store the upload"),
    "InternalError": (500, "Internal error"),
}

_TABLE = {**HTTP_ONLY, **{e.code: (e.http_status, e.title) for e in SERVED}}

#: HTTP status of each stable code.
STATUS: dict[str, int] = {code: status for code, (status, _) in _TABLE.items()}

TITLES: dict[str, str] = {code: title for code, (_, title) in _TABLE.items()}


class Problem(Exception):
    """Raise from a route to answer a problem+json response."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status or STATUS.get(code, 400)
        self.headers = headers or {}
        self.extra = extra


def problem_body(
    code: str, detail: str, status: int, instance: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:mien:problem:{code}",
        "title": TITLES.get(code, code),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    return body


def problem_response(
    code: str,
    detail: str,
    status: int | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    st = status or STATUS.get(code, 400)
    body = problem_body(code, detail, st, instance)
    body.update(extra)
    return JSONResponse(body, status_code=st, media_type=MEDIA_TYPE, headers=headers)


def from_mien_error(exc: MienError) -> Problem:
    extra: dict[str, Any] = {}
    names = getattr(exc, "names", None)
    if names:
        extra["refused"] = list(names)
    return Problem(exc.code, exc.message, **extra)


_HTTP_CODES = {401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed", 413: "ImageTooLarge"}


def allowed_methods(request: Request) -> list[str]:
    """The methods the routes of ``request``'s path answer (for a 405's ``Allow``)."""
    from starlette.routing import Match

    methods = []
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(r.matches(scope)[0] == Match.FULL for r in request.app.router.routes):
            methods.append(method)
    return methods


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        headers.update(exc.headers)
        return problem_response(
            exc.code,
            exc.detail,
            exc.status,
            instance=request.url.path,
            headers=headers,
            **exc.extra,
        )

    async def on_mien(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MienError)
        return await on_problem(request, from_mien_error(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "BadRequest")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Allow: every method of the path, not one route's
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(
            code, detail, exc.status_code, instance=request.url.path, headers=headers or None
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {err.get('msg')}")
        return problem_response(
            "InvalidParameter", "; ".join(parts) or "invalid request", instance=request.url.path
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(MienError, on_mien)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)


#: The OpenAPI description of a problem+json answer, for ``responses=`` of the routes.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": sorted(STATUS)},
        "instance": {"type": "string"},
    },
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for st in statuses:
        codes = sorted(c for c, s in STATUS.items() if s == st)
        out[st] = {
            "description": ", ".join(codes) or "error",
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the app sends: every 422 (FastAPI's validation
    errors included) is problem+json, and every operation may answer 500 ``InternalError`` and
    503 ``StoreUnavailable``/... (problem+json too). Edits ``schema`` in place and returns it."""
    problem_422 = responses(422)[422]
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            answers = op.setdefault("responses", {})
            if "422" in answers:
                answers["422"] = problem_422
            # a body that cannot be parsed (400) or is over the upload limit (413)
            with_body = (400, 413) if "requestBody" in op else ()
            for st in (*with_body, 500, 503):
                answers.setdefault(str(st), responses(st)[st])
    schemas = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema
