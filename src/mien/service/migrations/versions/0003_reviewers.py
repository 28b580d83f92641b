"""Reviewer accounts, their tenants and sign-in links; decisions as an append-only history.

Existing decisions in ``results`` are copied into ``review_decisions`` (actor_kind "key": they
were made with an API key and a typed name). Review sessions of the old API-key sign-in are
deleted: every reviewer signs in again, with an account.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled_at", sa.Float, nullable=True),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.Float, nullable=True),
    )
    op.create_table(
        "reviewer_keys",
        sa.Column(
            "reviewer_id",
            sa.Integer,
            sa.ForeignKey("reviewers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.id"), primary_key=True),
    )
    op.create_table(
        "reviewer_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "reviewer_id",
            sa.Integer,
            sa.ForeignKey("reviewers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "result_id",
            sa.Integer,
            sa.ForeignKey("results.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column(
            "reviewer_id",
            sa.Integer,
            sa.ForeignKey("reviewers.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("reviewer_name", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_review_decisions_result", "review_decisions", ["result_id", "id"])
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("disagreement", sa.Boolean, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("decision_count", sa.Integer, nullable=False, server_default="0")
        )
    op.execute(
        "INSERT INTO review_decisions "
        "(result_id, decision, actor_kind, reviewer_id, reviewer_name, key_id, note, at) "
        "SELECT id, decision, 'key', NULL, COALESCE(reviewer, ''), reviewer_key, NULL, "
        "COALESCE(decided_at, created_at) FROM results WHERE decision IS NOT NULL "
        "ORDER BY id"
    )
    op.execute("UPDATE results SET decision_count = 1 WHERE decision IS NOT NULL")
    op.execute("DELETE FROM review_sessions")
    with op.batch_alter_table("review_sessions") as batch:
        batch.alter_column("key_id", existing_type=sa.String(32), nullable=True)
        batch.add_column(
            sa.Column(
                "reviewer_id",
                sa.Integer,
                sa.ForeignKey(
                    "reviewers.id", ondelete="CASCADE", name="fk_review_sessions_reviewer"
                ),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("review_sessions") as batch:
        batch.drop_column("reviewer_id")
    op.execute("DELETE FROM review_sessions WHERE key_id IS NULL")
    with op.batch_alter_table("review_sessions") as batch:
        batch.alter_column("key_id", existing_type=sa.String(32), nullable=False)
    with op.batch_alter_table("results") as batch:
        batch.drop_column("decision_count")
        batch.drop_column("disagreement")
    op.drop_table("review_decisions")
    op.drop_table("reviewer_links")
    op.drop_table("reviewer_keys")
    op.drop_table("reviewers")
