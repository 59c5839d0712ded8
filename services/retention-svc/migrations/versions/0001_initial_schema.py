"""initial schema: protocols' retention facts, schedules, purges, certificates, legal
holds, access requests, outbox and inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-23 22:10:19.384972
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
        "access_requests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("ruleset_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bundle", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_access_requests_next_attempt",
        "access_requests",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "ix_access_requests_operator",
        "access_requests",
        ["ans_registry", "requested_at"],
        unique=False,
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("purge_request_id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("record_classes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("confirmations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ans_registry", "sequence", name="uq_certificates_chain"),
        sa.UniqueConstraint("purge_request_id"),
    )
    op.create_index("ix_certificates_protocol", "certificates", ["protocol_number"], unique=False)
    op.create_table(
        "chain_heads",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry"),
    )
    op.create_table(
        "demands",
        sa.Column("demand_id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("demand_id"),
    )
    op.create_index("ix_demands_protocol", "demands", ["protocol_number"], unique=False)
    op.create_table(
        "hold_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("hold_id", sa.UUID(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hold_audit_hold", "hold_audit", ["hold_id", "id"], unique=False)
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=True),
        sa.Column("beneficiary_key", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.Text(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.Text(), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_legal_holds_active",
        "legal_holds",
        ["ans_registry"],
        unique=False,
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.create_table(
        "protocols",
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("beneficiary_key", sa.String(length=64), nullable=True),
        sa.Column("contact_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("complaint_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("protocol_number"),
    )
    op.create_index(
        "ix_protocols_beneficiary", "protocols", ["ans_registry", "beneficiary_key"], unique=False
    )
    op.create_table(
        "purge_confirmations",
        sa.Column("purge_request_id", sa.UUID(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("record_classes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anonymized", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purge_request_id", "owner"),
    )
    op.create_table(
        "purge_requests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("record_classes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("owners", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_purge_requests_pending",
        "purge_requests",
        ["ans_registry", "requested_at"],
        unique=False,
        postgresql_where=sa.text("disposed_at IS NULL"),
    )
    op.create_index(
        "ix_purge_requests_protocol", "purge_requests", ["protocol_number"], unique=False
    )
    op.create_table(
        "schedules",
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("record_class", sa.Text(), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("purge_request_id", sa.UUID(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("protocol_number", "record_class"),
    )
    op.create_index(
        "ix_schedules_due",
        "schedules",
        ["retain_until"],
        unique=False,
        postgresql_where=sa.text("status = 'retained' AND retain_until IS NOT NULL"),
    )
    op.create_index(
        "ix_schedules_operator_due", "schedules", ["ans_registry", "retain_until"], unique=False
    )
    create_backbone_tables()


def downgrade() -> None:
    drop_backbone_tables()
    op.drop_index("ix_schedules_operator_due", table_name="schedules")
    op.drop_index(
        "ix_schedules_due",
        table_name="schedules",
        postgresql_where=sa.text("status = 'retained' AND retain_until IS NOT NULL"),
    )
    op.drop_table("schedules")
    op.drop_index("ix_purge_requests_protocol", table_name="purge_requests")
    op.drop_index(
        "ix_purge_requests_pending",
        table_name="purge_requests",
        postgresql_where=sa.text("disposed_at IS NULL"),
    )
    op.drop_table("purge_requests")
    op.drop_table("purge_confirmations")
    op.drop_index("ix_protocols_beneficiary", table_name="protocols")
    op.drop_table("protocols")
    op.drop_index(
        "ix_legal_holds_active",
        table_name="legal_holds",
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.drop_table("legal_holds")
    op.drop_index("ix_hold_audit_hold", table_name="hold_audit")
    op.drop_table("hold_audit")
    op.drop_index("ix_demands_protocol", table_name="demands")
    op.drop_table("demands")
    op.drop_table("chain_heads")
    op.drop_index("ix_certificates_protocol", table_name="certificates")
    op.drop_table("certificates")
    op.drop_index("ix_access_requests_operator", table_name="access_requests")
    op.drop_index(
        "ix_access_requests_next_attempt",
        table_name="access_requests",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_table("access_requests")
