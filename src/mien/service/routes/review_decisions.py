"""Decisions on review items as an append-only history: one decision, bulk decisions, an
item's history, the export (CSV or JSON, with the history), and the admins' list of reviewer
accounts.

Every decision is appended (``review_decisions``); the item keeps the latest, whether its
reviewers disagree and how many decisions it has. ``clear`` undoes: the item is undecided
again and its history keeps everything. Callers act through :class:`mien.service.reviewers
.Reviewer`: an API key names the reviewer in the body, a session's account signs itself."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mien.service import webhooks
from mien.service.problem import Problem, responses
from mien.service.reviewers import NAME_PATTERN, Admin, AnyReviewer, Reviewer, session_reviewer
from mien.service.routes.review import (
    DECISIONS,
    MAX_NOTE,
    NOTE_PATTERN,
    ItemId,
    ReviewItem,
    iso,
    review_item,
)
from mien.service.routes.review_login import no_store
from mien.service.rows import Actor, DecisionRow
from mien.service.state import State
from mien.service.store import MAX_ID, Store

router = APIRouter(tags=["review"], include_in_schema=False)
api = APIRouter(tags=["review"])

MAX_BULK = 500

DecisionName = Literal["approve", "reject", "clear"]


class Decision(BaseModel):
    decision: DecisionName
    reviewer: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="who decided; required with an API key, ignored for a signed-in account",
    )
    note: str | None = Field(None, max_length=MAX_NOTE, pattern=NOTE_PATTERN)


class BulkDecision(Decision):
    item_ids: list[int] = Field(min_length=1, max_length=MAX_BULK)


class BulkResult(BaseModel):
    decided: list[int]
    not_found: list[int]


class HistoryEntry(BaseModel):
    id: int
    decision: Literal["approved", "rejected", "cleared"]
    actor_kind: Literal["reviewer", "key"]
    reviewer: str
    key_id: str | None
    note: str | None
    at: str


class ReviewerInfo(BaseModel):
    name: str
    role: Literal["reviewer", "admin"]
    disabled: bool
    keys: list[str]


def _entry(row: DecisionRow) -> HistoryEntry:
    return HistoryEntry(
        id=int(row.id),
        decision=row.decision,  # type: ignore[arg-type]
        actor_kind=row.actor_kind,  # type: ignore[arg-type]
        reviewer=row.reviewer_name,
        key_id=row.key_id,
        note=row.note,
        at=iso(row.at) or "",
    )


def _actor(body: Decision, who: Reviewer) -> Actor:
    """The actor of a decision by ``who`` (an API key must state its reviewer)."""
    if who.kind == "key":
        if not body.reviewer:
            raise Problem(
                "InvalidParameter", "reviewer: a decision made with an API key names its reviewer"
            )
        name = body.reviewer
    else:
        name = who.name
    return Actor(who.kind, name, who.reviewer_id, who.key_id, body.note)


@api.post(
    "/v1/review/items/{result_id}/decision",
    summary="Approve, reject or clear (undo) a flagged result; appended to its history",
    responses=responses(401, 403, 404, 422),
)
def decide(
    body: Decision,
    st: State,
    who: AnyReviewer,
    result_id: int = ItemId,
) -> ReviewItem:
    actor = _actor(body, who)
    if not st.store.append_decision(
        result_id, DECISIONS[body.decision], actor, key_ids=who.key_ids
    ):
        raise Problem("NotFound", f"no flagged item {result_id}")
    webhooks.decisions_made(st.store, [result_id], DECISIONS[body.decision], actor)
    row = st.store.result_with_media(result_id, key_ids=who.key_ids)
    assert row is not None
    return review_item(row)


@api.post(
    "/v1/review/decisions",
    summary=f"One decision on up to {MAX_BULK} flagged results, in one transaction",
    responses=responses(401, 403, 422),
)
def decide_many(body: BulkDecision, st: State, who: AnyReviewer) -> BulkResult:
    if any(not 0 < i <= MAX_ID for i in body.item_ids):
        raise Problem("InvalidParameter", f"item_ids: each id is from 1 to {MAX_ID}")
    actor = _actor(body, who)
    done = st.store.append_decisions(
        body.item_ids, DECISIONS[body.decision], actor, key_ids=who.key_ids
    )
    webhooks.decisions_made(st.store, done, DECISIONS[body.decision], actor)
    found = set(done)
    missing = [i for i in dict.fromkeys(body.item_ids) if i not in found]
    return BulkResult(decided=done, not_found=missing)


@api.get(
    "/v1/review/items/{result_id}/history",
    summary="Every decision on a flagged result, oldest first",
    responses=responses(401, 404),
)
def history(st: State, who: AnyReviewer, result_id: int = ItemId) -> list[HistoryEntry]:
    rows = st.store.history(result_id, key_ids=who.key_ids)
    if rows is None:
        raise Problem("NotFound", f"no flagged item {result_id}")
    return [_entry(r) for r in rows]


@api.get(
    "/v1/review/reviewers",
    summary="Reviewer accounts and the API keys (tenants) assigned to them (admins only)",
    responses=responses(401, 403),
)
def reviewer_accounts(st: State, _admin: Admin) -> list[ReviewerInfo]:
    return [
        ReviewerInfo(
            name=row.name,
            role=row.role,  # type: ignore[arg-type]
            disabled=row.disabled_at is not None,
            keys=keys,
        )
        for row, keys in st.store.list_reviewers()
    ]


# -- export ----------------------------------------------------------------------------------

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
    "disagreement",
    "decision_count",
    "history",
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
    summary="Every flagged result with its latest decision and decision history, CSV or JSON",
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}}, "description": "export"},
        **responses(401),
    },
    response_class=Response,
)
def export(
    st: State,
    who: AnyReviewer,
    format: str = Query("json", pattern="^(csv|json)$"),
) -> Response:
    return _export(st.store, who.key_ids, format)


@router.get("/review/export")
def export_page(
    request: Request, st: State, format: str = Query("json", pattern="^(csv|json)$")
) -> Response:
    """The export links of the review page (the session's tenants); same content as
    ``/v1/review/export``."""
    who = session_reviewer(request)
    if who is None:
        raise Problem("Unauthorized", "sign in on /review first")
    return no_store(_export(st.store, who.key_ids, format))


def _export(store: Store, key_ids: tuple[str, ...], format: str) -> Response:
    histories = store.histories(key_ids=key_ids)
    rows: list[dict[str, Any]] = []
    for r in store.decisions(key_ids=key_ids):
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
                "decided_at": iso(r.decided_at),
                "disagreement": bool(r.disagreement),
                "decision_count": int(r.decision_count),
                "history": [
                    _entry(h).model_dump(exclude={"id"}) for h in histories.get(int(r.id), [])
                ],
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
        cells = {
            **row,
            "flags": " | ".join(row["flags"]),
            "history": json.dumps(row["history"], ensure_ascii=False),
        }
        writer.writerow({k: csv_cell(v) for k, v in cells.items()})
    return Response(
        buf.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": "attachment; filename=mien-review.csv"},
    )
