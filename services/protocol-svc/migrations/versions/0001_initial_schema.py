"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:06:00.094857
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
        "operators",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("modality", sa.Text(), nullable=False),
        sa.Column("beneficiaries", sa.Integer(), nullable=False),
        sa.Column("uf", sa.String(length=2), nullable=False),
        sa.Column("municipality_ibge", sa.String(length=7), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("protocol_layout", sa.Text(), nullable=False),
        sa.Column("extra_holidays", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry"),
    )
    op.create_table(
        "protocol_sequences",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry", "day"),
    )
    op.create_table(
        "protocols",
        sa.Column("number", sa.String(length=30), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("layout_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("contact_id", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("beneficiary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("beneficiary_cpf", sa.String(length=11), nullable=True),
        sa.ForeignKeyConstraint(
            ["ans_registry"],
            ["operators.ans_registry"],
        ),
        sa.PrimaryKeyConstraint("number"),
        sa.UniqueConstraint("ans_registry", "contact_id", name="uq_protocols_contact_id"),
        sa.UniqueConstraint("ans_registry", "idempotency_key", name="uq_protocols_idempotency_key"),
    )
    op.create_index(
        "ix_protocols_operator_cpf", "protocols", ["ans_registry", "beneficiary_cpf"], unique=False
    )
    op.create_index(
        "ix_protocols_operator_opened", "protocols", ["ans_registry", "opened_at"], unique=False
    )
    op.create_table(
        "demands",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("demand_type", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("immediate", sa.Boolean(), nullable=False),
        sa.Column("deadline_rule_id", sa.Text(), nullable=False),
        sa.Column("deadline_legal_basis", sa.Text(), nullable=False),
        sa.Column("deadline_unit", sa.Text(), nullable=False),
        sa.Column("deadline_amount", sa.Integer(), nullable=False),
        sa.Column("ruleset_id", sa.Text(), nullable=False),
        sa.Column("reanalysis_of", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(
            ["protocol_number"],
            ["protocols.number"],
        ),
        sa.ForeignKeyConstraint(
            ["reanalysis_of"],
            ["demands.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_demands_protocol", "demands", ["protocol_number"], unique=False)
    op.create_table(
        "protocol_status_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["protocol_number"],
            ["protocols.number"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_status_history_protocol",
        "protocol_status_history",
        ["protocol_number", "id"],
        unique=False,
    )
    create_backbone_tables()


def downgrade() -> None:
    drop_backbone_tables()
    op.drop_index("ix_status_history_protocol", table_name="protocol_status_history")
    op.drop_table("protocol_status_history")
    op.drop_index("ix_demands_protocol", table_name="demands")
    op.drop_table("demands")
    op.drop_index("ix_protocols_operator_opened", table_name="protocols")
    op.drop_index("ix_protocols_operator_cpf", table_name="protocols")
    op.drop_table("protocols")
    op.drop_table("protocol_sequences")
    op.drop_table("operators")
