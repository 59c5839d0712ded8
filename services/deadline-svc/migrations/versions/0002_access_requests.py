"""access requests: deadlines of records-access requests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deadlines", sa.Column("access_request_id", sa.UUID(), nullable=True))
    op.create_unique_constraint(
        "deadlines_access_request_id_key", "deadlines", ["access_request_id"]
    )


def downgrade() -> None:
    op.drop_constraint("deadlines_access_request_id_key", "deadlines", type_="unique")
    op.drop_column("deadlines", "access_request_id")
