"""The review page (``/review``, HTML) and the review queue of the JSON API
(``GET /v1/review/items``): flagged results and their latest decisions.

A reviewer account signs in on the page (:mod:`mien.service.routes.review_login`) and then works
with a server-side session (:mod:`mien.service.sessions`): the cookie holds the session id only,
every form carries the session's CSRF token. The JSON API takes an API key (its own tenant) or
that session (the tenants assigned to the account): :func:`mien.service.reviewers
.require_reviewer`. Decisions, history and export: :mod:`mien.service.routes.review_decisions`."""

from __future__ import annotations

import datetime as dt
import html
import json
from importlib import resources
from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from mien.service.auth import check_key, key_from_headers
from mien.service.media import job_dir
from mien.service.problem import Problem, responses
from mien.service.reviewers import AnyReviewer, of_session, session_reviewer
from mien.service.routes.common import in_thread
from mien.service.routes.review_login import login_page, no_store, template
from mien.service.rows import ReviewRow
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
    disagreement: bool
    decision_count: int


def review_item(row: ReviewRow) -> ReviewItem:
    data = json.loads(row.data)
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
        media_retained=bool(row.media_file) and not row.media_purged,
        decision=row.decision,
        reviewer=row.reviewer,
        decided_at=iso(row.decided_at),
        disagreement=bool(row.disagreement),
        decision_count=int(row.decision_count),
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
    return template("item.html").substitute(
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


def _viewer(request: Request) -> tuple[str, ...]:
    """The tenants of the review page's session, else of an API-key header (401 without)."""
    reviewer = session_reviewer(request)
    if reviewer is not None:
        return reviewer.key_ids
    return (check_key(request, key_from_headers(request)),)


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, st: State) -> Response:
    session = current_session(request)
    if session is None:
        return login_page(request, "", status=401)
    reviewer = of_session(st.store, session)
    items = [review_item(r) for r in st.store.flagged(key_ids=reviewer.key_ids, limit=500)]
    page = template("review.html").substitute(
        reviewer=html.escape(reviewer.name),
        csrf=session.csrf_token,
        count=len(items),
        items="\n".join(_render_item(it, session.csrf_token) for it in items),
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
    ok = await in_thread(
        st.store.append_decision,
        result_id,
        DECISIONS[decision],
        actor_kind="reviewer",
        reviewer_id=session.reviewer_id,
        reviewer_name=session.reviewer,
        key_id=None,
        note=None,
        key_ids=key_ids,
    )
    if not ok:
        raise Problem("NotFound", f"no flagged item {result_id}")
    return RedirectResponse(f"/review#item-{result_id}", status_code=303)


@router.get("/review/items/{result_id}/thumbnail")
def thumbnail(request: Request, st: State, result_id: int = ItemId) -> Response:
    row = st.store.result_with_media(result_id, key_ids=_viewer(request))
    if row is None or not row.flagged:
        raise Problem("NotFound", f"no flagged item {result_id}")
    if row.media_purged or not row.media_file:
        raise Problem("MediaPurged", "the picture is no longer retained")
    if row.kind != "image":
        raise Problem("NotFound", "thumbnails exist for image results only")
    path = job_dir(st.config.media_dir, row.job_id) / str(row.media_file)
    if not FilePath(path).is_file():
        raise Problem("MediaPurged", "the picture is no longer retained")
    data = annotated_thumbnail(path, json.loads(row.data))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/review/static/review.css")
def stylesheet() -> Response:
    css = (resources.files("mien.service") / "static" / "review.css").read_text("utf-8")
    return Response(css, media_type="text/css")


# -- JSON API --------------------------------------------------------------------------------


@api.get(
    "/v1/review/items",
    summary="Flagged results (from jobs run with a profile) and their review decisions",
    responses=responses(401),
)
def review_items(
    st: State,
    reviewer: AnyReviewer,
    undecided: bool = Query(False, description="only items nobody has decided on"),
    limit: int = Query(200, ge=1, le=1000),
) -> list[ReviewItem]:
    rows = st.store.flagged(key_ids=reviewer.key_ids, limit=limit, undecided_only=undecided)
    return [review_item(r) for r in rows]
