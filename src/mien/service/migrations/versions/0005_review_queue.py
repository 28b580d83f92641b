"""The review queue: ``results.severity`` (its severity sort key, filled for existing rows from
their flags JSON) and indexes for the status filter with each sort, the time filter and a
reviewer's tenants.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _count(needle: str) -> str:
    """SQL: how often ``needle`` occurs in ``flags`` (the JSON text add_results writes)."""
    return f"((length(flags) - length(replace(flags, '{needle}', ''))) / {len(needle)})"


def upgrade() -> None:
    op.add_column("results", sa.Column("severity", sa.Integer, nullable=False, server_default="0"))
    # mien.service.queue.severity_of: 100 per error flag + 1 per flag
    errors, flags = _count('"severity": "error"'), _count('"rule": ')
    op.execute(f"UPDATE results SET severity = {errors} * 100 + {flags} WHERE flagged")
    op.create_index("ix_results_review", "results", ["flagged", "decision", "id"])
    op.create_index("ix_results_severity", "results", ["flagged", "decision", "severity", "id"])
    op.create_index("ix_results_flagged_created", "results", ["flagged", "created_at"])
    op.create_index("ix_jobs_key", "jobs", ["key_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_key", "jobs")
    op.drop_index("ix_results_flagged_created", "results")
    op.drop_index("ix_results_severity", "results")
    op.drop_index("ix_results_review", "results")
    op.drop_column("results", "severity")
