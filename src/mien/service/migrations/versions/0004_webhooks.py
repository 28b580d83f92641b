"""Webhooks: the deliveries table, each key's signing secret, each job's callback address.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("webhook_secret", sa.String(80), nullable=True))
    op.add_column("jobs", sa.Column("callback_url", sa.Text, nullable=True))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(32), nullable=False, unique=True),
        sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_try_at", sa.Float, nullable=True),
        sa.Column("claimed_until", sa.Float, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_try_at"])
    op.create_index("ix_webhook_deliveries_job", "webhook_deliveries", ["job_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("callback_url")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("webhook_secret")
