"""initial schema: operators, profiles, protocols, messages, deliveries, timelines, callbacks, outbox and inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-24 00:39:35.493023
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
        "callbacks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("provider_message_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_callbacks_provider_id", "callbacks", ["provider", "provider_message_id"], unique=False
    )
    op.create_index(
        "ix_callbacks_unapplied",
        "callbacks",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("applied_at IS NULL"),
    )
    op.create_table(
        "demands",
        sa.Column("demand_id", sa.UUID(), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("demand_type", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("demand_id"),
    )
    op.create_index("ix_demands_protocol", "demands", ["protocol_number"], unique=False)
    op.create_table(
        "messages",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("subject_key", sa.Text(), nullable=False),
        sa.Column("demand_id", sa.UUID(), nullable=True),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("channels", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_channel", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "trace_headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "protocol_number", "purpose", "subject_key", name="uq_messages_subject"
        ),
    )
    op.create_index(
        "ix_messages_operator_created",
        "messages",
        ["ans_registry", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "operators",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry"),
    )
    op.create_table(
        "profiles",
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("profile", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ans_registry"),
    )
    op.create_table(
        "protocols",
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("whatsapp", sa.Text(), nullable=True),
        sa.Column("preferred_channels", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("protocol_number"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("ans_registry", sa.String(length=6), nullable=False),
        sa.Column("protocol_number", sa.String(length=30), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("providers", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("provider_index", sa.Integer(), server_default="0", nullable=False),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.UUID(), nullable=True),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fallback_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "channel", name="uq_deliveries_channel"),
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_deliveries_fallback",
        "deliveries",
        ["fallback_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sent' AND fallback_at IS NOT NULL"),
    )
    op.create_index(
        "ix_deliveries_leased",
        "deliveries",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.create_index("ix_deliveries_protocol", "deliveries", ["protocol_number"], unique=False)
    op.create_index(
        "ix_deliveries_provider_id", "deliveries", ["provider", "provider_message_id"], unique=False
    )
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_delivery_events_delivery", "delivery_events", ["delivery_id", "id"], unique=False
    )
    create_backbone_tables()


def downgrade() -> None:
    drop_backbone_tables()
    op.drop_index("ix_delivery_events_delivery", table_name="delivery_events")
    op.drop_table("delivery_events")
    op.drop_index("ix_deliveries_provider_id", table_name="deliveries")
    op.drop_index("ix_deliveries_protocol", table_name="deliveries")
    op.drop_index(
        "ix_deliveries_leased",
        table_name="deliveries",
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.drop_index(
        "ix_deliveries_fallback",
        table_name="deliveries",
        postgresql_where=sa.text("status = 'sent' AND fallback_at IS NOT NULL"),
    )
    op.drop_index(
        "ix_deliveries_due", table_name="deliveries", postgresql_where=sa.text("status = 'queued'")
    )
    op.drop_table("deliveries")
    op.drop_table("protocols")
    op.drop_table("profiles")
    op.drop_table("operators")
    op.drop_index("ix_messages_operator_created", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_demands_protocol", table_name="demands")
    op.drop_table("demands")
    op.drop_index(
        "ix_callbacks_unapplied",
        table_name="callbacks",
        postgresql_where=sa.text("applied_at IS NULL"),
    )
    op.drop_index("ix_callbacks_provider_id", table_name="callbacks")
    op.drop_table("callbacks")
