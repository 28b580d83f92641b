"""The store's reviewer accounts: accounts, their tenants (API keys), one-time sign-in links
and the failed-sign-in counter that locks an account.

:class:`ReviewerStore` is a part of :class:`mien.service.store.Store` (a mixin): it uses the
store's engine. Only hashes are stored: the password's scrypt hash, the link token's SHA-256.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, select, update

from mien.service.rows import ReviewerRow
from mien.service.schema import api_keys, review_sessions, reviewer_keys, reviewer_links, reviewers


class ReviewerStore:
    engine: Engine
    is_postgres: bool

    def add_reviewer(self, name: str, role: str, password_hash: str | None) -> int:
        with self.engine.begin() as c:
            new_id = c.execute(
                insert(reviewers)
                .values(name=name, role=role, password_hash=password_hash, created_at=time.time())
                .returning(reviewers.c.id)
            ).scalar_one()
        return int(new_id)

    def get_reviewer(self, name: str) -> ReviewerRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(reviewers).where(reviewers.c.name == name)).mappings().first()
        return ReviewerRow.of(row) if row else None

    def list_reviewers(self) -> list[tuple[ReviewerRow, list[str]]]:
        """Every account (by name) with the key ids assigned to it."""
        with self.engine.connect() as c:
            rows = c.execute(select(reviewers).order_by(reviewers.c.name)).mappings().all()
            pairs = c.execute(
                select(reviewer_keys.c.reviewer_id, reviewer_keys.c.key_id).order_by(
                    reviewer_keys.c.key_id
                )
            ).all()
        keys: dict[int, list[str]] = {}
        for reviewer_id, key_id in pairs:
            keys.setdefault(int(reviewer_id), []).append(str(key_id))
        return [(ReviewerRow.of(r), keys.get(int(r["id"]), [])) for r in rows]

    def assign_key(self, reviewer_id: int, key_id: str) -> bool:
        """Let the reviewer see the items of ``key_id``; False when there is no such key.
        Assigning twice changes nothing."""
        with self.engine.begin() as c:
            if c.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is None:
                return False
            done = c.execute(
                select(reviewer_keys.c.key_id).where(
                    reviewer_keys.c.reviewer_id == reviewer_id, reviewer_keys.c.key_id == key_id
                )
            ).first()
            if done is None:
                c.execute(insert(reviewer_keys).values(reviewer_id=reviewer_id, key_id=key_id))
        return True

    def unassign_key(self, reviewer_id: int, key_id: str) -> bool:
        with self.engine.begin() as c:
            res = c.execute(
                delete(reviewer_keys).where(
                    reviewer_keys.c.reviewer_id == reviewer_id, reviewer_keys.c.key_id == key_id
                )
            )
        return bool(res.rowcount)

    def reviewer_key_ids(self, reviewer_id: int) -> tuple[str, ...]:
        """The tenants the reviewer sees now: assigned keys that are not revoked."""
        q = (
            select(reviewer_keys.c.key_id)
            .join(api_keys, api_keys.c.id == reviewer_keys.c.key_id)
            .where(reviewer_keys.c.reviewer_id == reviewer_id, api_keys.c.revoked_at.is_(None))
            .order_by(reviewer_keys.c.key_id)
        )
        with self.engine.connect() as c:
            return tuple(str(r[0]) for r in c.execute(q))

    def disable_reviewer(self, reviewer_id: int) -> bool:
        """Disable the account and end its sessions and unused links at once."""
        with self.engine.begin() as c:
            res = c.execute(
                update(reviewers)
                .where(reviewers.c.id == reviewer_id, reviewers.c.disabled_at.is_(None))
                .values(disabled_at=time.time())
            )
            c.execute(delete(review_sessions).where(review_sessions.c.reviewer_id == reviewer_id))
            c.execute(delete(reviewer_links).where(reviewer_links.c.reviewer_id == reviewer_id))
        return bool(res.rowcount)

    # -- one-time links ----------------------------------------------------------------------

    def add_link(self, token_hash: str, reviewer_id: int, ttl_s: float) -> None:
        """Store a link (and drop the expired and used ones)."""
        now = time.time()
        with self.engine.begin() as c:
            c.execute(
                delete(reviewer_links).where(
                    (reviewer_links.c.expires_at <= now) | reviewer_links.c.used_at.isnot(None)
                )
            )
            c.execute(
                insert(reviewer_links).values(
                    token_hash=token_hash,
                    reviewer_id=reviewer_id,
                    created_at=now,
                    expires_at=now + ttl_s,
                )
            )

    def _link_account(self, c: Any, token_hash: str) -> ReviewerRow | None:
        row = (
            c.execute(
                select(reviewers)
                .join(reviewer_links, reviewer_links.c.reviewer_id == reviewers.c.id)
                .where(
                    reviewer_links.c.token_hash == token_hash,
                    reviewers.c.disabled_at.is_(None),
                )
            )
            .mappings()
            .first()
        )
        return ReviewerRow.of(row) if row else None

    def peek_link(self, token_hash: str) -> ReviewerRow | None:
        """The enabled account of an unused, unexpired link, which stays unused."""
        with self.engine.connect() as c:
            live = c.execute(
                select(reviewer_links.c.token_hash).where(
                    reviewer_links.c.token_hash == token_hash,
                    reviewer_links.c.used_at.is_(None),
                    reviewer_links.c.expires_at > time.time(),
                )
            ).first()
            return self._link_account(c, token_hash) if live else None

    def use_link(self, token_hash: str) -> ReviewerRow | None:
        """The enabled account of an unused, unexpired link, which is used up by this call
        (one UPDATE: two requests with the same link cannot both succeed)."""
        now = time.time()
        with self.engine.begin() as c:
            used = c.execute(
                update(reviewer_links)
                .where(
                    reviewer_links.c.token_hash == token_hash,
                    reviewer_links.c.used_at.is_(None),
                    reviewer_links.c.expires_at > now,
                )
                .values(used_at=now)
            ).rowcount
            if not used:
                return None
            return self._link_account(c, token_hash)

    # -- failed sign-ins -----------------------------------------------------------------------

    def login_failed(self, reviewer_id: int, *, max_failures: int, lock_s: float) -> None:
        """Count a failed password; the ``max_failures``-th in a row locks the account for
        ``lock_s`` seconds (and the count starts again)."""
        with self.engine.begin() as c:
            c.execute(
                update(reviewers)
                .where(reviewers.c.id == reviewer_id)
                .values(failed_logins=reviewers.c.failed_logins + 1)
            )
            c.execute(
                update(reviewers)
                .where(
                    and_(reviewers.c.id == reviewer_id, reviewers.c.failed_logins >= max_failures)
                )
                .values(failed_logins=0, locked_until=time.time() + lock_s)
            )

    def login_succeeded(self, reviewer_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(reviewers)
                .where(reviewers.c.id == reviewer_id)
                .values(failed_logins=0, locked_until=None)
            )
