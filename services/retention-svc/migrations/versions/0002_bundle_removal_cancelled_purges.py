"""access_requests.bundle_removed_at (bundles are removed when their records are disposed)
and purge_requests.cancelled_at (new facts put the records back under retention)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 23:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "purge_requests", sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "access_requests",
        sa.Column("bundle_removed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("access_requests", "bundle_removed_at")
    op.drop_column("purge_requests", "cancelled_at")
