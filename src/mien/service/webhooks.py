"""Webhooks: signed POSTs to a job's ``callback_url`` when it ends, an item is flagged and a
review decision is made.

:func:`emit` records a delivery row (``webhook_deliveries``, status ``pending``); it never
opens a connection, so whoever emits (a job worker process, a request) is never held up by a
receiver. The server's :class:`mien.service.webhook_sender.WebhookSender` thread POSTs the
pending rows, retries them with backoff and marks them ``delivered`` or ``failed``.

Every attempt carries ``Mien-Webhook-Id`` (the event id), ``Mien-Webhook-Timestamp`` (UNIX
seconds) and ``Mien-Signature: t=<unix>,v1=<hex>``, the HMAC-SHA256 of ``"<t>.<body>"`` with
the webhook secret of the job's API key (a signing secret, not the API key; see
docs/review.md#webhooks for the receiver's side).

A callback address obeys the service's outbound policy (:func:`check_callback_url`): http or
https only, and no loopback, private, link-local... address unless the operator allowed it
(``--allow-stream-hosts``); the sender checks the resolved address again at every attempt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, func, insert, or_, select, update

from mien.live.outbound import OutboundPolicy, OutboundRefused
from mien.service.problem import Problem
from mien.service.rows import Actor, ClaimedDelivery, DeliveryRow
from mien.service.schema import api_keys, jobs, results, webhook_deliveries
from mien.service.store import Store

log = logging.getLogger("mien.service.webhooks")

EVENTS = ("job.finished", "item.flagged", "review.decided")
SECRET_PREFIX = "whsec_"
MAX_URL = 2000
#: How old (or how far in the future) a signed timestamp a receiver should accept.
REPLAY_WINDOW_S = 300


# -- the signing secret -------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def key_secret(store: Store, key_id: str, *, rotate: bool = False) -> str | None:
    """The webhook secret of API key ``key_id`` (made now if the key has none yet, or when
    ``rotate``); None when there is no such key."""
    with store.engine.begin() as c:
        missing = api_keys.c.webhook_secret.is_(None)
        where = api_keys.c.id == key_id if rotate else and_(api_keys.c.id == key_id, missing)
        c.execute(update(api_keys).where(where).values(webhook_secret=new_secret()))
        found = c.execute(select(api_keys.c.webhook_secret).where(api_keys.c.id == key_id)).first()
    return str(found[0]) if found else None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret`` (its UTF-8 bytes)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


# -- the callback address -----------------------------------------------------------------


def check_callback_url(url: str, policy: OutboundPolicy) -> str:
    """``url`` (stripped) when webhooks may be sent to it under ``policy``, else a Problem
    ``CallbackRefused``: not http(s), credentials in it, no host, or an address the policy
    refuses (resolved now; the sender resolves and checks again at every attempt)."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise Problem("CallbackRefused", f"callback_url is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Problem("CallbackRefused", "callback_url is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Problem("CallbackRefused", "callback_url must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise Problem("CallbackRefused", "callback_url may not hold credentials (user:pass@)")
    try:
        policy.resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except OutboundRefused as exc:
        raise Problem("CallbackRefused", f"callback_url refused: {exc.reason}") from None
    return url


# -- events ---------------------------------------------------------------------------------


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")


def emit(store: Store, key_id: str, job_id: str, event: str, payload: dict[str, Any]) -> str | None:
    """Queue ``event`` for the callback address of job ``job_id`` (of API key ``key_id``): the
    event id, or None when the job has no callback address."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    with store.engine.connect() as c:
        url = c.execute(
            select(jobs.c.callback_url).where(jobs.c.id == job_id, jobs.c.key_id == key_id)
        ).scalar()
    if not url:
        return None
    row = _delivery(key_id, job_id, str(url), event, payload, time.time())
    with store.engine.begin() as c:
        c.execute(insert(webhook_deliveries).values(**row))
    return str(row["event_id"])


def _delivery(
    key_id: str, job_id: str, url: str, event: str, payload: dict[str, Any], now: float
) -> dict[str, Any]:
    """A new pending ``webhook_deliveries`` row of ``event`` for ``url``."""
    event_id = uuid.uuid4().hex
    body = {"id": event_id, "event": event, "created_at": _iso(now), "data": payload}
    return {
        "event_id": event_id,
        "key_id": key_id,
        "job_id": job_id,
        "event": event,
        "url": url,
        "body": json.dumps(body, separators=(",", ":"), allow_nan=False),
        "status": "pending",
        "attempts": 0,
        "next_try_at": now,
        "created_at": now,
    }


def _logged(what: str, call: Any, *args: Any) -> None:
    """Run an emitting helper for a caller that must go on whatever happens (a job worker):
    a failure is logged loudly, never raised."""
    try:
        call(*args)
    except Exception:
        log.exception("webhook %s could not be recorded", what)


def job_finished(store: Store, job_id: str) -> None:
    """``job.finished`` for a job that has just reached its final status."""
    _logged("job.finished", _job_finished, store, job_id)


def _job_finished(store: Store, job_id: str) -> None:
    job = store.get_job(job_id)
    if job is None or not job.callback_url:
        return
    with store.engine.connect() as c:
        n_results, n_flagged = c.execute(
            select(func.count(), func.count().filter(results.c.flagged.is_(True))).where(
                results.c.job_id == job_id
            )
        ).one()
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    payload = {
        "job_id": job_id,
        "kind": job.kind,
        "status": job.status,
        "error": error,
        "counts": {
            "items": int(job.total_items),
            "done": int(job.done_items),
            "failed": int(job.failed_items),
            "results": int(n_results),
            "flagged": int(n_flagged),
        },
    }
    emit(store, str(job.key_id), job_id, "job.finished", payload)


def items_flagged(store: Store, job_id: str, idx: int, rows: Sequence[dict[str, Any]]) -> None:
    """``item.flagged`` for each row with flags among ``rows``, just stored for item ``idx``."""
    if any(r.get("flags") for r in rows):
        _logged("item.flagged", _items_flagged, store, job_id, idx, rows)


def _items_flagged(store: Store, job_id: str, idx: int, rows: Sequence[dict[str, Any]]) -> None:
    job = store.get_job(job_id)
    if job is None or not job.callback_url:
        return
    seqs = [int(r["seq"]) for r in rows if r.get("flags")]
    with store.engine.connect() as c:
        found = c.execute(
            select(results.c.id, results.c.seq, results.c.kind, results.c.flags).where(
                results.c.job_id == job_id,
                results.c.item_idx == idx,
                results.c.seq.in_(seqs),
                results.c.flagged.is_(True),
            )
        ).all()
    for result_id, seq, kind, flags_json in sorted(found):
        flags = json.loads(flags_json)
        payload = {
            "result_id": int(result_id),
            "job_id": job_id,
            "item": idx,
            "seq": int(seq),
            "kind": kind,
            "rules": sorted({str(f.get("rule")) for f in flags}),
            "flags": flags,
        }
        emit(store, str(job.key_id), job_id, "item.flagged", payload)


def decisions_made(store: Store, result_ids: Sequence[int], decision: str, actor: Actor) -> None:
    """``review.decided`` for each of ``result_ids``, just decided by ``actor``
    (:meth:`mien.service.store.Store.append_decisions`): one query for all of them
    and one insert for those whose job has a callback address (a bulk decision of 500 items
    costs two statements, not a thousand)."""
    who = {"kind": actor.kind, "name": actor.reviewer_name, "key_id": actor.key_id}
    _logged("review.decided", _decisions_made, store, list(result_ids), decision, who)


def _decisions_made(
    store: Store, result_ids: list[int], decision: str, actor: dict[str, Any]
) -> None:
    if not result_ids:
        return
    with store.engine.connect() as c:
        found = c.execute(
            select(results.c.id, results.c.job_id, jobs.c.key_id, jobs.c.callback_url)
            .join(jobs, jobs.c.id == results.c.job_id)
            .where(results.c.id.in_(result_ids), jobs.c.callback_url.is_not(None))
        ).all()
    now = time.time()
    rows = [
        _delivery(
            str(key_id),
            str(job_id),
            str(url),
            "review.decided",
            {"result_id": int(rid), "job_id": job_id, "decision": decision, "actor": actor},
            now,
        )
        for rid, job_id, key_id, url in sorted(found)
        if url
    ]
    if rows:
        with store.engine.begin() as c:
            c.execute(insert(webhook_deliveries), rows)


# -- the delivery rows (the sender and the delivery log) ------------------------------------


def claim_due(store: Store, limit: int, hold_s: float) -> list[ClaimedDelivery]:
    """Up to ``limit`` pending deliveries whose time has come and that no sender holds; each
    is held for ``hold_s`` seconds (a sender that dies lets it go when that runs out) and its
    attempt is counted. Rows carry the key's webhook secret."""
    now = time.time()
    d = webhook_deliveries.c
    due = and_(
        d.status == "pending",
        d.next_try_at <= now,
        or_(d.claimed_until.is_(None), d.claimed_until < now),
    )
    with store.engine.connect() as c:
        ids = (
            c.execute(
                select(webhook_deliveries.c.id)
                .where(due)
                .order_by(webhook_deliveries.c.next_try_at)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    claimed: list[ClaimedDelivery] = []
    for delivery_id in ids:
        with store.engine.begin() as c:
            taken = c.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id, due)
                .values(claimed_until=now + hold_s, attempts=webhook_deliveries.c.attempts + 1)
            ).rowcount
            if not taken:
                continue  # another sender got it first
            row = (
                c.execute(
                    select(webhook_deliveries, api_keys.c.webhook_secret)
                    .join(api_keys, api_keys.c.id == webhook_deliveries.c.key_id)
                    .where(webhook_deliveries.c.id == delivery_id)
                )
                .mappings()
                .one()
            )
        claimed.append(ClaimedDelivery.of(row))
    return claimed


def record_attempt(
    store: Store,
    delivery_id: int,
    *,
    status_code: int | None,
    error: str | None,
    next_try_at: float | None,
) -> None:
    """Store one attempt's outcome: delivered (no error), pending again until ``next_try_at``,
    or failed for good (an error and no next try)."""
    status = "delivered" if error is None else "pending" if next_try_at is not None else "failed"
    final = status != "pending"
    with store.engine.begin() as c:
        c.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery_id)
            .values(
                status=status,
                last_status_code=status_code,
                last_error=error[:1000] if error else None,
                next_try_at=None if final else next_try_at,
                claimed_until=None,
                finished_at=time.time() if final else None,
            )
        )


def job_deliveries(
    store: Store, job_id: str, after: int, limit: int
) -> tuple[list[DeliveryRow], int | None]:
    """The deliveries of job ``job_id`` after delivery id ``after``, oldest first, and the id
    the next page starts after (None: this is the last page)."""
    return store.job_rows_page(webhook_deliveries, DeliveryRow, job_id, after, limit)
