"""initial schema: operators, beneficiary and complaint counters, indicators, closed
quarters and their frozen results, late complaints, IGR individual figures, outbox, inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-23 23:05:00
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
        "beneficiaries",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("coverage", sa.Text(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry", "coverage", "month"),
    )
    op.create_table(
        "closed_quarters",
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("quarter"),
    )
    op.create_table(
        "complaint_counts",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("coverage", sa.Text(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("complaints", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry", "coverage", "month"),
    )
    op.create_table(
        "indicators",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry", "quarter", "metric"),
    )
    op.create_table(
        "individual_figures",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("coverage", sa.Text(), nullable=False),
        sa.Column("igr_individual", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry", "quarter", "coverage"),
    )
    op.create_table(
        "late_complaints",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry", "quarter"),
    )
    op.create_table(
        "operators",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry"),
    )
    op.create_table(
        "quarter_results",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("figures", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry", "quarter", "revision"),
    )
    op.create_index(
        "ix_quarter_results_quarter", "quarter_results", ["quarter", "ans_registry"], unique=False
    )
    op.create_table(
        "reanalyses",
        sa.Column("demand_id", sa.Uuid(), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.PrimaryKeyConstraint("demand_id"),
    )
    create_backbone_tables()


def downgrade() -> None:
    drop_backbone_tables()
    op.drop_table("reanalyses")
    op.drop_index("ix_quarter_results_quarter", table_name="quarter_results")
    op.drop_table("quarter_results")
    op.drop_table("operators")
    op.drop_table("late_complaints")
    op.drop_table("individual_figures")
    op.drop_table("indicators")
    op.drop_table("complaint_counts")
    op.drop_table("closed_quarters")
    op.drop_table("beneficiaries")
