"""The review queue's query parts: its filter, its sort orders and its keyset cursor.

:meth:`mien.service.store.Store.review_page` builds one query from them on SQLite and
PostgreSQL alike. The cursor is opaque to clients: URL-safe base64 of ``[sort, key, id]`` (the
sort it was made for, the sort key of the last row, that row's id). A cursor that does not decode
to exactly that, or that was made for another sort, raises :class:`BadCursor` (the API answers 422
``InvalidParameter``). A cursor edited by hand can only move the page within the caller's own
items, since the tenant filter is applied on every page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, literal, or_, true

from mien.service.schema import jobs, results

Status = Literal["undecided", "approved", "rejected", "all"]
Sort = Literal["newest", "oldest", "severity"]
Kind = Literal["photo", "frame", "segment"]
STATUSES: tuple[str, ...] = ("undecided", "approved", "rejected", "all")
SORTS: tuple[str, ...] = ("newest", "oldest", "severity")
#: The API's item kinds and the ``results.kind`` they select ("photo" = a still image).
KINDS: dict[str, str] = {"photo": "image", "frame": "frame", "segment": "segment"}
MAX_LIMIT = 200
#: Weight of one flag of severity ``error`` in the severity sort; each flag of any severity
#: adds 1, so an item is ranked first by its errors, then by how many flags fired.
ERROR_WEIGHT = 100
_MAX_CURSOR = 200
_MAX_KEY = 2**63 - 1


class BadCursor(ValueError):
    """A cursor this service did not make (or made for another sort)."""


@dataclass(frozen=True)
class QueueFilter:
    """Which flagged results a queue page or its counts cover (``None``: no condition)."""

    key_ids: tuple[str, ...]
    rule: str | None = None
    profile: str | None = None
    job_id: str | None = None
    since: float | None = None
    until: float | None = None
    kind: str | None = None


def severity_of(flags: Sequence[Mapping[str, Any]]) -> int:
    """The severity sort key of a result's flags: ``ERROR_WEIGHT`` per flag of severity
    ``error`` plus 1 per flag (stored in ``results.severity`` when the result is added)."""
    errors = sum(1 for f in flags if f.get("severity") == "error")
    return errors * ERROR_WEIGHT + len(flags)


def conditions(f: QueueFilter) -> list[Any]:
    """The WHERE clauses of ``f`` (results joined with their jobs), without the status."""
    # "flagged = true" (not "IS TRUE"): PostgreSQL walks the queue's indexes only for "="
    where: list[Any] = [results.c.flagged == true(), jobs.c.key_id.in_(f.key_ids)]
    if f.rule is not None:
        where.append(results.c.flags.contains(json.dumps({"rule": f.rule})[1:-1], autoescape=True))
    if f.profile is not None:
        needle = json.dumps({"profile": f.profile})[1:-1]
        where.append(jobs.c.params.contains(needle, autoescape=True))
    if f.job_id is not None:
        where.append(results.c.job_id == f.job_id)
    if f.since is not None:
        where.append(results.c.created_at >= f.since)
    if f.until is not None:
        where.append(results.c.created_at < f.until)
    if f.kind is not None:
        where.append(results.c.kind == KINDS[f.kind])
    return where


def status_condition(status: str) -> Any:
    if status == "undecided":
        return results.c.decision.is_(None)
    if status in ("approved", "rejected"):
        return results.c.decision == status
    return literal(True)


def order(sort: str) -> list[Any]:
    if sort == "oldest":
        return [results.c.id.asc()]
    if sort == "severity":
        return [results.c.severity.desc(), results.c.id.desc()]
    return [results.c.id.desc()]


def after(sort: str, key: int, last_id: int) -> Any:
    """Rows that come after the row (``key``, ``last_id``) in ``sort`` order."""
    if sort == "oldest":
        return results.c.id > last_id
    if sort == "severity":
        sev = results.c.severity
        return or_(sev < key, and_(sev == key, results.c.id < last_id))
    return results.c.id < last_id


def sort_column(sort: str) -> Any:
    """The sort key a page query selects next to the id (0 where the id alone orders)."""
    return (results.c.severity if sort == "severity" else literal(0)).label("sort_key")


def encode_cursor(sort: str, key: int, last_id: int) -> str:
    raw = json.dumps([sort, key, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[int, int]:
    """(key, id) of a cursor made by :func:`encode_cursor` for ``sort``; else BadCursor."""
    if not cursor or len(cursor) > _MAX_CURSOR:
        raise BadCursor("the cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, binascii.Error) as e:
        raise BadCursor("the cursor is not one this service made") from e
    if (
        not isinstance(value, list)
        or len(value) != 3
        or value[0] not in SORTS
        or not all(type(v) is int and 0 <= v <= _MAX_KEY for v in value[1:])
    ):
        raise BadCursor("the cursor is not one this service made")
    if value[0] != sort:
        raise BadCursor(f"the cursor was made for sort={value[0]}, not sort={sort}")
    return int(value[1]), int(value[2])


def as_filter(key_ids: Sequence[str], **fields: Any) -> QueueFilter:
    """A :class:`QueueFilter`; an unknown kind raises ValueError."""
    kind = fields.get("kind")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    return QueueFilter(key_ids=tuple(key_ids), **fields)
