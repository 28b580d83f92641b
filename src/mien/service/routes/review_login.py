"""Signing in to the review page: a reviewer account's name and password (``POST
/review/login``) or a one-time link (``GET /review/login/{token}`` shows a button that posts
it), and signing out.

A successful sign-in ends any session the browser had (no session fixation) and starts a new
one (:mod:`mien.service.sessions`). Failures answer the form again with one message that does
not say whether the name exists; their cost is bounded (:mod:`mien.service.passwords`)."""

from __future__ import annotations

import html
from importlib import resources
from string import Template
from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mien.service.passwords import MAX_PASSWORD, token_hash
from mien.service.reviewers import password_sign_in
from mien.service.routes.common import in_thread
from mien.service.sessions import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    check_csrf,
    clear_login_cookie,
    clear_session_cookie,
    current_session,
    end_session,
    login_token,
    set_login_cookie,
    set_session_cookie,
    start_session,
)
from mien.service.state import State

router = APIRouter(tags=["review"], include_in_schema=False)


def template(name: str) -> Template:
    text = (resources.files("mien.service") / "templates" / name).read_text(encoding="utf-8")
    return Template(text)


def no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    return resp


def login_page(request: Request, error: str = "", status: int = 200) -> HTMLResponse:
    """The sign-in form (with its double-submit CSRF token)."""
    token, new = login_token(request)
    body = template("login.html").substitute(error=html.escape(error), csrf=token)
    resp = HTMLResponse(body, status_code=status)
    if new:
        set_login_cookie(resp, request, token)
    no_store(resp)
    return resp


async def _signed_in(request: Request, st: State, reviewer_id: int, name: str) -> str:
    old = await in_thread(current_session, request)
    await in_thread(end_session, request, old)  # a new sign-in never reuses a session id
    return str(
        await in_thread(start_session, st.store, reviewer_id, name, st.config.review_session_s)
    )


def _with_session(resp: Response, request: Request, st: State, session_id: str) -> Response:
    set_session_cookie(resp, request, session_id, st.config.review_session_s)
    clear_login_cookie(resp, request)
    return no_store(resp)


@router.post("/review/login")
async def login(request: Request, st: State) -> Response:
    form = await request.form()
    check_csrf(request.cookies.get(LOGIN_COOKIE), form.get(CSRF_FIELD))
    name = str(form.get("name") or "").strip()[:200]
    password = str(form.get("password") or "")[: MAX_PASSWORD + 1]
    address = request.client.host if request.client else ""
    outcome = await in_thread(password_sign_in, st.store, st.sign_ins, name, password, address)
    if outcome.reviewer is None:
        return login_page(request, outcome.error, outcome.status)
    session_id = await _signed_in(request, st, outcome.reviewer.id, outcome.reviewer.name)
    return _with_session(RedirectResponse("/review", status_code=303), request, st, session_id)


def _link_token(token: str) -> str | None:
    """The store's hash of a link token that has the form of ours, else None (no look-up)."""
    if len(token) <= 128 and token.replace("-", "").replace("_", "").isalnum():
        return token_hash(token)
    return None


def _link_refused(request: Request) -> HTMLResponse:
    return login_page(request, "That sign-in link is not valid (used, expired or unknown).", 401)


#: The link's token (from ``mien reviewers link``).
LinkToken: Any = Path(min_length=1, max_length=200)


@router.get("/review/login/{token}")
async def link_page(request: Request, st: State, token: str = LinkToken) -> Response:
    """A one-time link from ``mien reviewers link``: a page that asks to sign in as the
    account. Opening it changes nothing (a mail scanner that fetches links uses none up); its
    button posts the link with the page's CSRF token (:func:`login_link`)."""
    digest = _link_token(token)
    reviewer = await in_thread(st.store.peek_link, digest) if digest else None
    if reviewer is None:
        return _link_refused(request)
    csrf, new = login_token(request)
    body = template("link.html").substitute(
        name=html.escape(reviewer.name), token=html.escape(token), csrf=csrf
    )
    resp = HTMLResponse(body)
    if new:
        set_login_cookie(resp, request, csrf)
    return no_store(resp)


@router.post("/review/login/{token}")
async def login_link(request: Request, st: State, token: str = LinkToken) -> Response:
    """Sign in with a one-time link: valid 15 minutes, used up by this request."""
    form = await request.form()
    check_csrf(request.cookies.get(LOGIN_COOKIE), form.get(CSRF_FIELD))
    digest = _link_token(token)
    reviewer = await in_thread(st.store.use_link, digest) if digest else None
    if reviewer is None:
        return _link_refused(request)
    session_id = await _signed_in(request, st, reviewer.id, reviewer.name)
    return _with_session(RedirectResponse("/review", status_code=303), request, st, session_id)


@router.post("/review/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    session = await in_thread(current_session, request)
    if session is not None:
        check_csrf(session.csrf_token, form.get(CSRF_FIELD))
        await in_thread(end_session, request, session)
    resp = RedirectResponse("/review", status_code=303)
    clear_session_cookie(resp, request)
    return no_store(resp)
