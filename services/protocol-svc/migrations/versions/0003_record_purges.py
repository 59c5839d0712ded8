"""record purges: anonymized protocols and the purges done on retention-svc's request

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "protocols", sa.Column("anonymized_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "record_purges",
        sa.Column("purge_request_id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("record_classes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("anonymized", sa.Boolean(), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purge_request_id"),
    )
    op.create_index("ix_record_purges_protocol", "record_purges", ["protocol_number"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_record_purges_protocol", table_name="record_purges")
    op.drop_table("record_purges")
    op.drop_column("protocols", "anonymized_at")
