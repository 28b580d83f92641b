"""Review-page sessions and their CSRF tokens.

Signing in on ``/review`` (a reviewer account's name and password, or a one-time link) creates
a server-side session: a random 256-bit id that only the browser's cookie holds; the store keeps
its SHA-256, the reviewer account, a CSRF token and an expiry. No API key ever goes into a
cookie. The session opens the review page's routes and the review API (``/v1/review/...``, with
the CSRF token in an ``X-CSRF-Token`` header on unsafe methods), nothing else of ``/v1``.

Every state-changing form of the page carries a synchronizer token: the session's CSRF token
once signed in, and before that (the sign-in form) a random token that is also set in a
short-lived ``SameSite=Strict`` cookie (double submit). :mod:`mien.service.security` adds the
Origin / ``Sec-Fetch-Site`` check in front of all of it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from mien.service.problem import Problem
from mien.service.state import app_state
from mien.service.store import Store

SESSION_COOKIE = "mien_session"
LOGIN_COOKIE = "mien_login"
CSRF_FIELD = "csrf_token"
_LOGIN_COOKIE_S = 3600
_MAX_TOKEN = 128  # longer cookie or form values are not ours: no store look-up for them


@dataclass(frozen=True)
class Session:
    id_hash: str
    reviewer_id: int
    reviewer: str
    role: str
    csrf_token: str
    expires_at: float


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(store: Store, reviewer_id: int, reviewer: str, ttl_s: float) -> str:
    """Create a session of the account ``reviewer_id``; returns the id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    store.create_session(
        _digest(session_id),
        reviewer_id=reviewer_id,
        reviewer=reviewer,
        csrf_token=secrets.token_urlsafe(32),
        ttl_s=ttl_s,
    )
    return session_id


def current_session(request: Request) -> Session | None:
    """The request's valid session (not expired, its account enabled), else None."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id or len(session_id) > _MAX_TOKEN:
        return None
    row = app_state(request).store.get_session(_digest(session_id))
    if row is None:
        return None
    return Session(
        id_hash=row.id_hash,
        reviewer_id=int(row.reviewer_id),
        reviewer=row.reviewer,
        role=row.role,
        csrf_token=row.csrf_token,
        expires_at=float(row.expires_at),
    )


def end_session(request: Request, session: Session | None) -> None:
    """Delete ``session`` from the store (sign-out)."""
    if session is not None:
        app_state(request).store.delete_session(session.id_hash)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, session_id: str, ttl_s: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=ttl_s,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def login_token(request: Request) -> tuple[str, bool]:
    """The sign-in form's CSRF token: the browser's ``mien_login`` cookie, or a new one
    (``True``: set it with :func:`set_login_cookie`)."""
    token = request.cookies.get(LOGIN_COOKIE, "")
    if 32 <= len(token) <= _MAX_TOKEN and token.replace("-", "").replace("_", "").isalnum():
        return token, False
    return secrets.token_urlsafe(32), True


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=_LOGIN_COOKIE_S,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/review",
    )


def clear_login_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        LOGIN_COOKIE, path="/review", httponly=True, samesite="strict", secure=_secure(request)
    )


def check_csrf(expected: str | None, presented: object) -> None:
    """403 ``InvalidCsrfToken`` unless ``presented`` (a form value or header) equals
    ``expected``."""
    given = presented if isinstance(presented, str) else ""
    if not expected or not given or len(given) > _MAX_TOKEN:
        raise Problem(
            "InvalidCsrfToken", "the form's CSRF token is missing: reload the page and try again"
        )
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Problem(
            "InvalidCsrfToken",
            "the form's CSRF token does not match this session: reload the page and try again",
        )
