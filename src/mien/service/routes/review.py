"""The review page (``/review``, HTML) and its JSON API (``/v1/review/...``): flagged results,
approve/reject, export as CSV or JSON.

The page signs a reviewer in with an API key and a name and then works with a server-side
session (:mod:`mien.service.sessions`): the cookie holds the session id only, every form carries
the session's CSRF token. The JSON API takes API keys from headers only."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from importlib import resources
from pathlib import Path as FilePath
from string import Template
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mien.service import webhooks
from mien.service.auth import check_key, key_from_headers, require_key
from mien.service.media import job_dir
from mien.service.principal_interim import Reviewer, page_reviewer, require_reviewer
from mien.service.problem import Problem, responses
from mien.service.queue import MAX_LIMIT, BadCursor, Kind, Sort, Status
from mien.service.routes.common import in_thread
from mien.service.rows import ReviewRow
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
from mien.service.store import MAX_ID, Store
from mien.service.thumbnails import annotated_thumbnail

router = APIRouter(tags=["review"], include_in_schema=False)
api = APIRouter(tags=["review"])

#: The caller of a ``/v1/review`` route: an API key or the page's session (+ CSRF header).
AsReviewer = Annotated[Reviewer, Depends(require_reviewer)]
#: A review item (result) id: 1 to 2**63 - 1; others answer 422 ``InvalidParameter``.
ItemId: Any = Path(ge=1, le=MAX_ID, description="the review item (result) id")
_DECISIONS: dict[str, str | None] = {"approve": "approved", "reject": "rejected", "clear": None}


def _template(name: str) -> Template:
    text = (resources.files("mien.service") / "templates" / name).read_text(encoding="utf-8")
    return Template(text)


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(float(t), dt.timezone.utc).isoformat(timespec="seconds")


class ReviewItem(BaseModel):
    id: int
    job_id: str
    item: int
    seq: int
    kind: str
    name: str
    faces: int
    profile: str | None
    flags: list[dict[str, Any]]
    media_retained: bool
    decision: str | None
    reviewer: str | None
    decided_at: str | None
    disagreement: bool = Field(
        False, description="reviewers' decisions on this item differ (see its history)"
    )
    decision_count: int = Field(0, description="decisions recorded for this item")
    start_s: float | None = Field(None, description="video segments: first flagged frame, s")
    end_s: float | None = Field(None, description="video segments: last flagged frame, s")
    track_id: int | None = Field(None, description="video segments: the face track")
    media_url: str | None = Field(None, description="video segments: the retained video")
    filmstrip_url: str | None = Field(None, description="video segments: frames as one JPEG")


class ReviewCounts(BaseModel):
    undecided: int
    approved: int
    rejected: int
    all: int


class ReviewPage(BaseModel):
    items: list[ReviewItem]
    next_cursor: str | None = Field(description="the cursor of the next page; null on the last")
    counts: ReviewCounts = Field(description="items matching the filters (any status), by status")


#: A reviewer's name: no NUL (PostgreSQL cannot store it) and no control character but the tab
#: (a line break in a name would split a log line).
NAME_PATTERN = r"^[^\x00-\x08\x0a-\x1f\x7f]+$"
#: A rule id or profile name in a queue filter.
RULE_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"


class Decision(BaseModel):
    decision: Literal["approve", "reject", "clear"]
    reviewer: str | None = Field(None, min_length=1, max_length=200, pattern=NAME_PATTERN)
    note: str | None = Field(None, max_length=2000)


class BulkDecision(Decision):
    item_ids: list[int] = Field(min_length=1, max_length=500)


class BulkResult(BaseModel):
    decided: list[int]
    not_found: list[int]


def _item(row: ReviewRow) -> ReviewItem:
    data = json.loads(row.data)
    retained = bool(row.media_file) and not row.media_purged
    segment: dict[str, Any] = {}
    if row.kind == "segment":
        segment = {k: data.get(k) for k in ("start_s", "end_s", "track_id")}
        if retained:
            segment["media_url"] = f"/v1/review/items/{int(row.id)}/media"
            segment["filmstrip_url"] = f"/review/items/{int(row.id)}/filmstrip"
    return ReviewItem(
        id=int(row.id),
        job_id=row.job_id,
        item=int(row.item_idx),
        seq=int(row.seq),
        kind=str(row.kind),
        name=str(row.name or data.get("source", "")),
        faces=len(data.get("faces") or []),
        profile=data.get("profile"),
        flags=json.loads(row.flags),
        media_retained=retained,
        decision=row.decision,
        reviewer=row.reviewer,
        decided_at=_iso(row.decided_at),
        disagreement=bool(getattr(row, "disagreement", False)),
        decision_count=int(getattr(row, "decision_count", 0) or 0),
        **segment,
    )


def _reason(flag: dict[str, Any]) -> str:
    rule = flag.get("rule") or flag.get("rule_id") or flag.get("id") or "rule"
    parts = [
        f"<strong>{html.escape(str(rule))}</strong>: {html.escape(str(flag.get('message', '')))}"
    ]
    extra = []
    if flag.get("severity"):
        extra.append(html.escape(str(flag["severity"])))
    face = flag.get("face", flag.get("face_index"))
    if face is not None:
        extra.append(f"face {html.escape(str(face))}")
    if extra:
        parts.append(f" <span class='sev'>({', '.join(extra)})</span>")
    return f"<li>{''.join(parts)}</li>"


def _render_item(it: ReviewItem, csrf: str) -> str:
    if it.media_retained and it.kind == "image":
        thumb = (
            f"<img src='/review/items/{it.id}/thumbnail' alt='annotated picture of "
            f"{html.escape(it.name)}' loading='lazy'>"
        )
    elif it.kind != "image":
        thumb = f"<p class='purged'>video {html.escape(it.kind)} {it.seq} (no thumbnail)</p>"
    else:
        thumb = "<p class='purged'>picture not retained (retention ended or job deleted)</p>"
    if it.decision:
        decision_text = (
            f"<span class='state'>{html.escape(it.decision)}</span> by "
            f"<span class='by'>{html.escape(it.reviewer or '')}</span> at {it.decided_at}"
        )
    else:
        decision_text = "<span class='state'>undecided</span>"
    return _template("item.html").substitute(
        id=it.id,
        csrf=csrf,
        state=it.decision or "undecided",
        decision=it.decision or "",
        thumb=thumb,
        name=html.escape(it.name),
        job=html.escape(it.job_id[:12]),
        item=it.item,
        faces=it.faces,
        profile=html.escape(it.profile or "-"),
        reasons="".join(_reason(f) for f in it.flags),
        decision_text=decision_text,
    )


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _login_page(request: Request, error: str = "", status: int = 200) -> HTMLResponse:
    token, new = login_token(request)
    body = _template("login.html").substitute(error=html.escape(error), csrf=token)
    resp = HTMLResponse(body, status_code=status)
    if new:
        set_login_cookie(resp, request, token)
    _no_store(resp)
    return resp


def _session_or_key(request: Request) -> str:
    """The key id of the review page's session, else of an API-key header (401 without)."""
    session = current_session(request)
    if session is not None:
        return session.key_id
    return check_key(request, key_from_headers(request))


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request) -> Response:
    """The queue page: a shell that static/review.js fills from ``GET /v1/review/items``."""
    reviewer = page_reviewer(request)
    session = current_session(request) if reviewer is not None else None
    if reviewer is None or session is None:
        return _login_page(request, "", status=401)
    page = _template("review.html").substitute(
        reviewer=html.escape(reviewer.name), csrf=session.csrf_token
    )
    return _no_store(HTMLResponse(page))


