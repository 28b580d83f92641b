"""The tables of the service store (SQLAlchemy Core). Alembic migrations create them.

Times are UNIX seconds (float), so SQLite and PostgreSQL compare them the same way. Results keep
only numbers (the per-image JSON of docs/output.md) and flags, never pictures of faces.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    # the key's webhook signing secret (not the API key; it must be readable to sign)
    Column("webhook_secret", String(80), nullable=True),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", Text, nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("total_items", Integer, nullable=False),
    Column("done_items", Integer, nullable=False, server_default="0"),
    Column("failed_items", Integer, nullable=False, server_default="0"),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("heartbeat_at", Float, nullable=True),
    Column("worker", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("retention_s", Integer, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("media_purged", Boolean, nullable=False, server_default="0"),
    # where this job's webhooks go (the job's callback_url, else the server's default)
    Column("callback_url", Text, nullable=True),
    UniqueConstraint("key_id", "idempotency_key", name="uq_jobs_key_idempotency"),
)
Index("ix_jobs_status_created", jobs.c.status, jobs.c.created_at)
Index("ix_jobs_expires", jobs.c.expires_at)
Index("ix_jobs_key", jobs.c.key_id, jobs.c.id)

job_items = Table(
    "job_items",
    metadata,
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("name", String(500), nullable=False),
    Column("media_file", String(500), nullable=True),
    Column("status", String(16), nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
)

results = Table(
    "results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("item_idx", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("data", Text, nullable=False),
    Column("flags", Text, nullable=False, server_default="[]"),
    Column("flagged", Boolean, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("decision", String(16), nullable=True),
    Column("reviewer", String(200), nullable=True),
    Column("reviewer_key", String(32), nullable=True),
    Column("decided_at", Float, nullable=True),
    # the review queue's severity sort key (mien.service.queue.severity_of of the flags)
    Column("severity", Integer, nullable=False, server_default="0"),
    # the latest decision above is denormalised from review_decisions (same transaction)
    Column("disagreement", Boolean, nullable=False, server_default="0"),
    Column("decision_count", Integer, nullable=False, server_default="0"),
    UniqueConstraint("job_id", "item_idx", "seq", name="uq_results_item_seq"),
)
Index("ix_results_job", results.c.job_id, results.c.id)
Index("ix_results_flagged", results.c.flagged, results.c.id)
Index("ix_results_review", results.c.flagged, results.c.decision, results.c.id)
Index("ix_results_flagged_created", results.c.flagged, results.c.created_at)
Index(
    "ix_results_severity", results.c.flagged, results.c.decision, results.c.severity, results.c.id
)

reviewers = Table(
    "reviewers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # "reviewer" | "admin"
    # "scrypt$n$r$p$salt$hash" (hex); NULL: the account signs in by one-time links only
    Column("password_hash", String(300), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
    # consecutive failed password sign-ins, and the time the account is locked until
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", Float, nullable=True),
)

#: Which tenants (API keys) a reviewer sees.
reviewer_keys = Table(
    "reviewer_keys",
    metadata,
    Column(
        "reviewer_id",
        Integer,
        ForeignKey("reviewers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key_id", String(32), ForeignKey("api_keys.id"), primary_key=True),
)

#: One-time sign-in links: the SHA-256 of the token, single use, short-lived.
reviewer_links = Table(
    "reviewer_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("reviewer_id", Integer, ForeignKey("reviewers.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

#: Every decision on a review item, append-only ("cleared" = undo).
review_decisions = Table(
    "review_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("result_id", Integer, ForeignKey("results.id", ondelete="CASCADE"), nullable=False),
    Column("decision", String(16), nullable=False),  # approved | rejected | cleared
    Column("actor_kind", String(16), nullable=False),  # reviewer | key
    Column("reviewer_id", Integer, ForeignKey("reviewers.id", ondelete="SET NULL"), nullable=True),
    Column("reviewer_name", String(200), nullable=False),
    Column("key_id", String(32), nullable=True),
    Column("note", Text, nullable=True),
    Column("at", Float, nullable=False),
)
Index("ix_review_decisions_result", review_decisions.c.result_id, review_decisions.c.id)

review_sessions = Table(
    "review_sessions",
    metadata,
    # SHA-256 of the random session id; the id itself is only in the browser's cookie
    Column("id_hash", String(64), primary_key=True),
    # sessions made before reviewer accounts (migration 0003 deletes them) had a key
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=True),
    Column("reviewer_id", Integer, ForeignKey("reviewers.id", ondelete="CASCADE"), nullable=True),
    # the reviewer's name when the session started (shown on the page)
    Column("reviewer", String(200), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_review_sessions_expires", review_sessions.c.expires_at)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # the event's id (the body's "id" and the Mien-Webhook-Id header)
    Column("event_id", String(32), nullable=False, unique=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),  # the exact bytes every attempt sends (UTF-8)
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_try_at", Float, nullable=True),
    Column("claimed_until", Float, nullable=True),  # a sender holds it until then
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_try_at)
Index("ix_webhook_deliveries_job", webhook_deliveries.c.job_id, webhook_deliveries.c.id)
