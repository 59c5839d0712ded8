"""answers interactions complaints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:45:04.557056
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "demands",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
    )
    op.create_table(
        "interactions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("recording_uri", sa.Text(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["protocol_number"],
            ["protocols.number"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_interactions_protocol", "interactions", ["protocol_number", "occurred_at"], unique=False
    )
    op.create_table(
        "answers",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("demand_id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["demand_id"],
            ["demands.id"],
        ),
        sa.ForeignKeyConstraint(
            ["protocol_number"],
            ["protocols.number"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("demand_id", name="uq_answers_demand"),
    )
    op.create_table(
        "complaints",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("classification", sa.Text(), nullable=True),
        sa.Column("external_reference", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("demand_id", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(
            ["demand_id"],
            ["demands.id"],
        ),
        sa.ForeignKeyConstraint(
            ["protocol_number"],
            ["protocols.number"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_complaints_protocol", "complaints", ["protocol_number"], unique=False)


def downgrade() -> None:
    op.drop_column("demands", "seq")
    op.drop_index("ix_complaints_protocol", table_name="complaints")
    op.drop_table("complaints")
    op.drop_table("answers")
    op.drop_index("ix_interactions_protocol", table_name="interactions")
    op.drop_table("interactions")