@router.get("/review/items/{result_id}", response_class=HTMLResponse)
def item_page(request: Request, st: State, result_id: int = ItemId) -> Response:
    """One item on its own page (a link to share; its forms work without JavaScript)."""
    session = current_session(request)
    if session is None:
        return _login_page(request, "", status=401)
    row = st.store.result_with_media(result_id, key_id=session.key_id)
    if row is None or not row.flagged:
        raise Problem("NotFound", f"no flagged item {result_id}")
    page = _template("item_page.html").substitute(
        reviewer=html.escape(session.reviewer),
        item=_render_item(_item(row), session.csrf_token),
    )
    return _no_store(HTMLResponse(page))


@router.post("/review/login")
async def login(request: Request, st: State) -> Response:
    form = await request.form()
    check_csrf(request.cookies.get(LOGIN_COOKIE), form.get(CSRF_FIELD))
    key = str(form.get("key") or "").strip()
    reviewer = str(form.get("reviewer") or "").strip()[:200]
    try:
        key_id = await in_thread(check_key, request, key)
    except Problem:
        return _login_page(request, "That API key is not valid.", status=401)
    if not reviewer:
        return _login_page(request, "Enter your name: it is stored with each decision.", 400)
    if not re.match(NAME_PATTERN, reviewer):
        return _login_page(request, "Your name may not hold control characters.", 400)
    old = await in_thread(current_session, request)
    await in_thread(end_session, request, old)  # a new sign-in never reuses a session id
    ttl = st.config.review_session_s
    session_id = await in_thread(start_session, st.store, key_id, reviewer, ttl)
    resp = RedirectResponse("/review", status_code=303)
    set_session_cookie(resp, request, session_id, ttl)
    clear_login_cookie(resp, request)
    return _no_store(resp)


