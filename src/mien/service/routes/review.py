"""The review page (``/review``, HTML) and the review queue of the JSON API
(``GET /v1/review/items``): flagged results, filtered and paged, with their latest decisions.

A reviewer account signs in on the page (:mod:`mien.service.routes.review_login`) and then works
with a server-side session (:mod:`mien.service.sessions`): the cookie holds the session id only;
the page's script (``static/review.js``) calls the JSON API with that session and its CSRF token
in ``X-CSRF-Token``. The JSON API takes an API key (its own tenant) or that session (the tenants
assigned to the account): :func:`mien.service.reviewers.require_reviewer`. Decisions, history
and export: :mod:`mien.service.routes.review_decisions`; video media, filmstrips and live events:
:mod:`mien.service.routes.review_media`."""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
from importlib import resources
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mien.service import webhooks
from mien.service.auth import check_key, key_from_headers
from mien.service.media import job_dir
from mien.service.problem import Problem, responses
from mien.service.queue import MAX_LIMIT, BadCursor, Kind, Sort, Status
from mien.service.reviewers import AnyReviewer, of_session, session_reviewer
from mien.service.routes.common import in_thread
from mien.service.routes.review_login import login_page, no_store, template
from mien.service.rows import Actor, DecisionRow, ReviewRow
from mien.service.sessions import CSRF_FIELD, check_csrf, current_session
from mien.service.state import State
from mien.service.store import MAX_ID
from mien.service.thumbnails import annotated_thumbnail

router = APIRouter(tags=["review"], include_in_schema=False)
api = APIRouter(tags=["review"])

#: A review item (result) id: 1 to 2**63 - 1; others answer 422 ``InvalidParameter``.
ItemId: Any = Path(ge=1, le=MAX_ID, description="the review item (result) id")
#: The decisions a request names, and what the history stores ("clear" = undo).
DECISIONS = {"approve": "approved", "reject": "rejected", "clear": "cleared"}
#: A decision's note: up to MAX_NOTE characters; it may span lines (tab, line feed, carriage
#: return) but holds no other control character.
NOTE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
MAX_NOTE = 2000


def iso(t: float | None) -> str | None:
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


#: A rule id or profile name in a queue filter.
RULE_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"


def review_item(row: ReviewRow) -> ReviewItem:
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
        decided_at=iso(row.decided_at),
        disagreement=bool(row.disagreement),
        decision_count=int(row.decision_count),
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


def _thumb(it: ReviewItem) -> str:
    if it.kind == "segment" and it.media_url:
        # a media fragment: the browser starts at start_s and stops at end_s, without script
        start, end = it.start_s or 0.0, max(it.end_s or 0.0, (it.start_s or 0.0) + 0.5)
        return (
            f"<video class='player' src='{it.media_url}#t={start:.3f},{end:.3f}' controls muted "
            f"preload='metadata'></video>"
            f"<img class='filmstrip' src='{it.filmstrip_url}' alt='filmstrip'>"
        )
    if it.media_retained and it.kind == "image":
        return (
            f"<img src='/review/items/{it.id}/thumbnail' alt='annotated picture of "
            f"{html.escape(it.name)}' loading='lazy'>"
        )
    if it.kind == "segment":
        return "<p class='purged'>segment video not retained</p>"
    if it.kind != "image":
        return f"<p class='purged'>video {html.escape(it.kind)} {it.seq} (no thumbnail)</p>"
    return "<p class='purged'>picture not retained (retention ended or job deleted)</p>"


def _render_item(it: ReviewItem, csrf: str) -> str:
    if it.decision:
        decision_text = (
            f"<span class='state'>{html.escape(it.decision)}</span> by "
            f"<span class='by'>{html.escape(it.reviewer or '')}</span> at {it.decided_at}"
        )
    else:
        decision_text = "<span class='state'>undecided</span>"
    if it.disagreement:
        decision_text += " <a class='badge disagree' href='#history'>reviewers disagree</a>"
    segment = f" · {it.faces} face(s)"  # (a segment is one face track)
    if it.kind == "segment":
        track = "" if it.track_id is None else f" · track {it.track_id}"
        segment = f" · {it.start_s or 0:.1f} s to {it.end_s or 0:.1f} s{track}"
    return template("item.html").substitute(
        id=it.id,
        csrf=csrf,
        state=it.decision or "undecided",
        decision=it.decision or "",
        thumb=_thumb(it),
        name=html.escape(it.name),
        job=html.escape(it.job_id[:12]),
        item=it.item,
        segment=segment,
        profile=html.escape(it.profile or "-"),
        reasons="".join(_reason(f) for f in it.flags),
        decision_text=decision_text,
    )


