"""Who acts on the review queue: a :class:`Reviewer` principal, from an API key or from a
review-page session of a reviewer account, and the sign-in of those accounts.

* An API key (``Authorization: Bearer`` / ``X-API-Key``) acts for its own tenant only
  (``kind="key"``); a decision it makes names the key and the reviewer the request states.
* A session (the ``mien_session`` cookie) acts for a reviewer account and sees the tenants an
  admin assigned to it, now (an unassigned or revoked key drops out at the next request). On
  unsafe methods it must send the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from mien.service.auth import BEARER, KEY_HEADER, check_key, presented_key
from mien.service.passwords import ACCOUNT_FAILURES, LOCK_S, SignInGuard
from mien.service.problem import Problem
from mien.service.rows import ReviewerRow
from mien.service.security import SAFE_METHODS
from mien.service.sessions import Session, check_csrf, current_session
from mien.service.state import app_state
from mien.service.store import Store

CSRF_HEADER = "X-CSRF-Token"
ROLES = ("reviewer", "admin")
#: A reviewer's name: no NUL (PostgreSQL cannot store it) and no control character but the tab
#: (a line break in a name would split a log line).
NAME_PATTERN = r"^[^\x00-\x08\x0a-\x1f\x7f]+$"


@dataclass(frozen=True)
class Reviewer:
    """The actor of a review request."""

    kind: Literal["reviewer", "key"]
    reviewer_id: int | None
    name: str
    role: str  # "reviewer" | "admin" (an API key is a "reviewer" of its own tenant)
    key_ids: tuple[str, ...]

    @property
    def key_id(self) -> str | None:
        """The API key that acts (kind "key"), else None."""
        return self.key_ids[0] if self.kind == "key" else None


def of_session(store: Store, session: Session) -> Reviewer:
    return Reviewer(
        kind="reviewer",
        reviewer_id=session.reviewer_id,
        name=session.reviewer,
        role=session.role,
        key_ids=store.reviewer_key_ids(session.reviewer_id),
    )


def session_reviewer(request: Request) -> Reviewer | None:
    """The reviewer of the request's session (no CSRF check: for safe methods), else None."""
    session = current_session(request)
    return None if session is None else of_session(app_state(request).store, session)


def require_reviewer(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    header: Annotated[str | None, Security(KEY_HEADER)],
) -> Reviewer:
    """An API key, else the review-page session (401 ``Unauthorized`` without either; 403
    ``InvalidCsrfToken`` for a session's unsafe request without its token)."""
    presented = presented_key(bearer, header)
    if presented:
        key_id = check_key(request, presented)
        return Reviewer("key", None, key_id, "reviewer", (key_id,))
    session = current_session(request)
    if session is None:
        raise Problem(
            "Unauthorized",
            "send an API key ('Authorization: Bearer <key>') or sign in on /review",
        )
    if request.method.upper() not in SAFE_METHODS:
        check_csrf(session.csrf_token, request.headers.get(CSRF_HEADER))
    return of_session(app_state(request).store, session)


def require_admin(reviewer: Annotated[Reviewer, Depends(require_reviewer)]) -> Reviewer:
    """A reviewer account with the admin role (403 ``Forbidden`` otherwise, API keys too)."""
    if reviewer.kind != "reviewer" or reviewer.role != "admin":
        raise Problem("Forbidden", "this needs a reviewer account with the admin role")
    return reviewer


#: What the sign-in form says on every failure: it tells nobody which names exist.
SIGN_IN_FAILED = (
    "Wrong name or password, or the account is locked after too many failed attempts "
    "(wait 15 minutes)."
)


@dataclass(frozen=True)
class SignIn:
    reviewer: ReviewerRow | None
    error: str = ""
    status: int = 200


def password_sign_in(
    store: Store, guard: SignInGuard, name: str, password: str, address: str
) -> SignIn:
    """Check a name and password, counting failures per account (lock) and per address."""
    if guard.blocked(address):
        return SignIn(None, "Too many failed sign-ins from here; wait a few minutes.", 429)
    row = store.get_reviewer(name) if name else None
    locked = row is not None and row.locked_until is not None and row.locked_until > time.time()
    usable = row is not None and row.disabled_at is None and not locked
    ok = guard.check(password, row.password_hash if usable and row else None)
    if ok is None:
        return SignIn(None, "The server is busy; try again in a moment.", 503)
    if ok and row is not None and usable:
        store.login_succeeded(row.id)
        return SignIn(row)
    guard.failed(address)
    if row is not None and usable:
        store.login_failed(row.id, max_failures=ACCOUNT_FAILURES, lock_s=LOCK_S)
    return SignIn(None, SIGN_IN_FAILED, 401)


#: A route parameter ``who: AnyReviewer`` receives the actor (:func:`require_reviewer`).
AnyReviewer = Annotated[Reviewer, Depends(require_reviewer)]
#: A route parameter ``admin: Admin`` receives an admin account (:func:`require_admin`).
Admin = Annotated[Reviewer, Depends(require_admin)]
