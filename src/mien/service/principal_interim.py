"""INTERIM stand-in for rv-accounts' reviewer principal (issue 18 contract): who calls a
``/v1/review/*`` route, as an API key or as the review page's session.

rv-accounts defines ``Reviewer`` and ``require_reviewer`` in service/auth.py (or
service/reviewers.py) with these same fields; at merge the imports of this module are pointed
there and this file is deleted. The one session look-up is :func:`page_reviewer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from mien.service.auth import _bearer, _header, check_key, presented_key
from mien.service.security import SAFE_METHODS
from mien.service.sessions import check_csrf, current_session

CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Reviewer:
    kind: str  # "reviewer" (page session) | "key" (API key)
    reviewer_id: int | None
    name: str
    role: str
    key_ids: tuple[str, ...]


def page_reviewer(request: Request) -> Reviewer | None:
    """The review page's session as a reviewer (its tenants), or None when not signed in."""
    session = current_session(request)
    if session is None:
        return None
    if request.method.upper() not in SAFE_METHODS:
        check_csrf(session.csrf_token, request.headers.get(CSRF_HEADER))
    return Reviewer("reviewer", None, session.reviewer, "reviewer", (session.key_id,))


def require_reviewer(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Reviewer:
    """An API key (header) or else the page session (+ ``X-CSRF-Token`` on unsafe methods);
    401 ``Unauthorized`` without either."""
    key = presented_key(bearer, header)
    if key is None:
        reviewer = page_reviewer(request)
        if reviewer is not None:
            return reviewer
    key_id = check_key(request, key)
    return Reviewer("key", None, "", "reviewer", (key_id,))