def _render_history(rows: list[DecisionRow]) -> str:
    """An item's decisions, oldest first, as a table (the page's ``#history``)."""
    if not rows:
        return "<p class='empty'>No decision yet.</p>"
    lines = []
    for r in rows:
        who = html.escape(r.reviewer_name)
        if r.actor_kind == "key":
            who += f" <span class='sev'>(API key {html.escape(r.key_id or '')})</span>"
        lines.append(
            f"<tr data-decision='{html.escape(r.decision)}'><td>{iso(r.at)}</td>"
            f"<td class='who'>{who}</td><td class='what'>{html.escape(r.decision)}</td>"
            f"<td class='note'>{html.escape(r.note or '')}</td></tr>"
        )
    return (
        "<table class='history'><thead><tr><th>when (UTC)</th><th>who</th><th>decision</th>"
        f"<th>note</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def _note(value: Any) -> str | None:
    """The note of the item page's form (None when empty); 422 when too long or unprintable."""
    note = str(value or "").strip()
    if not note:
        return None
    if len(note) > MAX_NOTE or not re.match(NOTE_PATTERN, note):
        raise Problem(
            "InvalidParameter", f"note: at most {MAX_NOTE} characters, no control characters"
        )
    return note


def _viewer(request: Request) -> tuple[str, ...]:
    """The tenants of the review page's session, else of an API-key header (401 without)."""
    reviewer = session_reviewer(request)
    if reviewer is not None:
        return reviewer.key_ids
    return (check_key(request, key_from_headers(request)),)


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, st: State) -> Response:
    """The queue page: a shell that static/review.js fills from ``GET /v1/review/items``."""
    session = current_session(request)
    if session is None:
        return login_page(request, "", status=401)
    reviewer = of_session(st.store, session)
    page = template("review.html").substitute(
        reviewer=html.escape(reviewer.name), csrf=session.csrf_token
    )
    return no_store(HTMLResponse(page))


@router.get("/review/items/{result_id}", response_class=HTMLResponse)
def item_page(request: Request, st: State, result_id: int = ItemId) -> Response:
    """One item on its own page (a link to share; its forms work without JavaScript)."""
    session = current_session(request)
    if session is None:
        return login_page(request, "", status=401)
    reviewer = of_session(st.store, session)
    row = st.store.result_with_media(result_id, key_ids=reviewer.key_ids)
    if row is None or not row.flagged:
        raise Problem("NotFound", f"no flagged item {result_id}")
    page = template("item_page.html").substitute(
        reviewer=html.escape(reviewer.name),
        item=_render_item(review_item(row), session.csrf_token),
        history=_render_history(st.store.history(result_id, key_ids=reviewer.key_ids) or []),
    )
    return no_store(HTMLResponse(page))


@router.post("/review/items/{result_id}")
async def decide_form(request: Request, st: State, result_id: int = ItemId) -> Response:
    """The page's approve/reject/undo form (appends to the item's history)."""
    session = await in_thread(current_session, request)
    if session is None:
        return login_page(request, "Sign in first.", status=401)
    form = await request.form()
    check_csrf(session.csrf_token, form.get(CSRF_FIELD))
    decision = str(form.get("decision") or "")
    if decision not in DECISIONS:
        raise Problem("InvalidParameter", "decision must be 'approve', 'reject' or 'clear'")
    key_ids = await in_thread(st.store.reviewer_key_ids, session.reviewer_id)
    actor = Actor("reviewer", session.reviewer, session.reviewer_id, note=_note(form.get("note")))
    decided = await in_thread(
        st.store.append_decision, result_id, DECISIONS[decision], actor, key_ids=key_ids
    )
    if not decided:
        raise Problem("NotFound", f"no flagged item {result_id}")
    await in_thread(webhooks.decisions_made, st.store, [result_id], DECISIONS[decision], actor)
    return RedirectResponse(f"/review/items/{result_id}#history", status_code=303)


@router.get("/review/items/{result_id}/thumbnail")
def thumbnail(request: Request, st: State, result_id: int = ItemId) -> Response:
    key_ids = _viewer(request)
    row = st.store.result_with_media(result_id, key_ids=key_ids)
    if row is None or not row.flagged:
        raise Problem("NotFound", f"no flagged item {result_id}")
    if row.kind == "segment":  # the keyframe of a video segment
        from mien.service.routes.review_media import segment_thumbnail  # (imports this module)

        return segment_thumbnail(st, result_id, key_ids)
    if row.media_purged or not row.media_file:
        raise Problem("MediaPurged", "the picture is no longer retained")
    if row.kind != "image":
        raise Problem("NotFound", "thumbnails exist for image results only")
    path = job_dir(st.config.media_dir, row.job_id) / str(row.media_file)
    if not FilePath(path).is_file():
        raise Problem("MediaPurged", "the picture is no longer retained")
    data = annotated_thumbnail(path, json.loads(row.data))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


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
    reviewer: AnyReviewer,
    status: Annotated[
        Status | None, Query(description="undecided, approved, rejected, all (default)")
    ] = None,
    undecided: bool = Query(False, description="old alias of status=undecided"),
    rule: str | None = Query(None, pattern=RULE_PATTERN, description="a rule id that fired"),
    profile: str | None = Query(None, pattern=RULE_PATTERN, description="the job's profile"),
    job_id: str | None = Query(None, pattern="^[0-9a-f]{32}$"),
    since: Annotated[
        dt.datetime | float | None,
        Query(description="created at/after: ISO 8601, or UNIX seconds"),
    ] = None,
    until: Annotated[
        dt.datetime | float | None,
        Query(description="created before: ISO 8601, or UNIX seconds"),
    ] = None,
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
        items=[review_item(r) for r in rows], next_cursor=next_cursor, counts=ReviewCounts(**counts)
    )


def _seconds(t: dt.datetime | float | None) -> float | None:
    if t is None:
        return None
    if isinstance(t, float):
        if not math.isfinite(t):
            raise Problem("InvalidParameter", "since/until: a finite time is needed")
        return t
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()
