"""The rows the store answers: one frozen dataclass per table (and per join it reads).

Fields mirror the columns of :mod:`mien.service.schema` (times are UNIX seconds; ``params``,
``data`` and ``flags`` are JSON text, decoded where an answer is built). The routes turn rows into
their JSON answers; nothing else changes a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

_R = TypeVar("_R", bound="Row")


class Row:
    """A row of the store: a frozen record of the columns a query answers."""

    @classmethod
    def of(cls: type[_R], mapping: Mapping[Any, Any]) -> _R:
        """The row of a result mapping that holds (at least) every column of ``cls``."""
        return cls(**{name: mapping[name] for name in _names(cls)})


def _names(cls: type[Row]) -> tuple[str, ...]:
    """The columns of a row class (its dataclass fields)."""
    return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]


@dataclass(frozen=True)
class JobRow(Row):
    id: str
    key_id: str
    kind: str
    status: str
    params: str
    idempotency_key: str | None
    request_hash: str
    total_items: int
    done_items: int
    failed_items: int
    error_code: str | None
    error_message: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    worker: str | None
    attempts: int
    retention_s: int
    expires_at: float | None
    media_purged: bool
    callback_url: str | None = None  # where the job's webhooks go (None: nowhere)


@dataclass(frozen=True)
class JobItemRow(Row):
    job_id: str
    idx: int
    name: str
    media_file: str | None
    status: str
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True)
class ResultRow(Row):
    id: int
    job_id: str
    item_idx: int
    seq: int
    kind: str
    data: str
    flags: str
    flagged: bool
    created_at: float
    decision: str | None
    reviewer: str | None
    reviewer_key: str | None
    decided_at: float | None
    disagreement: bool
    decision_count: int


@dataclass(frozen=True)
class ReviewRow(ResultRow):
    """A result with its item's name and media file and its job's media state (review)."""

    name: str
    media_file: str | None
    media_purged: bool


@dataclass(frozen=True)
class SessionRow(Row):
    id_hash: str
    reviewer_id: int
    reviewer: str
    role: str
    csrf_token: str
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class DeliveryRow(Row):
    """One webhook event and its delivery (``webhook_deliveries``)."""

    id: int
    event_id: str
    key_id: str
    job_id: str
    event: str
    url: str
    body: str
    status: str
    attempts: int
    next_try_at: float | None
    claimed_until: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    finished_at: float | None


@dataclass(frozen=True)
class ClaimedDelivery(DeliveryRow):
    """A delivery a sender holds, with the webhook secret of its key (None: none yet)."""

    webhook_secret: str | None


@dataclass(frozen=True)
class ReviewerRow(Row):
    id: int
    name: str
    role: str
    password_hash: str | None
    created_at: float
    disabled_at: float | None
    failed_logins: int
    locked_until: float | None


@dataclass(frozen=True)
class Actor:
    """Who makes a review decision, as its history records it: ``kind`` ``"reviewer"`` (a
    signed-in account, ``reviewer_id``) or ``"key"`` (an API key, ``key_id``, which names the
    person deciding in ``reviewer_name``), with the decision's optional ``note``."""

    kind: str
    reviewer_name: str
    reviewer_id: int | None = None
    key_id: str | None = None
    note: str | None = None

    def columns(self) -> dict[str, Any]:
        """Its columns of a ``review_decisions`` row (those of :class:`DecisionRow`)."""
        return {
            "actor_kind": self.kind,
            "reviewer_id": self.reviewer_id,
            "reviewer_name": self.reviewer_name,
            "key_id": self.key_id,
            "note": self.note,
        }


@dataclass(frozen=True)
class DecisionRow(Row):
    """One entry of an item's decision history (``review_decisions``)."""

    id: int
    result_id: int
    decision: str
    actor_kind: str
    reviewer_id: int | None
    reviewer_name: str
    key_id: str | None
    note: str | None
    at: float
