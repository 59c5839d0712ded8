"""complaints.coverage: the coverage (medical, dental) a complaint counts under in the IGR

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 22:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("complaints", sa.Column("coverage", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("complaints", "coverage")
