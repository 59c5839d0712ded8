"""initial schema: operators' calendars, deadlines, outbox and inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-23 20:27:11.554193
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from rn623_events.migrations import create_backbone_tables, drop_backbone_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deadlines",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("demand_id", sa.UUID(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("demand_type", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("immediate", sa.Boolean(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("ruleset_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "warned", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("elapsed_business_days", sa.Integer(), nullable=True),
        sa.Column("elapsed_seconds", sa.Float(), nullable=True),
        sa.Column("recomputed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("demand_id"),
    )
    op.create_index(
        "ix_deadlines_due",
        "deadlines",
        [sa.literal_column("(NOT immediate)"), "due_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_deadlines_next_check",
        "deadlines",
        ["next_check_at"],
        unique=False,
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )
    op.create_index(
        "ix_deadlines_operator_status_due",
        "deadlines",
        ["ans_registry", "status", "due_at"],
        unique=False,
    )
    op.create_index("ix_deadlines_protocol", "deadlines", ["protocol_number"], unique=False)
    op.create_table(
        "operators",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("uf", sa.String(length=2), nullable=False),
        sa.Column("municipality_ibge", sa.String(length=7), nullable=False),
        sa.Column("extra_holidays", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry"),
    )
    create_backbone_tables()


def downgrade() -> None:
    drop_backbone_tables()
    op.drop_table("operators")
    op.drop_index("ix_deadlines_protocol", table_name="deadlines")
    op.drop_index("ix_deadlines_operator_status_due", table_name="deadlines")
    op.drop_index(
        "ix_deadlines_next_check",
        table_name="deadlines",
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )
    op.drop_index("ix_deadlines_due", table_name="deadlines")
    op.drop_table("deadlines")
