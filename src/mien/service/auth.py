"""API-key authentication: ``Authorization: Bearer <key>`` or ``X-API-Key``, headers only.

No cookie ever carries an API key. The review page has its own sessions of reviewer accounts
(:mod:`mien.service.sessions`), which open the review API ``/v1/review/...`` only
(:func:`mien.service.reviewers.require_reviewer`); every other ``/v1`` route takes a key only.
A browser cannot attach these headers to a request another site makes it send, so the API
cannot be driven by cross-site request forgery with them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from mien.service.keys import verify_key
from mien.service.problem import Problem

BEARER = HTTPBearer(auto_error=False, description="an API key from `mien keys create`")
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)

_TTL_S = 10.0


class KeyCache:
    """Remembers verified keys for a few seconds (a revoked key stops working within 10 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, float]] = {}

    def get(self, presented: str) -> str | None:
        digest = hashlib.sha256(presented.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._seen.get(digest)
            if hit and hit[1] > now:
                return hit[0]
        return None

    def put(self, presented: str, key_id: str) -> None:
        digest = hashlib.sha256(presented.encode()).hexdigest()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[digest] = (key_id, time.monotonic() + _TTL_S)


def presented_key(bearer: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    if bearer is not None and bearer.credentials:
        return bearer.credentials.strip()
    if header:
        return header.strip()
    return None


def key_from_headers(request: Request) -> str | None:
    """The API key of ``Authorization: Bearer`` or ``X-API-Key`` (for routes outside ``/v1``
    that also accept a review-page session)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    bearer = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())
        if scheme.lower() == "bearer"
        else None
    )
    return presented_key(bearer, request.headers.get("x-api-key"))


def check_key(request: Request, presented: str | None) -> str:
    if not presented:
        raise Problem("Unauthorized", "send an API key: 'Authorization: Bearer <key>'")
    state = request.app.state.mien
    key_id: str | None = state.keys.get(presented)
    if key_id is None:
        key_id = verify_key(state.store, presented)
        if key_id is None:
            raise Problem("Unauthorized", "the API key is not valid (unknown or revoked)")
        state.keys.put(presented, key_id)
    return key_id


def require_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    header: Annotated[str | None, Security(KEY_HEADER)],
) -> str:
    """The id of the caller's API key (401 ``Unauthorized`` without a valid one)."""
    return check_key(request, presented_key(bearer, header))