@router.post("/review/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    session = await in_thread(current_session, request)
    if session is not None:
        check_csrf(session.csrf_token, form.get(CSRF_FIELD))
        await in_thread(end_session, request, session)
    resp = RedirectResponse("/review", status_code=303)
    clear_session_cookie(resp, request)
    return _no_store(resp)


@router.post("/review/items/{result_id}")
async def decide_form(request: Request, st: State, result_id: int = ItemId) -> Response:
    session = await in_thread(current_session, request)
    if session is None:
        return _login_page(request, "Sign in first.", status=401)
    form = await request.form()
    check_csrf(session.csrf_token, form.get(CSRF_FIELD))
    decision = str(form.get("decision") or "")
    if decision not in _DECISIONS:
        raise Problem("InvalidParameter", "decision must be 'approve' or 'reject'")
    ok = await in_thread(
        st.store.decide,
        result_id,
        _DECISIONS[decision],
        session.reviewer,
        session.key_id,
    )
    if not ok:
        raise Problem("NotFound", f"no flagged item {result_id}")
    return RedirectResponse(f"/review#item-{result_id}", status_code=303)


@router.get("/review/items/{result_id}/thumbnail")
def thumbnail(request: Request, st: State, result_id: int = ItemId) -> Response:
    key_id = _session_or_key(request)
    row = st.store.result_with_media(result_id, key_id=key_id)
    if row is None or not row.flagged:
        raise Problem("NotFound", f"no flagged item {result_id}")
    if row.kind == "segment":  # the keyframe of a video segment
        from mien.service.routes.review_media import segment_thumbnail  # (imports this module)

        return segment_thumbnail(st, result_id, key_id)
    if row.media_purged or not row.media_file:
        raise Problem("MediaPurged", "the picture is no longer retained")
    if row.kind != "image":
        raise Problem("NotFound", "thumbnails exist for image results only")
    path = job_dir(st.config.media_dir, row.job_id) / str(row.media_file)
    if not FilePath(path).is_file():
        raise Problem("MediaPurged", "the picture is no longer retained")
    data = annotated_thumbnail(path, json.loads(row.data))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/review/export")
def export_page(
    request: Request, st: State, format: str = Query("json", pattern="^(csv|json)$")
) -> Response:
    """The export links of the review page (the session's key); same content as
    ``/v1/review/export``."""
    session = current_session(request)
    if session is None:
        raise Problem("Unauthorized", "sign in on /review first")
    return _no_store(_export(st.store, session.key_id, format))


_STATIC_TYPES = {"review.css": "text/css", "review.js": "text/javascript"}


@router.get("/review/static/{name}")
def static_file(name: str) -> Response:
    """The page's stylesheet and script (files of the package; nothing else is served)."""
    media_type = _STATIC_TYPES.get(name)
    if media_type is None:
        raise Problem("NotFound", "no such file")
    text = (resources.files("mien.service") / "static" / name).read_text("utf-8")
    return Response(text, media_type=media_type, headers={"Cache-Control": "no-cache"})


# -- JSON API --------------------------------------------------------------------------------


@api.get(
    "/v1/review/items",
    summary="The review queue: flagged results, filtered, sorted, a page at a time, with counts",
    responses=responses(401, 422),
)
def review_items(
    st: State,
    reviewer: AsReviewer,
    status: Annotated[
        Status | None, Query(description="undecided, approved, rejected, all (default)")
    ] = None,
    undecided: bool = Query(False, description="old alias of status=undecided"),
    rule: str | None = Query(None, pattern=RULE_PATTERN, description="a rule id that fired"),
    profile: str | None = Query(None, pattern=RULE_PATTERN, description="the job's profile"),
    job_id: str | None = Query(None, pattern="^[0-9a-f]{32}$"),
    since: Annotated[dt.datetime | None, Query(description="created at/after")] = None,
    until: Annotated[dt.datetime | None, Query(description="created before (ISO 8601)")] = None,
    kind: Annotated[Kind | None, Query(description="photo, frame or segment")] = None,
    sort: Annotated[Sort, Query(description="newest, oldest, severity (errors, then flags)")] = (
        "newest"
    ),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of a page"),
) -> ReviewPage:
    filters: dict[str, Any] = {
        "rule": rule,
        "profile": profile,
        "job_id": job_id,
        "since": _seconds(since),
        "until": _seconds(until),
        "kind": kind,
    }
    try:
        rows, next_cursor = st.store.review_page(
            key_ids=reviewer.key_ids,
            status=status or ("undecided" if undecided else "all"),
            sort=sort,
            limit=limit,
            cursor=cursor,
            **filters,
        )
    except BadCursor as e:
        raise Problem("InvalidParameter", f"cursor: {e}") from e
    counts = st.store.review_counts(key_ids=reviewer.key_ids, **filters)
    return ReviewPage(
        items=[_item(r) for r in rows], next_cursor=next_cursor, counts=ReviewCounts(**counts)
    )


def _seconds(t: dt.datetime | None) -> float | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


# INTERIM (rv-accounts' decision routes replace these two at merge: they append to the history)


def _decide_as(st: State, reviewer: Reviewer, body: Decision, result_id: int) -> bool:
    name = reviewer.name or body.reviewer or reviewer.key_ids[0]
    for key_id in reviewer.key_ids:
        if st.store.decide(result_id, _DECISIONS[body.decision], name, key_id):
            webhooks.review_decided(
                st.store,
                result_id,
                _DECISIONS[body.decision] or "cleared",
                name,
                key_id,
                reviewer.kind,
            )
            return True
    return False


@api.post(
    "/v1/review/items/{result_id}/decision",
    summary="Approve, reject or clear (undo) a flagged result; stored with the reviewer and time",
    responses=responses(401, 403, 404, 422),
)
def decide(
    body: Decision,
    st: State,
    reviewer: AsReviewer,
    result_id: int = ItemId,
) -> ReviewItem:
    if not _decide_as(st, reviewer, body, result_id):
        raise Problem("NotFound", f"no flagged item {result_id}")
    for key_id in reviewer.key_ids:
        row = st.store.result_with_media(result_id, key_id=key_id)
        if row is not None:
            return _item(row)
    raise Problem("NotFound", f"no flagged item {result_id}")


@api.post(
    "/v1/review/decisions",
    summary="One decision on up to 500 flagged results (a selection on the review page)",
    responses=responses(401, 403, 422),
)
def decide_many(body: BulkDecision, st: State, reviewer: AsReviewer) -> BulkResult:
    decided: list[int] = []
    not_found: list[int] = []
    for result_id in dict.fromkeys(body.item_ids):
        ok = 0 < result_id <= MAX_ID and _decide_as(st, reviewer, body, result_id)
        (decided if ok else not_found).append(result_id)
    return BulkResult(decided=decided, not_found=not_found)


EXPORT_FIELDS = (
    "result_id",
    "job_id",
    "item",
    "seq",
    "name",
    "flags",
    "decision",
    "reviewer",
    "reviewer_key",
    "decided_at",
)


#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"),
#: with their full-width forms, which some spreadsheets fold to the ASCII ones.
_FORMULA_START = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string that could start a formula gets a
    leading single quote (OWASP); other values are written as they are."""
    if isinstance(value, str) and value and value[0] in _FORMULA_START:
        return "'" + value
    return value


@api.get(
    "/v1/review/export",
    summary="Every flagged result with its decision, as CSV or JSON",
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}}, "description": "export"},
        **responses(401),
    },
    response_class=Response,
)
def export(
    st: State,
    key_id: str = Depends(require_key),
    format: str = Query("json", pattern="^(csv|json)$"),
) -> Response:
    return _export(st.store, key_id, format)


def _export(store: Store, key_id: str, format: str) -> Response:
    rows: list[dict[str, Any]] = []
    for r in store.decisions(key_id=key_id):
        flags = json.loads(r.flags)
        rows.append(
            {
                "result_id": int(r.id),
                "job_id": r.job_id,
                "item": int(r.item_idx),
                "seq": int(r.seq),
                "name": r.name,
                "flags": [f.get("message", "") for f in flags],
                "decision": r.decision,
                "reviewer": r.reviewer,
                "reviewer_key": r.reviewer_key,
                "decided_at": _iso(r.decided_at),
            }
        )
    if format == "json":
        return Response(
            json.dumps(rows, indent=1),
            media_type="application/json",
            headers={"Content-Disposition": "attachment; filename=mien-review.json"},
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        cells = {**row, "flags": " | ".join(row["flags"])}
        writer.writerow({k: csv_cell(v) for k, v in cells.items()})
    return Response(
        buf.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": "attachment; filename=mien-review.csv"},
    )
